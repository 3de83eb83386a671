# One architecture's image runtime: exactly the shared libraries its binary
# NEEDs, taken from nixos-22.11's glibc 2.35 and gcc for the architecture,
# laid out so that the patched binary (Debian's interpreter, no rpath) loads.
#
# A Nix-built ld.so searches only its own store path's lib/: nixpkgs patches
# it to ignore /etc/ld.so.cache, and /lib and /usr/lib are not on its default
# path. So the libraries go to that same path inside the rootfs, and the
# interpreter (/lib/ld-linux-armhf.so.3, /lib/ld-linux-aarch64.so.1,
# /lib64/ld-linux-x86-64.so.2) is a *relative* link to it, which resolves
# inside the rootfs both in a container and under `qemu-… -L ROOTFS`.
# Debian's multiarch paths (/lib/arm-linux-gnueabihf/*, /lib/aarch64-linux-gnu/*,
# /lib/x86_64-linux-gnu/*) are relative links too, so the image looks like the
# make path's to people and to checks/oci.sh and checks/image-smoke.sh.
{
  runCommand,
  binutils,
  # The architecture's name and its nix/arches.nix entry.
  name,
  arch,
  binary,
  glibc,
  gccLib,
}:

let
  ldso = baseNameOf arch.interpreter;
  # The interpreter's directory (/lib, /lib64) is one level below the root.
  interpreterDir = dirOf arch.interpreter;
in
runCommand "adp-${name}-rootfs"
  {
    nativeBuildInputs = [ binutils ];
    inherit binary glibc gccLib;
  }
  ''
    set -o pipefail
    libdir=$out$glibc/lib
    multiarch=$out/lib/${arch.gnu}
    mkdir -p "$libdir" "$multiarch" $out${interpreterDir}
    cp -L "$glibc/lib/${ldso}" "$libdir/"
    ln -s "../''${glibc#/}/lib/${ldso}" $out${arch.interpreter}
    ln -s "../../''${glibc#/}/lib/${ldso}" "$multiarch/${ldso}"

    # Each NEEDED library from glibc or, for libgcc_s, gcc's lib output (its
    # target lib dir when cross-compiled); a library found in neither fails
    # the build here, not at run time. The release binary also NEEDs the
    # loader (glibc >= 2.34 puts _dl_* symbols there), which is already in
    # place with its links.
    readelf -d "$binary/bin/agent-data-plane" \
      | sed -n 's/.*(NEEDED).*\[\(.*\)\]/\1/p' \
      | while read -r soname; do
          [ ! -e "$libdir/$soname" ] || continue
          found=$(find -L "$glibc/lib" "$gccLib" -maxdepth 3 -name "$soname" -type f | head -n 1)
          if [ -z "$found" ]; then
            echo "rootfs: $soname (NEEDED by agent-data-plane) is in neither $glibc nor $gccLib" >&2
            exit 1
          fi
          cp -L "$found" "$libdir/$soname"
          ln -s "../../''${glibc#/}/lib/$soname" "$multiarch/$soname"
        done
    chmod -R u+w,go-w $out
    ls -lR $out
  ''
