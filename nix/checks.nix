# checks.<system>: the twins of the make targets, named adp-<target>.
#
# Cargo checks are crane derivations that reuse one dependency build per
# profile and target; the others run the very checks/*.sh script that make
# runs, on the flake's own artifacts.
{
  pkgs,
  # nix/arches.nix, and each architecture's 22.11 C toolchain (nix/default.nix).
  arches,
  cToolchain,
  craneLib,
  commonArgs,
  # The armv7 cross variables (checks.adp-test-armv7).
  crossEnv,
  sources,
  adp,
  # packages.adp-{armv7,arm64,amd64} and packages.release, and the same
  # built again independently (checks.adp-reproducibility).
  builds,
  rebuilt,
}:

let
  inherit (pkgs) lib;

  # Tests, clippy and their dependencies use cargo's default (dev) profile,
  # as `make test` and `make test-armv7` do.
  hostArgs = commonArgs // {
    CARGO_PROFILE = "";
  };
  armv7Args = commonArgs // crossEnv // {
    pname = "adp-armv7";
    CARGO_PROFILE = "";
  };
  hostArtifacts = craneLib.buildDepsOnly hostArgs;
  armv7Artifacts = craneLib.buildDepsOnly armv7Args;

  # The tools each check may call, from checks/tools.json: make's builder
  # sandbox (checks/lib/builder-sandbox.sh) gives its twin exactly these, so a
  # command a script needs but its check does not declare fails there too.
  toolSpec = lib.importJSON ../checks/tools.json;
  # Derivations of this flake that tools.json names ("flake": NAME).
  # The scripts call binutils by Debian's cross names; these are 22.11's
  # binutils of each architecture (the very ones that split the release's
  # debug info) under those names.
  binutilsFor =
    name:
    let
      inherit (cToolchain name) cc;
      gnu = arches.${name}.gnu;
    in
    pkgs.runCommand "${gnu}-binutils" { } ''
      mkdir -p $out/bin
      for tool in objcopy objdump readelf strip; do
        ln -s ${cc.bintools}/bin/${cc.targetPrefix}$tool $out/bin/${gnu}-$tool
      done
    '';
  flakeTools = {
    armv7Binutils = binutilsFor "armv7";
    arm64Binutils = binutilsFor "arm64";
    amd64Binutils = binutilsFor "amd64";
  };
  toolPackage =
    name:
    let
      spec =
        toolSpec.tools.${name} or (throw "checks/tools.json: a check declares tool ${name}, which is not defined");
      package = lib.getAttrFromPath (lib.splitString "." spec.nixpkgs) pkgs;
    in
    if spec ? flake then
      flakeTools.${spec.flake}
    else if spec ? pythonPackages then
      package.withPackages (ps: map (p: ps.${p}) spec.pythonPackages)
    else if spec ? nixpkgs then
      package
    else if spec ? nixAbsent then
      null
    else
      throw "checks/tools.json: tool ${name} is ${spec.implicit or "undefined"}; a check cannot declare it";
  # The check's tools; one nixpkgs lacks ("nixAbsent") is left out and its
  # environment set instead, which tells the script to do without it.
  toolsFor = check: lib.filter (p: p != null) (map toolPackage toolSpec.checks.${check}.tools);
  envFor =
    check:
    lib.foldl' (env: name: env // (toolSpec.tools.${name}.nixAbsent.env or { })) { } toolSpec.checks.${check}.tools;
  # What must hold of the declared tools beyond their presence (the
  # datadog client's version), checked before the check runs, as make does.
  probesFor =
    check:
    lib.concatMapStringsSep "\n" (name: toolSpec.tools.${name}.probe or "") toolSpec.checks.${check}.tools;

  # Runs the workspace's tests (with the tools of `check`) and holds the log to
  # checks/test-summary.sh, which fails a suite that ran no test at all.
  workspaceTests =
    check: args: label:
    craneLib.cargoTest (
      args
      // {
        nativeBuildInputs = (args.nativeBuildInputs or [ ]) ++ toolsFor check;
        checkPhase = ''
          runHook preCheck
          ${probesFor check}
          set -o pipefail
          cargoWithProfile test --locked --workspace 2>&1 | tee cargo-test.log
          bash ${sources.checks}/checks/test-summary.sh ${lib.escapeShellArg label} cargo-test.log
          runHook postCheck
        '';
      }
    );

  # A checks/*.sh script run as `make NAME` runs it: the same tools, the same
  # prelude (a writable copy of checks/), `env` as environment variables, and
  # mostly the very command text of the Makefile's recipe.
  script =
    name: env: command:
    pkgs.runCommand "adp-${name}"
      (
        {
          nativeBuildInputs = toolsFor name;
          checksSource = sources.checks;
        }
        // envFor name
        // env
      )
      ''
        ${toolSpec.prelude}
        patchShebangs --build checks >/dev/null
        ${probesFor name}
        ${command}
        touch $out
      '';

  # The armv7 binary as shipped (stripped, debuglink), taken out of the tarball.
  shipped = ''tar -xzf "$armv7"/agent-data-plane-*-linux-armv7.tar.gz usr/bin/agent-data-plane'';
  adpBin = "${adp}/bin";
  inherit (builds.armv7) binary rootfs;
