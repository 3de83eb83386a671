# The image's runtime: exactly the shared libraries the armv7 binary NEEDs,
# taken from nixos-22.11's armv7 glibc 2.35 and gcc, laid out so that the
# patched binary (interpreter /lib/ld-linux-armhf.so.3, no rpath) loads.
#
# A Nix-built ld.so searches only its own store path's lib/: nixpkgs patches
# it to ignore /etc/ld.so.cache, and /lib and /usr/lib are not on its default
# path. So the libraries go to that same path inside the rootfs, and
# /lib/ld-linux-armhf.so.3 is a *relative* link to it, which resolves inside
# the rootfs both in a container and under `qemu-arm -L ROOTFS`. Debian's
# paths (/lib/arm-linux-gnueabihf/*) are relative links too, so the image
# looks like the make path's to people and to checks/oci.sh.
{
  runCommand,
  binutils,
  binary,
  glibc,
  gccLib,
}:

runCommand "adp-armv7-rootfs"
  {
    nativeBuildInputs = [ binutils ];
    inherit binary glibc gccLib;
  }
  ''
    set -o pipefail
    libdir=$out$glibc/lib
    mkdir -p "$libdir" $out/lib/arm-linux-gnueabihf
    cp -L "$glibc/lib/ld-linux-armhf.so.3" "$libdir/"
    ln -s "../''${glibc#/}/lib/ld-linux-armhf.so.3" $out/lib/ld-linux-armhf.so.3
    ln -s "../../''${glibc#/}/lib/ld-linux-armhf.so.3" $out/lib/arm-linux-gnueabihf/ld-linux-armhf.so.3

    # Each NEEDED library from glibc or, for libgcc_s, gcc's target lib dir;
    # a library found in neither fails the build here, not at run time. The
    # release binary also NEEDs ld-linux-armhf.so.3 (glibc >= 2.34 puts
    # _dl_* symbols there), which is already in place with its links.
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
          ln -s "../../''${glibc#/}/lib/$soname" "$out/lib/arm-linux-gnueabihf/$soname"
        done
    chmod -R u+w,go-w $out
    ls -lR $out
  ''
