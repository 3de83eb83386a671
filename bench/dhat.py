"""Reads a DHAT heap profile (`valgrind --tool=dhat`, file version 2) of the agent and
names each allocation site by the first stack frame in this workspace (crates/, bin/).

The JSON holds `pps`, one program point per distinct allocation stack, with `tb`/`tbk`
(bytes/blocks allocated over the run), `gb`/`gbk` (live at the global heap peak,
t-gmax) and `eb`/`ebk` (live at exit); `fs` indexes frames in `ftbl`, innermost
first, each `0xADDR: function (file:line)` or `0xADDR: function (in object)`.
Run valgrind with `--fullpath-after=` so files are absolute paths: that is how a
frame is known to be ours rather than std's, alloc's or a dependency's.
"""

import functools
import json
import os
import re

FRAME = re.compile(r"^0x[0-9A-Fa-f]+: (.*) \(([^()]*)\)$")
# Frames that only pass the allocation on: the allocator itself, the standard
# library (alloc, core, std: /rustc/<hash>/library/...) and hashbrown's tables.
PLUMBING = re.compile(r"^in .*vgpreload|^/rustc/|/hashbrown-[0-9.]+/")
# Closure, async and impl segments say nothing a reader of the table needs.
ANONYMOUS = re.compile(r"^\{.*\}$|^h[0-9a-f]{16}$")
REGISTRY_CRATE = re.compile(r"/([A-Za-z0-9_-]+?)-\d+\.\d+\.\d+[^/]*/src/(.*)$")
FN_LINE = re.compile(r"^(\s*)(?:pub(?:\([^)]*\))?\s+)?(?:const\s+)?(?:async\s+)?(?:unsafe\s+)?(?:extern\s+\"C\"\s+)?fn\s+(\w+)")
IMPL_LINE = re.compile(r"^(\s*)(?:unsafe\s+)?impl\b(?:<[^{]*?>)?\s+(?:[\w:<>, ]+?\s+for\s+)?([A-Za-z_]\w*)")


def strip_generics(name):
    """`build<adp_dogstatsd::codec::TagIter>` → `build`; `<Foo as Trait>::f` → `Foo::f`."""
    if name.startswith("<"):
        depth = 0
        for i, c in enumerate(name):
            depth += {"<": 1, ">": -1}.get(c, 0)
            if depth == 0:
                name = name[1:i].split(" as ")[0] + name[i + 1 :]
                break
    out, depth = [], 0
    for c in name:
        if c == "<":
            depth += 1
        elif c == ">" and depth:
            depth -= 1
        elif depth == 0:
            out.append(c)
    return "".join(out)


def short_name(function):
    """The last two named path segments: `adp_payloads::encode::Encoder::push` →
    `Encoder::push`. None for a frame valgrind could not name."""
    segments = [s for s in strip_generics(function).split("::") if s and not ANONYMOUS.match(s)]
    if not segments or segments[-1] == "UnknownInlinedFun":
        return None
    return "::".join(segments[-2:])


@functools.lru_cache(maxsize=None)
def source_lines(path):
    try:
        with open(path, errors="replace") as f:
            return f.read().splitlines()
    except OSError:
        return []


def indent(text):
    return len(text) - len(text.lstrip())


def enclosing_fn(path, line):
    """`Type::fn` (or `fn`) around `path:line`, read from the source. valgrind 3.19 names
    some inlined frames `UnknownInlinedFun` although it knows their file and line."""
    lines = source_lines(path)
    for i in range(min(line, len(lines)) - 1, -1, -1):
        m = FN_LINE.match(lines[i])
        if not m:
            continue
        fn = m.group(2)
        # The block around the fn opens on the first less indented line above it.
        outer = next((l for l in reversed(lines[:i]) if l.strip() and indent(l) < indent(lines[i])), "")
        im = IMPL_LINE.match(outer)
        return f"{im.group(2)}::{fn}" if im else fn
    return None


def parse_frame(text):
    """(function, file or None, line or None) of one `ftbl` entry."""
    m = FRAME.match(text)
    if not m:
        return text, None, None
    function, where = m.groups()
    if where.startswith("in "):
        return function, where, None
    path, _, line = where.rpartition(":")
    return (function, path, int(line)) if line.isdigit() else (function, where, None)


