# The agent for any nixpkgs package set, native or pkgsCross.*:
# overlays.default's package, packages.<system>.agent-data-plane(-armv7l) and
# the NixOS module's default package, all one derivation per package set
# (nix/native-package.nix).
{
  self,
  lib,
}:

pkgs:
pkgs.callPackage ./native-package.nix {
  src = (import ./sources.nix { inherit lib; }).cargo;
  cargoLock = ../Cargo.lock;
  version = (lib.importTOML ../Cargo.toml).workspace.package.version;
  buildInfo = import ./build-info.nix self;
}
