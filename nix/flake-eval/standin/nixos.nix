# Stand-in for the NixOS options that the project's module (nix/module.nix)
# and VM test (nix/vm-test.nix) set, declared with the types NixOS gives
# them, for the real nixpkgs lib.evalModules. Every other NixOS option is
# missing, so setting one is an error here as a typo would be there; a value
# of the wrong type fails as NixOS's merge would. Read in nixpkgs (stored
# versions, not the pinned 26.05 revision):
#   assertions, warnings       nixos/modules/misc/assertions.nix
#   environment.etc            nixos/modules/system/etc/etc.nix (attrsOf
#                              submodule: source path, text, mode, ...)
#   environment.systemPackages nixos/modules/config/system-path.nix
#   systemd.services           nixos/modules/system/boot/systemd.nix with
#                              nixos/lib/systemd-unit-options.nix (unit and
#                              service options; serviceConfig values are
#                              bool, int, string, path or lists of them)
#   systemd.tmpfiles.rules     nixos/modules/system/boot/systemd/tmpfiles.nix
{ lib, ... }:

let
  inherit (lib) mkOption types;
  atom = types.oneOf [
    types.bool
    types.int
    types.str
    types.path
  ];
  unitOption = types.either atom (types.listOf atom);
  # Unit names, warnings, tmpfiles rules: a list of strings, empty by default.
  strings = mkOption {
    type = types.listOf types.str;
    default = [ ];
  };
  service = {
    options = {
      enable = mkOption {
        type = types.bool;
        default = true;
      };
      description = mkOption {
        type = types.singleLineStr;
        default = "";
      };
      restartTriggers = mkOption {
        type = types.listOf types.unspecified;
        default = [ ];
      };
      environment = mkOption {
        type = types.attrsOf (
          types.nullOr (
            types.oneOf [
              types.str
              types.path
              types.package
            ]
          )
        );
        default = { };
      };
      path = mkOption {
        type = types.listOf (types.oneOf [
          types.package
          types.str
        ]);
        default = [ ];
      };
      script = mkOption {
        type = types.lines;
        default = "";
      };
      preStart = mkOption {
        type = types.lines;
        default = "";
      };
      serviceConfig = mkOption {
        type = types.attrsOf unitOption;
        default = { };
      };
    }
    # The unit's dependency lists.
    // lib.genAttrs [
      "wantedBy"
      "requiredBy"
      "wants"
      "requires"
      "after"
      "before"
    ] (_: strings);
  };
in
{
  options = {
    assertions = mkOption {
      type = types.listOf types.unspecified;
      default = [ ];
    };
    warnings = strings;
    environment.etc = mkOption {
      type = types.attrsOf (
        types.submodule {
          options = {
            enable = mkOption {
              type = types.bool;
              default = true;
            };
            source = mkOption { type = types.path; };
            text = mkOption {
              type = types.nullOr types.lines;
              default = null;
            };
            mode = mkOption {
              type = types.str;
              default = "symlink";
            };
          };
        }
      );
      default = { };
    };
    environment.systemPackages = mkOption {
      type = types.listOf types.package;
      default = [ ];
    };
    systemd.services = mkOption {
      type = types.attrsOf (types.submodule service);
      default = { };
    };
    systemd.tmpfiles.rules = strings;
  };
}
