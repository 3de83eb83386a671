#!/usr/bin/env bash
# File modes and owners of the shipped artifacts, read from the artifacts
# themselves (bin/adp-package enforces the same policy when it writes them;
# this catches a release made some other way or tampered with).
#
#   checks/modes.sh result-adp-armv7      # or result-release (every tarball, every platform)
#
# Tarball (*.tar.gz): only directories and regular files; every entry owned
# by 0:0 with no user or group name; directories 0755, usr/bin/* 0755,
# every other file 0644; so nothing setuid, setgid, sticky or world-writable.
# Image (oci/): config.User is a numeric, non-root uid[:gid]; in every layer
# nothing is setuid or setgid, nothing is world-writable but symlinks and
# sticky directories (/tmp), files are 0644 or 0755, no device or FIFO, and
# only directories may belong to the runtime user (its state directories).
set -euo pipefail

RESULT=${1:?usage: checks/modes.sh RESULT_DIR}
command -v python3 >/dev/null || { echo "modes: python3 not found (make setup)" >&2; exit 2; }
[ -d "$RESULT/oci" ] || { echo "modes: $RESULT/oci missing: not a result directory (make adp-armv7)" >&2; exit 1; }

python3 - "$RESULT" <<'PY'
import glob, json, os, re, sys, tarfile

result = sys.argv[1]
failures = []

def check(what, ok, detail):
    print(f"modes: {'ok   ' if ok else 'FAIL '} {what}: {detail}")
    if not ok:
        failures.append(what)

def kind(m):
    return {tarfile.DIRTYPE: "dir", tarfile.REGTYPE: "file", tarfile.AREGTYPE: "file", tarfile.SYMTYPE: "symlink"}.get(m.type, f"type {m.type!r}")

tarballs = sorted(glob.glob(os.path.join(result, "*.tar.gz")))
check("tarballs", len(tarballs) >= 1, [os.path.basename(t) for t in tarballs])
for path in tarballs:
    bad = []
    with tarfile.open(path, "r:gz") as t:
        members = t.getmembers()
    for m in members:
        name = m.name.rstrip("/")
        k = kind(m)
        if k == "dir":
            want = 0o755
        elif k == "file":
            want = 0o755 if name.startswith("usr/bin/") else 0o644
        else:
            bad.append(f"{name}: a {k}, only directories and files belong in the tarball")
            continue
        if m.mode != want:
            bad.append(f"{name}: {k} mode {m.mode:04o}, want {want:04o}")
        if (m.uid, m.gid, m.uname, m.gname) != (0, 0, "", ""):
            bad.append(f"{name}: owner {m.uid}:{m.gid} ({m.uname!r}:{m.gname!r}), want 0:0 without names")
    check(f"{os.path.basename(path)} modes and owners", not bad,
          f"{len(members)} entries" if not bad else "\n    " + "\n    ".join(bad))

layout = os.path.join(result, "oci")
def blob(digest):
    algo, hexdigest = digest.split(":", 1)
    return os.path.join(layout, "blobs", algo, hexdigest)

def manifests(descriptors):
    # The release tags an image index: its manifests are the platform images.
    for desc in descriptors:
        if desc["mediaType"] == "application/vnd.oci.image.index.v1+json":
            yield from manifests(json.load(open(blob(desc["digest"])))["manifests"])
        else:
            yield desc

index = json.load(open(os.path.join(layout, "index.json")))
for desc in manifests(index["manifests"]):
    manifest = json.load(open(blob(desc["digest"])))
    config = json.load(open(blob(manifest["config"]["digest"])))
    user = config.get("config", {}).get("User", "")
    match = re.fullmatch(r"([0-9]+)(?::([0-9]+))?", user)
    uid = int(match.group(1)) if match else None
    check("config.User is numeric and non-root", match is not None and uid != 0, repr(user))
    for layer in manifest["layers"]:
        bad, user_owned = [], []
        with tarfile.open(blob(layer["digest"]), "r:*") as t:
            members = t.getmembers()
        for m in members:
            name = m.name.rstrip("/")
            k = kind(m)
            if k not in ("dir", "file", "symlink"):
                bad.append(f"{name}: a {k}")
                continue
            if m.mode & 0o6000:
                bad.append(f"{name}: setuid/setgid ({m.mode:04o})")
            if k == "file" and m.mode not in (0o644, 0o755):
                bad.append(f"{name}: file mode {m.mode:04o}, want 0644 or 0755")
            if k == "dir" and m.mode not in (0o755, 0o1777):
                bad.append(f"{name}: directory mode {m.mode:04o}, want 0755 (1777 for /tmp)")
            if (m.uid, m.gid) != (0, 0):
                if k == "dir" and m.uid == uid:
                    user_owned.append(name)
                else:
                    bad.append(f"{name}: {k} owned by {m.uid}:{m.gid}; only the runtime user's directories may be")
        check(f"layer {layer['digest'][:19]} modes and owners", not bad,
              f"{len(members)} entries" if not bad else "\n    " + "\n    ".join(bad))
        if uid is not None:
            print(f"modes: the runtime user (uid {uid}) owns: {', '.join('/' + n for n in user_owned) or 'nothing'}")

sys.exit(1 if failures else 0)
PY
echo "modes: $RESULT passes"
