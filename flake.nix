{
  description = "agent-data-plane for ARMv7: a DogStatsD agent for 32-bit ARM hard-float Linux (glibc >= 2.35)";

  inputs = {
    # crane, fenix's toolchain packaging, qemu-user, skopeo, umoci, patchelf.
    nixpkgs.url = "github:NixOS/nixpkgs/nixos-26.05";
    # Only pkgsCross.armv7l-hf-multiplatform's gcc + glibc 2.35: no nixpkgs
    # release has glibc 2.36 (22.11 has 2.35, 23.05 has 2.37).
    nixpkgs-2211.url = "github:NixOS/nixpkgs/nixos-22.11";
    crane.url = "github:ipetkov/crane/v0.23.4";
    # The last fenix commits whose `stable` is Rust 1.85.0.
    fenix.url = "github:nix-community/fenix/193dcb4e6edb3ba927f4d88b8b1fe65b9e5368c3";
    fenix.inputs.nixpkgs.follows = "nixpkgs";
  };

  outputs =
    {
      self,
      nixpkgs,
      nixpkgs-2211,
      crane,
      fenix,
    }:
    let
      systems = [
        "x86_64-linux"
        "aarch64-linux"
      ];
      forEachSystem =
        f:
        builtins.listToAttrs (
          map (system: {
            name = system;
            value = f system;
          }) systems
        );
      # The agent built by and for a nixpkgs package set (store interpreter,
      # that set's glibc): the overlay's, the module's and the native packages.
      mkAgent = import ./nix/agent.nix {
        inherit self;
        inherit (nixpkgs) lib;
      };
      nixosModule = import ./nix/module.nix { mkPackage = mkAgent; };

      perSystem = forEachSystem (
        system:
        import ./nix {
          inherit
            self
            system
            nixpkgs
            nixpkgs-2211
            crane
            fenix
            mkAgent
            nixosModule
            ;
        }
      );
      output = name: forEachSystem (system: perSystem.${system}.${name});
    in
    {
      packages = output "packages";
      checks = output "checks";
      apps = output "apps";
      devShells = output "devShells";
      formatter = output "formatter";

      # `agent-data-plane` for any nixpkgs (Rust >= 1.85): native, or
      # pkgsCross.armv7l-hf-multiplatform.agent-data-plane for NixOS boards.
      overlays.default = final: _prev: { agent-data-plane = mkAgent final; };

      # services.agent-data-plane (nix/module.nix).
      nixosModules.default = nixosModule;

      # Hydra builds every package and check for every build system
      # (`default` is the same derivation as adp-armv7).
      hydraJobs = {
        packages = forEachSystem (system: removeAttrs self.packages.${system} [ "default" ]);
        inherit (self) checks;
      };
    };
}
