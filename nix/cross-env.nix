# Cargo and cc-crate variables for one release architecture (nix/arches.nix),
# set by hand.
#
# The C side (linker, and the compiler for any cc-crate build script) is
# nixos-22.11's gcc with glibc 2.35 (pkgsCross.<example>, or the native
# stdenv's when the build machine has the target's CPU): no nixpkgs release
# shipped glibc 2.36 and the binary must load on 2.36 (Debian bookworm), so
# 2.35 is the newest glibc it can be linked against. The compiler is used by
# absolute path and never put in a 26.05 derivation's inputs, so the setup
# hooks of the two nixpkgs never meet. crane's built-in cross support is not
# used for the same reason: it wants one spliced cross package set, and
# 26.05's would bring its own, newer glibc.
{
  lib,
  # nix/arches.nix's entry.
  arch,
  # 22.11's gcc wrapper for the target (stdenv.cc).
  cc,
  # Whether the build machine runs the target's binaries itself.
  native,
  qemu-user,
}:

let
  prefix = "${cc}/bin/${cc.targetPrefix}";
  binutils = "${cc.bintools}/bin/${cc.targetPrefix}";
  # Test binaries keep the store interpreter the linker gave them, so qemu
  # needs no -L sysroot. That ld.so finds glibc in its own lib/; libgcc_s is
  # in gcc's target lib dir, named here in case the linker left it off the
  # rpath. (lib/systems/examples.nix: the example's config.)
  gccLib = "${cc.cc.lib}/${lib.systems.examples.${arch.example}.config}/lib";
  runner = "${qemu-user}/bin/${arch.qemu} -E LD_LIBRARY_PATH=${gccLib}:${cc.cc.lib}/lib";
  # CARGO_TARGET_<T>_* and the cc crate's CC_<t>.
  T = lib.toUpper (builtins.replaceStrings [ "-" ] [ "_" ] arch.target);
  t = builtins.replaceStrings [ "-" ] [ "_" ] arch.target;
in
{
  # Cargo: what to build for and how to link.
  CARGO_BUILD_TARGET = arch.target;
  "CARGO_TARGET_${T}_LINKER" = "${prefix}cc";

  # The cc crate reads the lower-case triple form first, then TARGET_* (or,
  # when the target is the build machine's own, HOST_*).
  "CC_${t}" = "${prefix}cc";
  "CXX_${t}" = "${prefix}c++";
  "AR_${t}" = "${binutils}ar";
  TARGET_CC = "${prefix}cc";
  TARGET_CXX = "${prefix}c++";
  TARGET_AR = "${binutils}ar";

  # Build scripts and proc macros run on the build machine: the native
  # stdenv's compiler, which is on PATH. (For a native target, cargo links
  # them with the target's linker above too, as they share the triple.)
  HOST_CC = "cc";
  HOST_CXX = "c++";
  HOST_AR = "ar";
}
// lib.optionalAttrs (!native) {
  # How cargo runs the target's tests.
  "CARGO_TARGET_${T}_RUNNER" = runner;
  # Tests that exec a built binary themselves prefix it with this (there is
  # no binfmt_misc in the build sandbox).
  ADP_TEST_RUNNER = runner;
}
