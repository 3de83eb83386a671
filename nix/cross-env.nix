# Cargo and cc-crate variables for armv7-unknown-linux-gnueabihf, set by hand.
#
# The C side (linker, and the compiler for any cc-crate build script) is
# nixos-22.11's pkgsCross.armv7l-hf-multiplatform gcc with glibc 2.35: no
# nixpkgs release shipped glibc 2.36 and the binary must load on 2.36 (Debian
# bookworm), so 2.35 is the newest glibc it can be linked against. The
# compiler is used by absolute path and never put in a 26.05 derivation's
# inputs, so the setup hooks of the two nixpkgs never meet. crane's built-in
# cross support is not used for the same reason: it wants one spliced cross
# package set, and 26.05's would bring its own, newer glibc.
{ armv7Cc, qemu-user }:

let
  prefix = "${armv7Cc}/bin/${armv7Cc.targetPrefix}";
  binutils = "${armv7Cc.bintools}/bin/${armv7Cc.targetPrefix}";
  # Test binaries keep the store interpreter the linker gave them, so
  # qemu-arm needs no -L sysroot. That ld.so finds glibc in its own lib/;
  # libgcc_s is in gcc's target lib dir, named here in case the linker left
  # it off the rpath.
  # (lib/systems/examples.nix: armv7l-hf-multiplatform's config.)
  gccLib = "${armv7Cc.cc.lib}/armv7l-unknown-linux-gnueabihf/lib";
  runner = "${qemu-user}/bin/qemu-arm -E LD_LIBRARY_PATH=${gccLib}:${armv7Cc.cc.lib}/lib";
in
{
  # Cargo: what to build for, how to link, how to run tests.
  CARGO_BUILD_TARGET = "armv7-unknown-linux-gnueabihf";
  CARGO_TARGET_ARMV7_UNKNOWN_LINUX_GNUEABIHF_LINKER = "${prefix}cc";
  CARGO_TARGET_ARMV7_UNKNOWN_LINUX_GNUEABIHF_RUNNER = runner;

  # The cc crate reads the lower-case triple form first, then TARGET_*.
  CC_armv7_unknown_linux_gnueabihf = "${prefix}cc";
  CXX_armv7_unknown_linux_gnueabihf = "${prefix}c++";
  AR_armv7_unknown_linux_gnueabihf = "${binutils}ar";
  TARGET_CC = "${prefix}cc";
  TARGET_CXX = "${prefix}c++";
  TARGET_AR = "${binutils}ar";

  # Build scripts and proc macros run on the build machine: the native
  # stdenv's compiler, which is on PATH.
  HOST_CC = "cc";
  HOST_CXX = "c++";
  HOST_AR = "ar";

  # Tests that exec a built binary themselves prefix it with this (there is
  # no binfmt_misc in the build sandbox).
  ADP_TEST_RUNNER = runner;
}
