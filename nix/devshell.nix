# devShells.default: the pinned Rust 1.85 toolchain with the std of every
# release target, the armv7 cross variables (pointing at the nixos-22.11
# armv7 gcc by absolute path, so its setup hook never runs in a 26.05 shell),
# qemu-user and the tools the checks use; the inputs of every check come along
# via inputsFrom. (Only armv7's variables: amd64's would, on x86_64, make
# plain host builds link with 22.11's gcc too.)
#
# Host cargo commands work as usual; armv7 ones need --target, e.g.
#   ADP_TEST_RUNNER=qemu-arm cargo test --workspace --target armv7-unknown-linux-gnueabihf
# (CARGO_BUILD_TARGET and ADP_TEST_RUNNER are left unset so that plain
# `cargo test` stays a host build.)
{
  pkgs,
  craneLib,
  crossEnv,
  checks,
}:

craneLib.devShell (
  removeAttrs crossEnv [
    "CARGO_BUILD_TARGET"
    "ADP_TEST_RUNNER"
  ]
  // {
    inherit checks;
    packages = [
      pkgs.qemu-user
      pkgs.patchelf
      pkgs.skopeo
      pkgs.umoci
      pkgs.jq
      pkgs.diffoscopeMinimal
    ];
  }
)
