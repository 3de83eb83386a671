# One build system's outputs: wires the pinned inputs to the files beside
# this one (one concern each). flake.nix calls it once per build system.
{
  self,
  system,
  nixpkgs,
  nixpkgs-2211,
  crane,
  fenix,
  mkAgent,
  nixosModule,
}:

let
  pkgs = nixpkgs.legacyPackages.${system};
  inherit (pkgs) lib;

  # nixos-22.11 provides nothing but the armv7 C toolchain and runtime:
  # gcc with glibc 2.35, the newest glibc at or below the 2.36 floor.
  armv7 = nixpkgs-2211.legacyPackages.${system}.pkgsCross.armv7l-hf-multiplatform;
  armv7Cc = armv7.stdenv.cc;

  craneLib = (crane.mkLib pkgs).overrideToolchain (
    p: import ./toolchain.nix { fenix = fenix.packages.${p.stdenv.hostPlatform.system}; }
  );

  sources = import ./sources.nix { inherit lib; };
  version = (lib.importTOML ../Cargo.toml).workspace.package.version;

  # Identical in every derivation, so the dependency builds are shared. The
  # remaps give the binaries the make path's file names: the workspace
  # becomes /build, the vendored crates' store path /cargo, so neither the
  # build directory nor a store path reaches a binary. stdenv unpacks the
  # "source" store path to $NIX_BUILD_TOP/source, which is /build/source in
  # the Linux sandbox but elsewhere without it (sandbox = false, another
  # build-dir), so the flag is made at build time. The same string in the
  # dependency build (whose dummy source is unpacked elsewhere) keeps cargo's
  # fingerprints, and so the dependency artifacts, valid for the final build.
  cargoVendorDir = craneLib.vendorCargoDeps { src = sources.cargo; };
  commonArgs = {
    src = sources.cargo;
    pname = "adp";
    inherit version cargoVendorDir;
    strictDeps = true;
    preBuild = ''
      export CARGO_BUILD_RUSTFLAGS="--remap-path-prefix=$NIX_BUILD_TOP/source=/build --remap-path-prefix=${cargoVendorDir}=/cargo"
    '';
  };

  crossEnv = import ./cross-env.nix {
    inherit armv7Cc;
    inherit (pkgs) qemu-user;
  };

  # The commit, its 8-digit hash and time, as make derives them from git.
  buildInfo = import ./build-info.nix self;

  adp = import ./adp.nix { inherit craneLib commonArgs buildInfo; };

  # The armv7 release; `extraArgs` make a second, independent build of it
  # (its own dependency build too) for checks.adp-reproducibility.
  mkRelease =
    extraArgs:
    let
      args = commonArgs // extraArgs;
      binary = import ./agent-data-plane.nix {
        inherit craneLib crossEnv buildInfo;
        inherit (pkgs) patchelf;
        commonArgs = args;
      };
      rootfs = import ./rootfs.nix {
        inherit (pkgs) runCommand binutils;
        inherit binary;
        glibc = armv7.glibc;
        gccLib = armv7Cc.cc.lib;
      };
    in
    import ./package.nix {
      inherit lib craneLib crossEnv armv7Cc adp binary rootfs sources version;
      inherit (pkgs) runCommand cacert;
      commonArgs = args;
      inherit (buildInfo) revision sourceDateEpoch;
    };

  release = mkRelease { };
  # Same inputs built again with no shared artifacts and one cargo job
  # instead of many (a different schedule): any difference is nondeterminism.
  releaseRebuilt = mkRelease { CARGO_BUILD_JOBS = "1"; };
  inherit (release) binary rootfs;

  checks = import ./checks.nix {
    inherit pkgs armv7Cc craneLib commonArgs crossEnv sources adp binary rootfs release releaseRebuilt;
  };
in
{
  packages = {
    default = release;
    adp-armv7 = release;
    inherit adp;
    agent-data-plane-armv7 = binary;
    # For Nix users (overlays.default's package): nixos-26.05's Rust and
    # glibc, the store interpreter. `nix run .#agent-data-plane -- version`.
    agent-data-plane = mkAgent pkgs;
    # For NixOS on 32-bit ARM boards, cross-compiled: no glibc ceiling, as
    # the board's glibc is 26.05's too.
    agent-data-plane-armv7l = mkAgent pkgs.pkgsCross.armv7l-hf-multiplatform;
  };

  checks = checks // {
    # Not a make twin: a NixOS VM needs KVM and the cache (docs/nix.md).
    adp-nixos-module = import ./vm-test.nix {
      inherit pkgs adp;
      module = nixosModule;
    };
  };

  apps.adp-armv7-qemu = import ./qemu-app.nix {
    inherit (pkgs) writeShellScript qemu-user;
    inherit binary rootfs;
  };

  devShells.default = import ./devshell.nix {
    inherit pkgs craneLib crossEnv checks;
  };

  # `nix fmt`: nixfmt over the whole tree (what crane itself uses).
  formatter = pkgs.nixfmt-tree;
}
