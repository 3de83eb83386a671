#!/usr/bin/env bash
# Vendors every crate Cargo.lock pins into a directory cargo can use as a
# source replacement, the way crane's vendorCargoDeps does for the flake's
# cargo checks: each crate unpacked from its .crate file (cargo's download
# cache, else crates.io), verified against Cargo.lock's checksum, with a
# .cargo-checksum.json naming the package checksum. make's builder sandbox
# gives it read-only to the checks that run cargo (checks.adp-licences'
# twin), which then need no network and no cargo home.
#
#   checks/lib/vendor-crates.sh DEST
#
# Use it with `[source.crates-io] replace-with = "vendored-sources"` and
# `[source.vendored-sources] directory = "DEST"` in a cargo config. Does
# nothing when DEST is already made from this Cargo.lock.
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/../.." && pwd)
DEST=${1:?usage: checks/lib/vendor-crates.sh DEST}
CACHE=${ADP_CRATE_CACHE:-$ROOT/.tmp/crates}
stamp=$(sha256sum "$ROOT/Cargo.lock" | cut -d' ' -f1)
if [ -f "$DEST/.stamp" ] && [ "$(cat "$DEST/.stamp")" = "$stamp" ]; then
    exit 0
fi
rm -rf "$DEST"
mkdir -p "$DEST" "$CACHE"

python3 - "$ROOT/Cargo.lock" "${CARGO_HOME:-$HOME/.cargo}" "$CACHE" "$DEST" <<'PY'
import glob, hashlib, json, os, subprocess, sys, tomllib, urllib.request

lock_path, cargo_home, cache, dest = sys.argv[1:]
registry = "registry+https://github.com/rust-lang/crates.io-index"
lock = tomllib.load(open(lock_path, "rb"))
fetched = 0
for pkg in lock["package"]:
    if pkg.get("source") != registry:
        continue
    name, version, checksum = pkg["name"], pkg["version"], pkg["checksum"]
    file_name = f"{name}-{version}.crate"
    candidates = glob.glob(os.path.join(cargo_home, "registry", "cache", "*", file_name)) + [os.path.join(cache, file_name)]
    data = None
    for path in candidates:
        if os.path.exists(path):
            blob = open(path, "rb").read()
            if hashlib.sha256(blob).hexdigest() == checksum:
                data = blob
                break
    if data is None:
        url = f"https://static.crates.io/crates/{name}/{file_name}"
        try:
            data = urllib.request.urlopen(url, timeout=120).read()
        except OSError as e:
            sys.exit(f"vendor-crates: cannot download {url}: {e} (crates.io must be reachable once)")
        got = hashlib.sha256(data).hexdigest()
        if got != checksum:
            sys.exit(f"vendor-crates: {url} has sha256 {got}, Cargo.lock pins {checksum}")
        open(os.path.join(cache, file_name), "wb").write(data)
        fetched += 1
    out = os.path.join(dest, f"{name}-{version}")
    os.makedirs(out)
    subprocess.run(["tar", "-xzf", "-", "-C", out, "--strip-components=1"], input=data, check=True)
    with open(os.path.join(out, ".cargo-checksum.json"), "w") as f:
        json.dump({"files": {}, "package": checksum}, f)
print(f"vendor-crates: {len(os.listdir(dest))} crates in {dest} ({fetched} downloaded from crates.io)")
PY
printf '%s\n' "$stamp" >"$DEST/.stamp"
