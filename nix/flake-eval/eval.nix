# Evaluates the project's flake the way `nix flake check` would, offline:
# its flake.nix `outputs` function is called with
#   nixpkgs, nixpkgs-2211  the stand-ins in ./standin (real nixpkgs lib,
#                          dummy packages),
#   crane, fenix           the real flakes at the revisions in flake.lock,
#                          their `outputs` called by hand the same way
#                          (fenix's nixpkgs follows the stand-in),
#   self                   the flake's own outputs + sourceInfo (rev or
#                          dirtyRev, lastModified, narHash, ...).
# run.sh calls `names` once and then `check NAME` once per output.
{
  src, # the project's git-tracked files (a copy): absolute path string
  craneSrc, # crane, fenix, nixpkgs lib checkouts: absolute path strings
  fenixSrc,
  nixlibSrc,
  selfRev ? "", # HEAD commit of the checkout ("" if not a git checkout)
  selfDirty ? "0", # "1" if tracked files differ from HEAD
  selfLastModified ? "0", # commit time of HEAD (seconds)
  selfNarHash ? null,
  name ? null, # for `result`: the output to check
  systems ? [
    "x86_64-linux"
    "aarch64-linux"
  ],
}:

let
  toPath = s: /. + s;
  compat = import ./compat.nix;
  importC = compat.import;

  lib = importC (toPath nixlibSrc + "/lib");
  builders = importC ./standin/builders.nix { inherit lib; };

  lock = builtins.fromJSON (builtins.readFile (toPath src + "/flake.lock"));
  rootInputs = lock.nodes.${lock.root}.inputs;
  nodeOf = parent: input: lock.nodes.${parent.inputs.${input}};

  # "%Y%m%d%H%M%S" (UTC) of a Unix time, as Nix's lastModifiedDate.
  dateOf =
    t:
    let
      pad = n: if n < 10 then "0${toString n}" else toString n;
      days = t / 86400;
      secs = t - days * 86400;
      # civil_from_days (H. Hinnant)
      z = days + 719468;
      era = z / 146097;
      doe = z - era * 146097;
      yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
      doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
      mp = (5 * doy + 2) / 153;
      d = doy - (153 * mp + 2) / 5 + 1;
      m = if mp < 10 then mp + 3 else mp - 9;
      y = yoe + era * 400 + (if m <= 2 then 1 else 0);
    in
    "${toString y}${pad m}${pad d}${pad (secs / 3600)}${pad (lib.mod secs 3600 / 60)}${pad (lib.mod secs 60)}";

  lockedInfo =
    node:
    {
      inherit (node.locked) lastModified narHash;
      lastModifiedDate = dateOf node.locked.lastModified;
    }
    // lib.optionalAttrs (node.locked ? rev) {
      inherit (node.locked) rev;
      shortRev = builtins.substring 0 7 node.locked.rev;
    };

  selfInfo =
    let
      lastModified = lib.toInt selfLastModified;
    in
    {
      inherit lastModified;
      lastModifiedDate = dateOf lastModified;
    }
    // lib.optionalAttrs (selfNarHash != null) { narHash = selfNarHash; }
    // lib.optionalAttrs (selfRev != "" && selfDirty == "0") {
      rev = selfRev;
      shortRev = builtins.substring 0 7 selfRev;
    }
    // lib.optionalAttrs (selfRev != "" && selfDirty != "0") {
      dirtyRev = "${selfRev}-dirty";
      dirtyShortRev = "${builtins.substring 0 7 selfRev}-dirty";
    };

  nixpkgs = importC ./standin/nixpkgs.nix { inherit lib builders; };
  nixpkgs-2211 = importC ./standin/nixpkgs-2211.nix { inherit lib builders; };

  # As Nix's call-flake.nix does it.
  callFlake =
    srcPath: sourceInfo: inputs:
    let
      flake = importC (srcPath + "/flake.nix");
      outputs = flake.outputs (inputs // { self = result; });
      result =
        outputs
        // sourceInfo
        // {
          outPath = srcPath;
          inherit inputs outputs;
          sourceInfo = sourceInfo // {
            outPath = srcPath;
          };
          _type = "flake";
        };
    in
    result;

  craneNode = nodeOf lock.nodes.${lock.root} "crane";
  fenixNode = nodeOf lock.nodes.${lock.root} "fenix";
  crane = callFlake (toPath craneSrc) (lockedInfo craneNode) { };
  fenix = callFlake (toPath fenixSrc) (lockedInfo fenixNode) {
    # `fenix.inputs.nixpkgs.follows = "nixpkgs"` (checked by lockCheck).
    inherit nixpkgs;
    rust-analyzer-src = lockedInfo (nodeOf fenixNode "rust-analyzer-src") // {
      outPath = throw "flake-eval: rust-analyzer-src is not available offline";
    };
  };

  projectFlake = importC (toPath src + "/flake.nix");
  self = callFlake (toPath src) selfInfo {
    inherit
      nixpkgs
      nixpkgs-2211
      crane
      fenix
      ;
  };

  # flake.nix's inputs against flake.lock: what Nix would otherwise rewrite
  # the lock file for (and fetch).
  lockCheck =
    let
      declared = projectFlake.inputs or { };
      problems =
        lib.optional (
          builtins.attrNames declared != builtins.attrNames rootInputs
        ) "flake.nix declares inputs ${toString (builtins.attrNames declared)} but flake.lock has ${toString (builtins.attrNames rootInputs)}"
        ++ lib.concatLists (
          lib.mapAttrsToList (
            name: decl:
            let
              node = lock.nodes.${rootInputs.${name}} or { };
              orig = node.original or { };
              m = builtins.match "github:([^/]+)/([^/?]+)(/([^?]+))?" (decl.url or "");
              ref = if m == null then null else builtins.elemAt m 3;
              isRev = ref != null && builtins.match "[0-9a-f]{40}" ref != null;
              urlProblems =
                if m == null then
                  [ ]
                else
                  lib.optional (
                    orig.type or null != "github"
                    || orig.owner or null != builtins.elemAt m 0
                    || orig.repo or null != builtins.elemAt m 1
                    || (if isRev then orig.rev or null else orig.ref or null) != ref
                  ) "input ${name}: flake.nix says ${decl.url} but flake.lock's original is ${builtins.toJSON orig}";
              followsProblems = lib.concatLists (
                lib.mapAttrsToList (
                  sub: subDecl:
                  lib.optional (
                    subDecl ? follows && (node.inputs.${sub} or null) != lib.splitString "/" subDecl.follows
                  ) "input ${name}.inputs.${sub} follows ${subDecl.follows} in flake.nix but not in flake.lock"
                ) (decl.inputs or { })
              );
            in
            urlProblems ++ followsProblems
          ) declared
        );
    in
    if problems == [ ] then "consistent" else throw (lib.concatStringsSep "; " problems);

  groups = [
    "packages"
    "checks"
    "apps"
    "devShells"
  ];

  # overlays.NAME: applied to each system's stand-in package set as
  # `final: prev:` (final = prev // the overlay's result); every attribute it
  # adds must be a derivation, for the set and for its pkgsCross sets.
  checkOverlay =
    overlay:
    assert lib.assertMsg (builtins.isFunction overlay) "an overlay must be a function final: prev:";
    let
      apply =
        prev:
        let
          added = overlay final prev;
          final = prev // added;
        in
        added;
      one =
        prev:
        lib.mapAttrs (
          n: v:
          assert lib.assertMsg (lib.isDerivation v) "the overlay's ${n} is not a derivation";
          v.drvPath
        ) (apply prev);
    in
    builtins.toJSON (
      map (
        sys:
        let
          pkgs = nixpkgs.legacyPackages.${sys};
        in
        {
          native = one pkgs;
          cross = lib.mapAttrs (_: one) pkgs.pkgsCross;
        }
      ) systems
    );

  # nixosModules.NAME: evaluated with ./standin/nixos.nix (the NixOS options
  # it may set, typed as NixOS types them) on each system's stand-in pkgs,
  # once as imported (enable left at its default) and once enabled with
  # its required options, forcing the systemd units and /etc files.
  checkModule =
    module:
    let
      eval =
        sys: extra:
        let
          nixos = lib.evalModules {
            specialArgs = {
              inherit lib;
            };
            modules = [
              ./standin/nixos.nix
              { _module.args.pkgs = nixpkgs.legacyPackages.${sys}; }
              module
              extra
            ];
          };
          failed = map (a: a.message) (lib.filter (a: !a.assertion) nixos.config.assertions);
        in
        if failed != [ ] then
          throw "failed assertions: ${lib.concatStringsSep "; " failed}"
        else
          {
            inherit (nixos.config.systemd) services;
            etc = lib.mapAttrs (_: e: e.source) nixos.config.environment.etc;
          };
      enabled = {
        services.agent-data-plane = {
          enable = true;
          apiKeyFile = "/run/keys/datadog_api_key";
        };
      };
    in
    builtins.toJSON (
      map (sys: {
        default = eval sys { };
        enabled = eval sys enabled;
      }) systems
    );

  hydraPaths =
    prefix: v:
    if lib.isDerivation v then
      [ prefix ]
    else if builtins.isAttrs v then
      lib.concatMap (n: hydraPaths (prefix ++ [ n ]) v.${n}) (builtins.attrNames v)
    else
      [ prefix ];

  # Attribute paths of every output to check, per group so that one group
  # that cannot be listed does not hide the others.
  listGroup =
    group:
    if group == "hydraJobs" then
      hydraPaths [ "hydraJobs" ] self.hydraJobs
    else if group == "overlays" || group == "nixosModules" then
      map (n: [
        group
        n
      ]) (builtins.attrNames (self.${group} or { }))
    else if group == "formatter" then
      map (sys: [
        "formatter"
        sys
      ]) systems
    else
      lib.concatMap (
        sys:
        map (n: [
          group
          sys
          n
        ]) (builtins.attrNames self.${group}.${sys})
      ) systems;

  # Dotted names; an attribute name run.sh could not pass back is an error.
  names =
    group:
    map (
      path:
      if lib.all (n: builtins.match "[A-Za-z0-9_+-]+" n != null) path then
        lib.concatStringsSep "." path
      else
        throw "flake-eval: output name ${builtins.toJSON path} has characters this harness does not handle"
    ) (listGroup group);

  check =
    name:
    let
      path = lib.splitString "." name;
      v = lib.getAttrFromPath path self;
    in
    if builtins.head path == "overlays" then
      checkOverlay v
    else if builtins.head path == "nixosModules" then
      checkModule v
    else if builtins.head path == "apps" then
      assert lib.assertMsg (v.type or null == "app") "${name}: an app must have type = \"app\"";
      assert lib.assertMsg (builtins.isString v.program) "${name}: program must be a string";
      assert lib.assertMsg (lib.hasPrefix (builtins.storeDir + "/") v.program)
        "${name}: app program '${v.program}' is not in the Nix store";
      v.program
    else
      assert lib.assertMsg (lib.isDerivation v) "${name}: not a derivation (${builtins.typeOf v})";
      v.drvPath;
in
{
  inherit
    lib
    self
    check
    lockCheck
    names
    ;
  allGroups = groups ++ [
    "formatter"
    "hydraJobs"
    "overlays"
    "nixosModules"
  ];
  result = check name;
  shimmed = compat.shimmed;
}