class Namer:
    """Names a program point by its first frame in the workspace under `root`; a point
    with none (the runtime, TLS, the HTTP client) by its first frame past the
    allocator and the standard library, as `[crate] function`."""

    def __init__(self, ftbl, root):
        self.ftbl, self.root = ftbl, root.rstrip("/") + "/"
        self.cache = {}

    def frame(self, index):
        if index not in self.cache:
            self.cache[index] = parse_frame(self.ftbl[index])
        return self.cache[index]

    def ours(self, path):
        return path is not None and path.startswith((self.root + "crates/", self.root + "bin/"))

    def site(self, frames):
        parsed = [self.frame(i) for i in frames]
        for function, path, line in parsed:
            if self.ours(path):
                return self.our_name(function, path, line or 0), path[len(self.root) :], line
        for function, path, line in parsed:
            if path is not None and not PLUMBING.search(path):
                m = REGISTRY_CRATE.search(path)
                crate, rel = (m.group(1), m.group(2)) if m else (os.path.basename(path), path)
                return f"[{crate}] {short_name(function) or '?'}", f"{crate}: {rel}", line
        function, path, line = parsed[-1] if parsed else ("?", None, None)
        return f"[std] {short_name(function) or '?'}", path or "?", line

    @staticmethod
    def our_name(function, path, line):
        """Inlined frames carry a bare name (`build`): the source adds the impl's type."""
        name = short_name(function)
        if name is None or "::" not in name:
            from_source = enclosing_fn(path, line)
            if from_source and (name is None or from_source.endswith(name)):
                return from_source
        return name or "?"


def summarize(path, root, top=8):
    """Totals, the heap at its peak and at exit, and the `top` sites by bytes live at
    the peak and by number of allocations."""
    with open(path) as f:
        profile = json.load(f)
    if profile.get("dhatFileVersion") != 2 or profile.get("mode") != "heap":
        raise ValueError(
            f"{path}: not a DHAT heap profile of file version 2 (dhatFileVersion "
            f"{profile.get('dhatFileVersion')!r}, mode {profile.get('mode')!r}); valgrind 3.15 or newer writes one"
        )
    namer = Namer(profile["ftbl"], root)
    # One site per function and file; its lines are listed.
    sites, lines = {}, {}
    for pp in profile["pps"]:
        name, path, line = namer.site(pp["fs"])
        s = sites.setdefault((name, path), dict(site=name, location=path, bytes=0, blocks=0, peak_bytes=0, peak_blocks=0, program_points=0))
        s["bytes"] += pp["tb"]
        s["blocks"] += pp["tbk"]
        s["peak_bytes"] += pp["gb"]
        s["peak_blocks"] += pp["gbk"]
        s["program_points"] += 1
        if line:
            lines.setdefault((name, path), set()).add(line)
    for key, s in sites.items():
        at = sorted(lines.get(key, ()))
        if at:
            s["location"] += ":" + ",".join(map(str, at[:4])) + ("…" if len(at) > 4 else "")
    pps = profile["pps"]
    total = lambda field: sum(pp[field] for pp in pps)  # noqa: E731
    named = sum(1 for s in sites.values() if not s["site"].startswith("[") and s["site"] != "?")
    return dict(
        total_bytes=total("tb"),
        total_blocks=total("tbk"),
        peak_bytes=total("gb"),
        peak_blocks=total("gbk"),
        exit_bytes=total("eb"),
        exit_blocks=total("ebk"),
        # When the peak came, as a fraction of the run (DHAT counts time in instructions).
        peak_at_fraction=round(profile["tg"] / profile["te"], 3) if profile.get("te") else None,
        program_points=len(pps),
        workspace_sites=named,
        sites=len(sites),
        top_by_peak_bytes=sorted(sites.values(), key=lambda s: -s["peak_bytes"])[:top],
        top_by_blocks=sorted(sites.values(), key=lambda s: -s["blocks"])[:top],
    )
