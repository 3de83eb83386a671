# Rust 1.85.0 (the compiler the Debian path uses) for the build system, plus
# the armv7-unknown-linux-gnueabihf standard library.
#
# fenix is pinned at a commit whose data/stable.json is the 2025-02-20
# manifest (cargo/rustc/clippy/rustfmt/rust-std 1.85.0). `stable` and
# `targets.<triple>.stable` read that JSON from fenix's own source, so no
# import-from-derivation happens (unlike `toolchainOf { sha256 }`).
# `stable.rustc` already carries the build system's rust-std; `combine` only
# adds the armv7 one.
{ fenix }:

fenix.combine [
  fenix.stable.cargo
  fenix.stable.rustc
  fenix.stable.clippy
  fenix.stable.rustfmt
  fenix.targets.armv7-unknown-linux-gnueabihf.stable.rust-std
]
