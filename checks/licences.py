#!/usr/bin/env python3
"""Dependency licences and sources against deny.toml, offline.

    checks/licences.py            # via checks/licences.sh: make licences, checks.adp-licences

deny.toml is cargo-deny's format, and `cargo deny check licenses bans sources`
reads it unchanged; this check applies the same policy with only cargo and
Python's standard library, because building cargo-deny with Rust 1.85 takes
25 CPU-minutes, more than CI's budget allows for one check. It reads:

- [graph] targets: only crates built for these platforms are checked
  (`cargo metadata --filter-platform`), so Windows-, WASI- and UEFI-only
  crates, whose sources no build here downloads, are neither needed nor judged;
- [licenses] allow: every dependency's SPDX expression must be satisfiable
  with these licences (an OR passes when one side does, an AND when both do;
  `X WITH exception` is judged as X, as cargo-deny does; the old `A/B` form
  is an OR); a crate without an SPDX `license` field fails;
- [sources]: every crate comes from an allowed registry (no git, no other);
- [bans] wildcards = "deny": no `*` version requirement on a registry crate;
  multiple-versions = "warn": crates in several versions are listed.
"""

import json
import re
import subprocess
import sys
import tomllib
from collections import defaultdict
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
CRATES_IO = "registry+https://github.com/rust-lang/crates.io-index"


class SpdxError(ValueError):
    pass


def tokens(expression):
    # Parentheses are tokens of their own; "A/B" is the pre-SPDX way to say "A OR B".
    return re.findall(r"\(|\)|[^\s()]+", expression.replace("/", " OR "))


def satisfiable(expression, allowed):
    """Whether `expression` can be met using only licences in `allowed`."""
    toks = tokens(expression)
    pos = 0

    def peek():
        return toks[pos] if pos < len(toks) else None

    def take():
        nonlocal pos
        if pos >= len(toks):
            raise SpdxError(f"unexpected end of {expression!r}")
        pos += 1
        return toks[pos - 1]

    def atom():
        tok = take()
        if tok == "(":
            value = disjunction()
            if take() != ")":
                raise SpdxError(f"unbalanced parentheses in {expression!r}")
            return value
        if tok in ("AND", "OR", "WITH", ")"):
            raise SpdxError(f"unexpected {tok!r} in {expression!r}")
        if peek() == "WITH":
            take()
            take()  # the exception only adds permissions
        return tok.rstrip("+") in allowed

    def chain(op, operand, combine):
        """`operand (op operand)*`, folded left to right with `combine`."""
        value = operand()
        while peek() == op:
            take()
            value = combine(operand(), value)
        return value

    def conjunction():
        return chain("AND", atom, lambda a, b: a and b)

    def disjunction():
        return chain("OR", conjunction, lambda a, b: a or b)

    value = disjunction()
    if pos != len(toks):
        raise SpdxError(f"trailing {toks[pos]!r} in {expression!r}")
    return value


def main():
    policy = tomllib.loads((ROOT / "deny.toml").read_text())
    targets = policy.get("graph", {}).get("targets", [])
    if not targets:
        sys.exit("licences: deny.toml lists no [graph] targets")
    allowed = set(policy["licenses"]["allow"])
    registries = {f"registry+{r}" for r in policy.get("sources", {}).get("allow-registry", [])} or {CRATES_IO}
    bans = policy.get("bans", {})

    command = ["cargo", "metadata", "--format-version", "1", "--locked", "--offline"]
    for target in targets:
        command += ["--filter-platform", target]
    run = subprocess.run(command, cwd=ROOT, capture_output=True, text=True)
    if run.returncode != 0:
        sys.stderr.write(run.stderr)
        sys.exit(
            "licences: `cargo metadata` failed offline: a dependency's sources are not in cargo's cache; "
            "fetch them once with 'cargo fetch --locked' (online), then rerun"
        )
    metadata = json.loads(run.stdout)
    in_graph = {node["id"] for node in metadata["resolve"]["nodes"]}
    packages = [p for p in metadata["packages"] if p["id"] in in_graph]
    dependencies = [p for p in packages if p["source"] is not None]  # not the workspace's own

    problems = []
    licences_seen = defaultdict(int)
    versions = defaultdict(set)
    for p in dependencies:
        crate = f"{p['name']} {p['version']}"
        versions[p["name"]].add(p["version"])
        expression = p.get("license")
        if not expression:
            problems.append(f"{crate}: no SPDX `license` field (license_file {p.get('license_file')!r}); "
                            "review it and add a [[licenses.clarify]] entry to deny.toml")
            continue
        licences_seen[expression] += 1
        try:
            if not satisfiable(expression, allowed):
                problems.append(f"{crate}: licence {expression!r} is not satisfiable with deny.toml's "
                                "[licenses] allow list; decide about it there")
        except SpdxError as e:
            problems.append(f"{crate}: unparsable licence expression: {e}")
        if p["source"] not in registries:
            problems.append(f"{crate}: source {p['source']} is not an allowed registry ([sources] in deny.toml)")
    if bans.get("wildcards") == "deny":
        for p in packages:
            for d in p["dependencies"]:
                if d["req"] == "*" and d.get("source") is not None:
                    problems.append(f"{p['name']} {p['version']}: wildcard version requirement on {d['name']}")

    for expression, count in sorted(licences_seen.items(), key=lambda kv: (-kv[1], kv[0])):
        print(f"licences: {count:4} crate(s) {expression}")
    if bans.get("multiple-versions") in ("warn", "deny"):
        for name, vs in sorted(versions.items()):
            if len(vs) > 1:
                print(f"licences: warning: {name} in {len(vs)} versions: {', '.join(sorted(vs))}")
    if problems:
        for problem in problems:
            print(f"licences: FAIL: {problem}", file=sys.stderr)
        sys.exit(1)
    print(f"licences: ok: {len(dependencies)} dependencies for {', '.join(targets)}; "
          f"every licence satisfiable with {sorted(allowed)}; all from {', '.join(sorted(registries))}")


def self_test():
    allowed = {"MIT", "Apache-2.0", "ISC", "Unicode-3.0"}
    cases = {
        "MIT OR Apache-2.0": True,
        "MIT/Apache-2.0": True,
        "GPL-3.0 OR MIT": True,
        "GPL-3.0": False,
        "Apache-2.0 AND ISC": True,
        "Apache-2.0 AND GPL-3.0": False,
        "(MIT OR Apache-2.0) AND Unicode-3.0": True,
        "(MIT OR GPL-3.0) AND (LGPL-2.1 OR BSD-3-Clause)": False,
        "Apache-2.0 WITH LLVM-exception OR GPL-3.0": True,
        "GPL-2.0 WITH Classpath-exception-2.0": False,
        "MIT OR GPL-3.0 AND LGPL-2.1": True,  # AND binds tighter than OR
        "GPL-3.0 AND MIT OR ISC": True,
    }
    for expression, expected in cases.items():
        got = satisfiable(expression, allowed)
        assert got == expected, f"{expression!r}: {got}, expected {expected}"
    for bad in ["MIT OR", "(MIT", "MIT Apache-2.0", "AND MIT"]:
        try:
            satisfiable(bad, allowed)
        except SpdxError:
            continue
        raise AssertionError(f"{bad!r} parsed")
    print(f"licences: self-test ok ({len(cases) + 4} expressions)")


if __name__ == "__main__":
    self_test() if sys.argv[1:] == ["--self-test"] else main()
