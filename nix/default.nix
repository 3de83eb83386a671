# One build system's outputs: wires the pinned inputs to the files beside
# this one (one concern each). flake.nix calls it once per build system.
{
  self,
  system,
  nixpkgs,
  nixpkgs-2211,
  crane,
  fenix,
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
  # remaps give the binaries the make path's file names: the workspace (the
  # sandbox unpacks it to /build/source) becomes /build, the vendored crates'
  # store path /cargo, so no store path reaches a binary.
  cargoVendorDir = craneLib.vendorCargoDeps { src = sources.cargo; };
  commonArgs = {
    src = sources.cargo;
    pname = "adp";
    inherit version cargoVendorDir;
    strictDeps = true;
    CARGO_BUILD_RUSTFLAGS = "--remap-path-prefix=/build/source=/build --remap-path-prefix=${cargoVendorDir}=/cargo";
  };

  crossEnv = import ./cross-env.nix {
    inherit armv7Cc;
    inherit (pkgs) qemu-user;
  };

  # The same identification checks/build-adp-armv7.sh derives from git: the
  # full revision (with -dirty for a modified tree), 8 hex digits of it, and
  # the commit time as SOURCE_DATE_EPOCH.
  buildInfo = {
    revision = self.rev or self.dirtyRev or "unknown";
    gitHash =
      if self ? rev then
        builtins.substring 0 8 self.rev
      else if self ? dirtyRev then
        "${builtins.substring 0 8 self.dirtyRev}-dirty"
      else
        "unknown";
    sourceDateEpoch = self.lastModified or 315532800;
  };

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
  };

  inherit checks;

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
