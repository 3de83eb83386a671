# The release architectures: the flake's copy of the make path's table
# (checks/lib/arch.sh; bin/adp-package/src/arch.rs has the packaging side).
# The names (armv7, arm64, amd64) are the ones in file names and outputs.
#   target       the Rust target
#   example      the lib.systems.examples entry of its C toolchain in
#                nixos-22.11's pkgsCross (used when the build machine is of
#                another CPU; on its own CPU, 22.11's native stdenv)
#   gnu          Debian's GNU triple: the cross binutils' names
#                (aarch64-linux-gnu-readelf) and the multiarch library
#                directory (/lib/aarch64-linux-gnu)
#   interpreter  the ELF interpreter the shipped binary requests
#   qemu         the qemu-user program that runs it on another CPU
{
  armv7 = {
    target = "armv7-unknown-linux-gnueabihf";
    example = "armv7l-hf-multiplatform";
    gnu = "arm-linux-gnueabihf";
    interpreter = "/lib/ld-linux-armhf.so.3";
    qemu = "qemu-arm";
  };
  arm64 = {
    target = "aarch64-unknown-linux-gnu";
    example = "aarch64-multiplatform";
    gnu = "aarch64-linux-gnu";
    interpreter = "/lib/ld-linux-aarch64.so.1";
    qemu = "qemu-aarch64";
  };
  amd64 = {
    target = "x86_64-unknown-linux-gnu";
    example = "gnu64";
    gnu = "x86_64-linux-gnu";
    interpreter = "/lib64/ld-linux-x86-64.so.2";
    qemu = "qemu-x86_64";
  };
}