in
{
  adp-fmt = craneLib.cargoFmt {
    inherit (commonArgs) src pname version;
    cargoExtraArgs = "--all";
  };

  adp-clippy = craneLib.cargoClippy (
    hostArgs
    // {
      cargoArtifacts = hostArtifacts;
      cargoClippyExtraArgs = "--workspace --all-targets -- -D warnings";
    }
  );

  adp-test = workspaceTests "test" (hostArgs // { cargoArtifacts = hostArtifacts; }) "host tests";

  adp-test-armv7 = workspaceTests "test-armv7" (
    armv7Args // { cargoArtifacts = armv7Artifacts; }
  ) "armv7 tests (qemu-arm)";

  # deny.toml's licence, source and wildcard policy over the vendored crates,
  # with the script make runs (cargo metadata + python3; advisories need
  # their database from the network).
  adp-licences = craneLib.mkCargoDerivation (
    commonArgs
    // {
      src = sources.licences;
      pnameSuffix = "-licences";
      cargoArtifacts = null;
      doInstallCargoArtifacts = false;
      nativeBuildInputs = toolsFor "licences";
      buildPhaseCargoCommand = "bash checks/licences.sh";
    }
  );

  # Each architecture's shipped binary, from its tarball in the release.
  adp-elf = script "elf" {
    release = builds.release;
  } ''for arch in armv7 arm64 amd64; do tar -xzf "$release"/agent-data-plane-*-linux-$arch.tar.gz usr/bin/agent-data-plane; checks/elf.sh usr/bin/agent-data-plane $arch; done'';

  adp-size = script "size" { armv7 = builds.armv7; } "${shipped}; checks/size.sh usr/bin/agent-data-plane";

  # armv7's own image, then the release's index over every platform, and the
  # modes of everything the release ships.
  adp-oci = script "oci" {
    armv7 = builds.armv7;
    release = builds.release;
  } ''checks/oci.sh "$armv7"; checks/oci.sh "$release"; checks/modes.sh "$release"'';

  # Every .deb of the release. nixpkgs has no lintian: tools.json's
  # nixAbsent sets ADP_DEB_LINTIAN=absent, and deb.sh says it skipped it.
  adp-deb = script "deb" { release = builds.release; } ''checks/deb.sh "$release"'';

  adp-smoke = script "smoke" {
    adp = adpBin;
  } ''export ADP_TEST_INTAKE=$adp/adp-test-intake && checks/smoke.sh "$adp"/agent-data-plane'';

  # A seeded burst of the load generator: exact counts, zero decode errors.
  adp-loadgen-smoke = script "loadgen-smoke" { adp = adpBin; } ''checks/loadgen-smoke.sh "$adp"'';

  # The shipped binary with the image's runtime as its root (make: the
  # Debian sysroot).
  adp-smoke-armv7 = script "smoke-armv7" {
    agent = "${binary}/bin/agent-data-plane";
    intake = "${adpBin}/adp-test-intake";
  } ''export ADP_TEST_INTAKE=$intake && checks/smoke.sh "$agent" qemu-arm -L ${rootfs}'';

  # Every platform of the release's index, each from its own rootfs: arm/v7
  # under qemu-arm, arm64 under qemu-aarch64, amd64 through the image's own
  # loader (under qemu-x86_64 where the build machine is not x86_64).
  adp-image-smoke = script "image-smoke" {
    release = builds.release;
    intake = "${adpBin}/adp-test-intake";
  } ''export ADP_TEST_INTAKE=$intake && checks/image-smoke.sh "$release"'';

  # checks/reproducibility.sh makes its two builds with the Debian toolchain;
  # here Nix makes them (builds and rebuilt: no shared artifacts, a different
  # cargo schedule), and the same script compares each architecture's
  # result, then the release, as reproducibility.sh does.
  adp-reproducibility =
    script "reproducibility"
      (lib.listToAttrs (
        lib.concatMap
          (name: [
            (lib.nameValuePair "a_${name}" builds.${name})
            (lib.nameValuePair "b_${name}" rebuilt.${name})
          ])
          [
            "armv7"
            "arm64"
            "amd64"
            "release"
          ]
      ))
      ''
        for r in armv7 arm64 amd64 release; do
          a=a_$r b=b_$r
          checks/compare-builds.sh "''${!a}" "''${!b}"
        done
      '';
}
