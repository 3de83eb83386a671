# Stand-in for the `nixpkgs` flake input (github:NixOS/nixpkgs/nixos-26.05):
# the real nixpkgs `lib` and, per system (lib.systems.flakeExposed), a
# package set that holds only these attributes (and who reads them):
#   plumbing  lib pkgs pkgsBuildBuild pkgsBuildHost pkgsBuildTarget
#             pkgsHostHost pkgsHostTarget pkgsTargetTarget splicePackages
#             newScope callPackage makeScopeWithSplicing'   [crane's scope;
#             a native set: every pkgs* is this set, nothing spliced]
#   stdenv    stdenv { mkDerivation cc shell hasCC buildPlatform
#             hostPlatform targetPlatform isLinux isDarwin } stdenvNoCC
#             [crane, fenix; cc: targetPrefix bintools.dynamicLinker cc.lib]
#   builders  runCommand runCommandLocal writeText writeShellScript
#             symlinkJoin makeSetupHook mkShell fetchurl
#             rustPlatform.buildRustPackage makeRustPlatform
#             vscode-utils.buildVscodeExtension
#   packages  binutils cacert coreutils curl diffoscopeMinimal dpkg jq nixfmt-tree
#             patchelf python3 (.withPackages, .pkgs.datadog) qemu-user rsync
#             rustc skopeo socat umoci writableTmpDirAsHomeHook zlib zstd
#   cross     pkgsCross.armv7l-hf-multiplatform: the same set built for
#             lib.systems.examples.armv7l-hf-multiplatform (pkgs/top-level/
#             stage.nix maps lib.systems.examples to pkgsCross; a cross
#             set's derivations keep the build system's `system`)
#   testers   testers.runNixOSTest (pkgs/build-support/testers/default.nix:
#             a test module with nodes.* and testScript; each node is a
#             NixOS system, here ./nixos.nix's options evaluated by the real
#             lib.evalModules, the node's assertions enforced as NixOS does)
# The project reads: lib qemu-user patchelf runCommand binutils cacert
# writeShellScript python3 skopeo umoci jq diffoscopeMinimal dpkg nixfmt-tree,
# stdenv.hostPlatform.rust.rustcTarget (lib.systems.elaborate's).
# crane (callPackage'd files): the plumbing, stdenv, stdenvNoCC, makeSetupHook,
# runCommand(Local), writeText, fetchurl, rsync, zstd, jq, mkShell,
# rustPlatform (crane-utils), writableTmpDirAsHomeHook. fenix: stdenv,
# fetchurl, zlib, symlinkJoin, rustc (an argument of lib/combine.nix) and,
# because its flake forces every top-level attribute, makeRustPlatform and
# vscode-utils.
#
# A package is a dummy derivation (builders.nix) with the passthru
# attributes that callers read; names and versions are placeholders.
# Reading an attribute that is not listed fails with "attribute '…'
# missing", as reading a package nixpkgs does not have would.
{ lib, builders }:

