# checks.<system>: the twins of the make targets, named adp-<target>.
#
# Cargo checks are crane derivations that reuse one dependency build per
# profile and target; the others run the very checks/*.sh script that make
# runs, on the flake's own artifacts.
{
  pkgs,
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

  # Runs the workspace's tests and holds the log to checks/test-summary.sh,
  # which fails a suite that ran no test at all.
  workspaceTests =
    args: label:
    craneLib.cargoTest (
      args
      // {
        checkPhase = ''
          runHook preCheck
          set -o pipefail
          cargoWithProfile test --locked --workspace 2>&1 | tee cargo-test.log
          bash ${sources.checks}/checks/test-summary.sh ${lib.escapeShellArg label} cargo-test.log
          runHook postCheck
        '';
      }
    );

  # Runs a checks/*.sh script from a writable copy of checks/ (the scripts
  # may keep scratch files beside themselves), with `tools` on PATH.
  script =
    name: tools: command:
    pkgs.runCommand "adp-${name}" { nativeBuildInputs = tools; } ''
      cp -r --no-preserve=mode ${sources.checks}/checks checks
      chmod +x checks/*.sh
      patchShebangs --build checks >/dev/null
      ${command}
      touch $out
    '';

  # The binary as shipped (stripped, debuglink), taken out of the tarball.
  shipped = "tar -xzf ${release}/agent-data-plane-*-linux-armv7.tar.gz usr/bin/agent-data-plane";

  elfTools = [
    pkgs.binutils
    pkgs.file
  ];
  ociTools = [
    pkgs.jq
    pkgs.skopeo
    pkgs.umoci
  ];
  smokeTools = [
    pkgs.curl
    pkgs.jq
    pkgs.qemu-user
  ];
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

  adp-test = workspaceTests (hostArgs // { cargoArtifacts = hostArtifacts; }) "host tests";

  adp-test-armv7 = workspaceTests (
    armv7Args // { cargoArtifacts = armv7Artifacts; }
  ) "armv7 tests (qemu-arm)";

  adp-elf = script "elf" elfTools ''
    ${shipped}
    checks/elf.sh usr/bin/agent-data-plane
  '';

  adp-size = script "size" elfTools ''
    ${shipped}
    checks/size.sh usr/bin/agent-data-plane
  '';

  adp-oci = script "oci" ociTools "checks/oci.sh ${release}/oci";

  adp-smoke = script "smoke" smokeTools "checks/smoke.sh ${adp}/bin/agent-data-plane";

  adp-smoke-armv7 = script "smoke-armv7" smokeTools "checks/smoke.sh ${binary}/bin/agent-data-plane qemu-arm -L ${rootfs}";

  adp-image-smoke = script "image-smoke" (smokeTools ++ ociTools) "checks/image-smoke.sh ${release}/oci";

  adp-reproducibility = script "reproducibility" [ pkgs.diffoscopeMinimal ] ''
    checks/reproducibility.sh ${release} ${releaseRebuilt}
  '';
}
