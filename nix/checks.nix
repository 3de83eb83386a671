# checks.<system>: the twins of the make targets, named adp-<target>.
#
# Cargo checks are crane derivations that reuse one dependency build per
# profile and target; the others run the very checks/*.sh script that make
# runs, on the flake's own artifacts.
{
  pkgs,
  armv7Cc,
  craneLib,
  commonArgs,
  crossEnv,
  sources,
  adp,
  binary,
  rootfs,
  release,
  releaseRebuilt,
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
  flakeTools = {
    # The scripts call binutils by Debian's cross names; these are 22.11's
    # armv7 binutils under those names.
    armv7Binutils = pkgs.runCommand "arm-linux-gnueabihf-binutils" { } ''
      mkdir -p $out/bin
      for tool in objcopy objdump readelf strip; do
        ln -s ${armv7Cc.bintools}/bin/${armv7Cc.targetPrefix}$tool $out/bin/arm-linux-gnueabihf-$tool
      done
    '';
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
    else
      throw "checks/tools.json: tool ${name} is ${spec.implicit or "undefined"}; a check cannot declare it";
  toolsFor = check: map toolPackage toolSpec.checks.${check}.tools;
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
        // env
      )
      ''
        ${toolSpec.prelude}
        patchShebangs --build checks >/dev/null
        ${probesFor name}
        ${command}
        touch $out
      '';

  # The binary as shipped (stripped, debuglink), taken out of the tarball.
  shipped = ''tar -xzf "$release"/agent-data-plane-*-linux-armv7.tar.gz usr/bin/agent-data-plane'';
  adpBin = "${adp}/bin";
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

  adp-elf = script "elf" { inherit release; } "${shipped} && checks/elf.sh usr/bin/agent-data-plane";

  adp-size = script "size" { inherit release; } "${shipped} && checks/size.sh usr/bin/agent-data-plane";

  adp-oci = script "oci" { inherit release; } ''checks/oci.sh "$release" && checks/modes.sh "$release"'';

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

  adp-image-smoke = script "image-smoke" {
    inherit release;
    intake = "${adpBin}/adp-test-intake";
  } ''export ADP_TEST_INTAKE=$intake && checks/image-smoke.sh "$release"'';

  # checks/reproducibility.sh makes its two builds with the Debian toolchain;
  # here Nix makes them (release and releaseRebuilt: no shared artifacts, a
  # different cargo schedule), and the same script compares them.
  adp-reproducibility = script "reproducibility" {
    a = release;
    b = releaseRebuilt;
  } ''checks/compare-builds.sh "$a" "$b"'';
}