let
  mkPkgs =
    system: crossSystem:
    lib.fix (
      self:
      let
        buildPlatform = lib.systems.elaborate { inherit system; };
        platform = if crossSystem == null then buildPlatform else lib.systems.elaborate crossSystem;
        isCross = crossSystem != null;
        raw =
          name: extra:
          builders.raw (
            {
              inherit name system;
            }
            // extra
          );
        pkg =
          pname: extra:
          self.stdenv.mkDerivation (
            {
              inherit pname;
              version = "standin";
            }
            // extra
          );

        # The native toolchain of the stdenv (bootstrap: no mkDerivation).
        glibc = raw "glibc-standin" {
          outputs = [
            "out"
            "dev"
            "bin"
          ];
        };
        ldso = builders.dynamicLinkerName platform;
        targetPrefix = lib.optionalString isCross "${platform.config}-";
        bintools = raw "binutils-wrapper-standin" {
          passthru = {
            inherit targetPrefix;
            dynamicLinker = "${glibc}/lib/${ldso}";
            libc = glibc;
          };
        };
        gccUnwrapped = raw "gcc-standin" {
          outputs = [
            "out"
            "lib"
            "man"
            "info"
          ];
        };
        cc = raw "gcc-wrapper-standin" {
          passthru = {
            inherit targetPrefix;
            inherit bintools;
            cc = gccUnwrapped;
            libc = glibc;
            isGNU = true;
            isClang = false;
          };
        };
        bash = raw "bash-standin" { };

        trivial = builders.trivialBuilders {
          inherit (self) stdenv stdenvNoCC;
          runtimeShell = "${bash}/bin/bash";
        };

        # pkgs/build-support/rust/build-rust-package: only what is checked at
        # evaluation time before the derivation (one way to get the crates).
        buildRustPackage =
          args:
          assert lib.assertMsg (
            args ? cargoLock || args ? cargoHash || args ? cargoDeps || args ? cargoVendorDir
          ) "cargoHash, cargoVendorDir, cargoDeps, or cargoLock must be set";
          self.stdenv.mkDerivation (
            removeAttrs args [
              "cargoLock"
              "cargoHash"
              "cargoDeps"
            ]
            // lib.optionalAttrs (args ? cargoLock) {
              # importCargoLock reads the lock file at evaluation time.
              cargoLockHash = builtins.hashString "sha256" (
                args.cargoLock.lockFileContents or (builtins.readFile args.cargoLock.lockFile)
              );
            }
          );

        python3Packages = {
          datadog = pkg "python3-datadog" { };
        };
      in
      # Package-set plumbing (pkgs/top-level/stage.nix and splice.nix for
      # a native package set: every pkgs* set is this one, no splicing).
      lib.genAttrs [
        "pkgs"
        "pkgsBuildBuild"
        "pkgsBuildHost"
        "pkgsBuildTarget"
        "pkgsHostHost"
        "pkgsTargetTarget"
        "pkgsHostTarget"
      ] (_: self)
      // {
        inherit lib;

        splicePackages =
          {
            pkgsBuildBuild,
            pkgsBuildHost,
            pkgsBuildTarget,
            pkgsHostHost,
            pkgsHostTarget,
            pkgsTargetTarget,
          }:
          pkgsHostTarget;
        newScope = extra: lib.callPackageWith (self // extra);
        callPackage = self.newScope { };
        makeScopeWithSplicing' = lib.makeScopeWithSplicing' {
          inherit (self) splicePackages newScope;
        };

        stdenv = builders.mkStdenv {
          inherit buildPlatform;
          hostPlatform = platform;
          targetPlatform = platform;
          inherit cc;
          shell = "${bash}/bin/bash";
        };
        stdenvNoCC = builders.mkStdenv {
          inherit buildPlatform;
          hostPlatform = platform;
          targetPlatform = platform;
          cc = null;
          shell = "${bash}/bin/bash";
        };

        inherit (trivial)
          runCommand
          runCommandLocal
          writeText
          writeShellScript
          symlinkJoin
          makeSetupHook
          ;
        mkShell = builders.mkShellFor self.stdenv;
        fetchurl = builders.fetchurlFor self.stdenvNoCC;

        rustPlatform = {
          inherit buildRustPackage;
        };
        makeRustPlatform =
          { cargo, rustc, ... }:
          {
            inherit buildRustPackage;
          };

        # pkgs/applications/editors/vscode/extensions/vscode-utils.nix
        # (2025: lib.extendMkDerivation, `pname` optional, the three vscodeExt*
        # arguments required). fenix's flake forces its rust-analyzer
        # extension to weak head normal form, so this call happens.
        vscode-utils.buildVscodeExtension =
          {
            vscodeExtName,
            vscodeExtPublisher,
            vscodeExtUniqueId,
            pname ? null,
            ...
          }@args:
          self.stdenv.mkDerivation (
            removeAttrs args [ "vscodeExtUniqueId" ]
            // {
              pname = "vscode-extension-${pname}";
              passthru = (args.passthru or { }) // {
                inherit vscodeExtPublisher vscodeExtName vscodeExtUniqueId;
              };
            }
          );

        pkgsCross = lib.optionalAttrs (!isCross) {
          armv7l-hf-multiplatform = mkPkgs system lib.systems.examples.armv7l-hf-multiplatform;
        };

        testers.runNixOSTest =
          testModule:
          let
            test = lib.evalModules {
              modules = [
                {
                  options = {
                    name = lib.mkOption { type = lib.types.str; };
                    nodes = lib.mkOption {
                      type = lib.types.attrsOf lib.types.deferredModule;
                      default = { };
                    };
                    testScript = lib.mkOption { type = lib.types.either lib.types.str (lib.types.functionTo lib.types.str); };
                  };
                }
                testModule
              ];
            };
            node =
              name: module:
              let
                nixos = lib.evalModules {
                  specialArgs = {
                    inherit lib;
                  };
                  modules = [
                    ./nixos.nix
                    { _module.args.pkgs = self; }
                    module
                  ];
                };
                failed = map (a: a.message) (lib.filter (a: !a.assertion) nixos.config.assertions);
              in
              if failed != [ ] then
                throw "node ${name}: failed assertions: ${lib.concatStringsSep "; " failed}"
              else
                builtins.toJSON {
                  inherit (nixos.config.systemd) services tmpfiles;
                  etc = lib.mapAttrs (_: e: e.source) nixos.config.environment.etc;
                  packages = nixos.config.environment.systemPackages;
                };
            script = test.config.testScript;
          in
          self.runCommand "vm-test-run-${test.config.name}" {
            nodes = builtins.toJSON (lib.mapAttrs node test.config.nodes);
            testScript = if builtins.isFunction script then script { nodes = { }; } else script;
          } "";

        # Packages (dummies).
        binutils = pkg "binutils-wrapper" { };
        cacert = pkg "nss-cacert" { };
        coreutils = pkg "coreutils" { };
        curl = pkg "curl" { };
        socat = pkg "socat" { };
        diffoscopeMinimal = pkg "diffoscope" { };
        dpkg = pkg "dpkg" { };
        jq = pkg "jq" { };
        nixfmt-tree = pkg "nixfmt-tree" { };
        patchelf = pkg "patchelf" { };
        python3 = pkg "python3" {
          passthru = {
            pkgs = python3Packages;
            withPackages =
              f:
              self.runCommand "python3-standin-env" {
                # python.buildEnv: extraLibs = f python.pkgs, each one a
                # derivation coerced to its store path.
                extraLibs = f python3Packages;
              } "";
          };
        };
        qemu-user = pkg "qemu-user" { };
        rsync = pkg "rsync" { };
        rustc = pkg "rustc" { };
        skopeo = pkg "skopeo" { };
        umoci = pkg "umoci" { };
        writableTmpDirAsHomeHook = self.makeSetupHook {
          name = "writable-tmpdir-as-home-hook";
        } "${bash}/standin-setup-hook.sh";
        zlib = pkg "zlib" { };
        zstd = pkg "zstd" { };
      }
    );
in
{
  inherit lib;
  legacyPackages = lib.genAttrs lib.systems.flakeExposed (system: mkPkgs system null);
  outPath = throw "flake-eval stand-in: nixpkgs has no source here (import nixpkgs { } is not supported)";
}
