#!/usr/bin/env bash
# OCI validity of the built images, with the tools a registry client would use.
#
#   checks/oci.sh result-adp-armv7        # an architecture's result dir (oci/ + *.oci.tar)
#   checks/oci.sh result-release          # the release: one index over three platforms
#   checks/oci.sh result-adp-armv7/oci    # or a bare OCI layout
#
# Verifies: `skopeo inspect` reads the layout (and the oci-archive, when
# present; for the release, the raw index lists linux/arm/v7, linux/arm64 and
# linux/amd64 once each); then for each platform's image: `umoci unpack
# --rootless` unpacks it; the platform in the config and in the manifest
# descriptor; the version/revision/created annotations; a non-root numeric
# user that /etc/passwd in the image names; entrypoint, command and exposed
# ports; the architecture's loader, libc and libgcc_s in the rootfs.
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

run skopeo inspect --raw "oci:$LAYOUT:$tag" >"$work/tagged.json"
if [ -n "$RESULT" ]; then
    for archive in "$RESULT"/*.oci.tar; do
        [ -e "$archive" ] || { echo "oci: no *.oci.tar in $RESULT" >&2; exit 1; }
        run skopeo inspect --raw "oci-archive:$archive:$tag" >"$work/archive-tagged.json"
        cmp -s "$work/tagged.json" "$work/archive-tagged.json" ||
            { echo "oci: $archive holds a different image than $LAYOUT" >&2; exit 1; }
        say "ok    oci-archive $archive has the same tagged $(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["mediaType"])' "$work/tagged.json")"
    done
fi
python3 "$(dirname "$0")/lib/oci_platforms.py" "$LAYOUT" "$work/platforms" >"$work/platforms.txt"
if grep -q ' index$' "$work/platforms.txt"; then
    python3 - "$work/tagged.json" <<'PY'
import json, sys
index = json.load(open(sys.argv[1]))
platforms = [m.get("platform") for m in index["manifests"]]
print("oci: the tagged image is an index:", ", ".join(f"{p['os']}/{p['architecture']}" + (f"/{p['variant']}" if p.get("variant") else "") for p in platforms))
want = [{"architecture": "arm", "os": "linux", "variant": "v7"}, {"architecture": "arm64", "os": "linux"}, {"architecture": "amd64", "os": "linux"}]
ok = index.get("mediaType") == "application/vnd.oci.image.index.v1+json" and platforms == want
print(f"oci: {'ok   ' if ok else 'FAIL '} index media type and platforms linux/arm/v7, linux/arm64, linux/amd64")
sys.exit(0 if ok else 1)
PY
fi

while read -r arch layout image_tag _; do
say "--- $arch image (layout $layout)"
run skopeo inspect --raw "oci:$layout:$image_tag" >"$work/manifest.json"
run skopeo inspect --config "oci:$layout:$image_tag" >"$work/config.json"
run skopeo inspect "oci:$layout:$image_tag" >/dev/null
rm -rf "$work/bundle"
run umoci unpack --rootless --image "$layout:$image_tag" "$work/bundle" >/dev/null
[ -x "$work/bundle/rootfs/usr/bin/agent-data-plane" ] || { echo "oci: unpacked rootfs has no executable /usr/bin/agent-data-plane" >&2; exit 1; }
say "ok    umoci unpacked $(find "$work/bundle/rootfs" | wc -l) paths"

python3 - "$layout/index.json" "$work/manifest.json" "$work/config.json" "$work/bundle/rootfs" "$arch" <<'PY'
import json, os, sys

index_path, manifest_path, config_path, rootfs, arch = sys.argv[1:]
index = json.load(open(index_path))
manifest = json.load(open(manifest_path))
config = json.load(open(config_path))
failures = []

def check(what, ok, detail):
    print(f"oci: {'ok   ' if ok else 'FAIL '} {what}: {detail}")
    if not ok:
        failures.append(what)

want_platform = {
    "armv7": {"os": "linux", "architecture": "arm", "variant": "v7"},
    "arm64": {"os": "linux", "architecture": "arm64"},
    "amd64": {"os": "linux", "architecture": "amd64"},
}[arch]
libs = {
    "armv7": ("lib/ld-linux-armhf.so.3", "lib/arm-linux-gnueabihf"),
    "arm64": ("lib/ld-linux-aarch64.so.1", "lib/aarch64-linux-gnu"),
    "amd64": ("lib64/ld-linux-x86-64.so.2", "lib/x86_64-linux-gnu"),
}[arch]
desc = index["manifests"][0]
check("index has one manifest", len(index["manifests"]) == 1, len(index["manifests"]))
check("index platform", desc.get("platform") == want_platform, desc.get("platform"))
got = {k: config.get(k) for k in ("os", "architecture", "variant") if k in config}
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
for path in ("etc/ssl/certs/ca-certificates.crt", libs[0], f"{libs[1]}/libc.so.6", f"{libs[1]}/libgcc_s.so.1", "etc/group"):
    check(f"rootfs has /{path}", os.path.exists(os.path.join(rootfs, path)), "present" if os.path.exists(os.path.join(rootfs, path)) else "missing")
sys.exit(1 if failures else 0)
PY
done <"$work/platforms.txt"
say "$LAYOUT passes ($(cut -d' ' -f1 "$work/platforms.txt" | tr '\n' ' '))"
