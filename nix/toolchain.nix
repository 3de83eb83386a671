# Rust 1.85.0 (the compiler the Debian path uses) for the build system, plus
# the standard library of every release target (nix/arches.nix) the build
# system is not.
#
# fenix is pinned at a commit whose data/stable.json is the 2025-02-20
# manifest (cargo/rustc/clippy/rustfmt/rust-std 1.85.0). `stable` and
# `targets.<triple>.stable` read that JSON from fenix's own source, so no
# import-from-derivation happens (unlike `toolchainOf { sha256 }`).
# `stable.rustc` already carries the build system's rust-std (fenix's
# lib/mk-toolchain.nix combines rustc with it); `combine` only adds the
# others.
{
  fenix,
  # The build system's Rust target (stdenv.hostPlatform.rust.rustcTarget).
  buildTarget,
  # The Rust targets to build for.
  targets,
}:

fenix.combine (
  [
    fenix.stable.cargo
    fenix.stable.rustc
    fenix.stable.clippy
    fenix.stable.rustfmt
  ]
  ++ map (target: fenix.targets.${target}.stable.rust-std) (
    builtins.filter (target: target != buildTarget) targets
  )
)
