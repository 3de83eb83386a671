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

  # The release architectures (the make path's checks/lib/arch.sh).
  arches = import ./arches.nix;
  archNames = [
    "armv7"
    "arm64"
    "amd64"
  ];
  # The build system's own Rust target: an architecture with it is built
  # natively (amd64 on x86_64-linux, arm64 on aarch64-linux).
  buildTarget = pkgs.stdenv.hostPlatform.rust.rustcTarget;

  # nixos-22.11 provides nothing but each architecture's C toolchain and
  # runtime: gcc with glibc 2.35, the newest glibc at or below the 2.36
  # floor. A foreign architecture's is pkgsCross.<example>; the build
  # system's own is 22.11's native stdenv (22.11's pkgsCross would build a
  # cross compiler from the CPU to itself).
  pkgs2211 = nixpkgs-2211.legacyPackages.${system};
  cToolchain =
    name:
    let
      native = arches.${name}.target == buildTarget;
      set = if native then pkgs2211 else pkgs2211.pkgsCross.${arches.${name}.example};
    in
    {
      inherit native;
      inherit (set) glibc;
      cc = set.stdenv.cc;
    };

  craneLib = (crane.mkLib pkgs).overrideToolchain (
    p:
    import ./toolchain.nix {
      fenix = fenix.packages.${p.stdenv.hostPlatform.system};
      buildTarget = p.stdenv.hostPlatform.rust.rustcTarget;
      targets = map (name: arches.${name}.target) archNames;
    }
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

  crossEnvFor =
    name:
    import ./cross-env.nix {
      inherit lib;
      arch = arches.${name};
      inherit (cToolchain name) cc native;
      inherit (pkgs) qemu-user;
    };

  # The commit, its 8-digit hash and time, as make derives them from git.
  buildInfo = import ./build-info.nix self;

  adp = import ./adp.nix { inherit craneLib commonArgs buildInfo; };

  # One architecture's release (packages.adp-ARCH); `extraArgs` make a
  # second, independent build of it (its own dependency build too) for
  # checks.adp-reproducibility.
  mkArch =
    extraArgs: name:
    let
      arch = arches.${name};
      c = cToolchain name;
      args = commonArgs // extraArgs;
      crossEnv = crossEnvFor name;
      binary = import ./agent-data-plane.nix {
        inherit
          name
          arch
          craneLib
          crossEnv
          buildInfo
          ;
        inherit (pkgs) patchelf;
        commonArgs = args;
      };
      rootfs = import ./rootfs.nix {
        inherit (pkgs) runCommand binutils;
        inherit name arch binary;
        inherit (c) glibc;
        gccLib = c.cc.cc.lib;
      };
    in
    import ./package.nix {
      inherit
        lib
        name
        arch
        craneLib
        crossEnv
        adp
        binary
        rootfs
        sources
        version
        ;
      inherit (c) cc;
      inherit (pkgs) runCommand cacert;
      commonArgs = args;
      inherit (buildInfo) revision sourceDateEpoch;
    };

  # Every architecture and the release that joins them (packages.release).
  mkReleaseSet =
    extraArgs:
    let
      perArch = lib.genAttrs archNames (mkArch extraArgs);
    in
    perArch
    // {
      release = import ./release.nix {
        inherit (pkgs) runCommand;
        inherit adp version;
        inputs = map (name: perArch.${name}) archNames;
      };
    };

  builds = mkReleaseSet { };
  # Same inputs built again with no shared artifacts and one cargo job
  # instead of many (a different schedule): any difference is nondeterminism.
  rebuilt = mkReleaseSet { CARGO_BUILD_JOBS = "1"; };
  inherit (builds.armv7) binary rootfs;

  checks = import ./checks.nix {
    inherit
      pkgs
      arches
      cToolchain
      craneLib
      commonArgs
      sources
      adp
      builds
      rebuilt
      ;
    crossEnv = crossEnvFor "armv7";
  };
in
{
  packages = {
    default = builds.armv7;
    adp-armv7 = builds.armv7;
    adp-arm64 = builds.arm64;
    adp-amd64 = builds.amd64;
    inherit (builds) release;
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
    inherit pkgs craneLib checks;
    crossEnv = crossEnvFor "armv7";
  };

  # `nix fmt`: nixfmt over the whole tree (what crane itself uses).
  formatter = pkgs.nixfmt-tree;
}
