#!/usr/bin/env bash
# OCI validity of the built image, with the tools a registry client would use.
#
#   checks/oci.sh result-adp-armv7        # the result dir (oci/ + *.oci.tar)
#   checks/oci.sh result-adp-armv7/oci    # or a bare OCI layout
#
# Verifies: `skopeo inspect` reads the layout (and the oci-archive, when
# present); `umoci unpack --rootless` unpacks it; linux/arm/v7 in the config
# and in index.json's manifest descriptor; the version/revision/created
# annotations; a non-root numeric user that /etc/passwd in the image names;
# entrypoint, command and exposed ports.
set -euo pipefail

DIR=${1:?usage: checks/oci.sh RESULT_DIR|OCI_LAYOUT}
[ -d "$DIR/oci" ] && { RESULT=$DIR; LAYOUT=$DIR/oci; } || { RESULT=; LAYOUT=$DIR; }
for tool in skopeo umoci python3; do
    command -v "$tool" >/dev/null || { echo "oci: $tool not found (make setup)" >&2; exit 2; }
done
[ -f "$LAYOUT/index.json" ] || { echo "oci: $LAYOUT/index.json missing: not an OCI layout" >&2; exit 1; }

say() { printf 'oci: %s\n' "$*"; }
run() { printf '+ %s\n' "$*" >&2; "$@"; }
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

tag=$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["manifests"][0]["annotations"]["org.opencontainers.image.ref.name"])' "$LAYOUT/index.json")
say "layout $LAYOUT, tag $tag"

run skopeo inspect --raw "oci:$LAYOUT:$tag" >"$work/manifest.json"
run skopeo inspect --config "oci:$LAYOUT:$tag" >"$work/config.json"
run skopeo inspect "oci:$LAYOUT:$tag" >/dev/null
if [ -n "$RESULT" ]; then
    for archive in "$RESULT"/*.oci.tar; do
        [ -e "$archive" ] || { echo "oci: no *.oci.tar in $RESULT" >&2; exit 1; }
        run skopeo inspect --raw "oci-archive:$archive:$tag" >"$work/archive-manifest.json"
        cmp -s "$work/manifest.json" "$work/archive-manifest.json" ||
            { echo "oci: $archive holds a different manifest than $LAYOUT" >&2; exit 1; }
        say "ok    oci-archive $archive has the same manifest"
    done
fi

# umoci needs a writable layout (it takes a lock): unpack from a copy, made
# writable (a copy of a read-only input, such as a store path, would be
# read-only too, and the trap's rm would then fail for an unprivileged user).
cp -r --no-preserve=mode "$LAYOUT" "$work/layout"
run umoci unpack --rootless --image "$work/layout:$tag" "$work/bundle" >/dev/null
[ -x "$work/bundle/rootfs/usr/bin/agent-data-plane" ] || { echo "oci: unpacked rootfs has no executable /usr/bin/agent-data-plane" >&2; exit 1; }
say "ok    umoci unpacked $(find "$work/bundle/rootfs" | wc -l) paths"

python3 - "$LAYOUT/index.json" "$work/manifest.json" "$work/config.json" "$work/bundle/rootfs" <<'PY'
import json, os, sys

index_path, manifest_path, config_path, rootfs = sys.argv[1:]
index = json.load(open(index_path))
manifest = json.load(open(manifest_path))
config = json.load(open(config_path))
failures = []

def check(what, ok, detail):
    print(f"oci: {'ok   ' if ok else 'FAIL '} {what}: {detail}")
    if not ok:
        failures.append(what)

want_platform = {"os": "linux", "architecture": "arm", "variant": "v7"}
desc = index["manifests"][0]
check("index has one manifest", len(index["manifests"]) == 1, len(index["manifests"]))
check("index platform", desc.get("platform") == want_platform, desc.get("platform"))
got = {k: config.get(k) for k in want_platform}
check("config platform", got == want_platform, got)
check("manifest media type", manifest.get("mediaType") == "application/vnd.oci.image.manifest.v1+json", manifest.get("mediaType"))
ann = desc.get("annotations", {})
for key in ("version", "revision", "created", "ref.name"):
    full = "org.opencontainers.image." + key
    check(f"annotation {full}", bool(ann.get(full)), ann.get(full))
check("created matches the annotation", config.get("created") == ann.get("org.opencontainers.image.created"), config.get("created"))

cfg = config.get("config", {})
user = cfg.get("User", "")
uid = user.split(":")[0]
passwd = {}
with open(os.path.join(rootfs, "etc/passwd")) as f:
    for line in f:
        fields = line.strip().split(":")
        if len(fields) >= 4:
            passwd[fields[2]] = fields[0]
            passwd[fields[0]] = fields[2]
resolved = uid if uid.isdigit() else passwd.get(uid)
check("user is non-root", bool(resolved) and resolved != "0", f"{user!r} (uid {resolved})")
check("user is in /etc/passwd", uid in passwd, f"{uid} -> {passwd.get(uid)}")
check("entrypoint", cfg.get("Entrypoint") == ["/usr/bin/agent-data-plane"], cfg.get("Entrypoint"))
check("cmd", cfg.get("Cmd") == ["run"], cfg.get("Cmd"))
ports = sorted(cfg.get("ExposedPorts", {}))
check("exposed ports", ports == ["5100/tcp", "5101/tcp", "8125/udp"], ports)
check("one layer", len(manifest.get("layers", [])) == 1 and len(config["rootfs"]["diff_ids"]) == 1, len(manifest.get("layers", [])))
for path in ("etc/ssl/certs/ca-certificates.crt", "lib/ld-linux-armhf.so.3", "lib/arm-linux-gnueabihf/libc.so.6", "lib/arm-linux-gnueabihf/libgcc_s.so.1", "etc/group"):
    check(f"rootfs has /{path}", os.path.exists(os.path.join(rootfs, path)), "present" if os.path.exists(os.path.join(rootfs, path)) else "missing")
sys.exit(1 if failures else 0)
PY
say "$LAYOUT passes"
