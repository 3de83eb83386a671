#!/usr/bin/env python3
"""Splits an OCI layout into one single-image layout per platform, for the checks
that inspect or unpack one image at a time (checks/oci.sh, checks/image-smoke.sh,
checks/modes.sh): umoci unpacks a manifest, not an index.

  oci_platforms.py LAYOUT OUTDIR

LAYOUT's index.json names either one image (an architecture's build) or one image
index over several platforms (the release, adp-package release). For each
platform image, OUTDIR/ARCH/ becomes a layout of its own (oci-layout, the blobs
it needs, an index.json naming its manifest with the platform and the tag of the
original); prints "ARCH DIR TAG KIND" a line, KIND being "image" or "index" (what
LAYOUT's tagged descriptor is). ARCH is the project's name: armv7, arm64, amd64.
"""

import json
import os
import shutil
import sys

INDEX = "application/vnd.oci.image.index.v1+json"
ARCHES = {("arm", "v7"): "armv7", ("arm64", None): "arm64", ("amd64", None): "amd64"}


def blob(layout, digest):
    algo, hexdigest = digest.split(":", 1)
    return os.path.join(layout, "blobs", algo, hexdigest)


def main():
    layout, out = sys.argv[1:3]
    top = json.load(open(os.path.join(layout, "index.json")))
    if len(top["manifests"]) != 1:
        sys.exit(f"{layout}/index.json has {len(top['manifests'])} descriptors; one tagged image or index expected")
    tagged = top["manifests"][0]
    tag = tagged.get("annotations", {}).get("org.opencontainers.image.ref.name", "")
    if tagged["mediaType"] == INDEX:
        kind = "index"
        descriptors = json.load(open(blob(layout, tagged["digest"])))["manifests"]
    else:
        kind = "image"
        descriptors = [tagged]
    for desc in descriptors:
        platform = desc.get("platform", {})
        arch = ARCHES.get((platform.get("architecture"), platform.get("variant")))
        if arch is None:
            sys.exit(f"{layout}: a manifest for an unknown platform {platform}")
        manifest = json.load(open(blob(layout, desc["digest"])))
        target = os.path.join(out, arch)
        os.makedirs(os.path.join(target, "blobs", "sha256"), exist_ok=True)
        for d in [desc, manifest["config"], *manifest["layers"]]:
            shutil.copyfile(blob(layout, d["digest"]), blob(target, d["digest"]))
        shutil.copyfile(os.path.join(layout, "oci-layout"), os.path.join(target, "oci-layout"))
        single = dict(desc)
        single["annotations"] = dict(desc.get("annotations", {}), **{"org.opencontainers.image.ref.name": tag})
        with open(os.path.join(target, "index.json"), "w") as f:
            json.dump({"schemaVersion": 2, "mediaType": INDEX, "manifests": [single]}, f)
        print(arch, target, tag, kind)


if __name__ == "__main__":
    main()
