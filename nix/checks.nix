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

  # The scripts call binutils by Debian's cross names; these are 22.11's
  # armv7 binutils under those names.
  debianCrossNames = pkgs.runCommand "arm-linux-gnueabihf-binutils" { } ''
    mkdir -p $out/bin
    for tool in objcopy objdump readelf strip; do
      ln -s ${armv7Cc.bintools}/bin/${armv7Cc.targetPrefix}$tool $out/bin/arm-linux-gnueabihf-$tool
    done
  '';

  # With the datadog client, which checks/smoke.sh sends DogStatsD with
  # (it falls back to raw sockets without it).
  python = pkgs.python3.withPackages (ps: [ ps.datadog ]);

  elfTools = [ debianCrossNames ];
  ociTools = [
    python
    pkgs.skopeo
    pkgs.umoci
  ];
  # The smoke test sends to the workspace's test intake, named by
  # ADP_TEST_INTAKE.
  smokeTools = [
    python
    pkgs.qemu-user
  ];
  intake = "export ADP_TEST_INTAKE=${adp}/bin/adp-test-intake";
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
      nativeBuildInputs = [ pkgs.python3 ];
      buildPhaseCargoCommand = "bash checks/licences.sh";
    }
  );

  adp-elf = script "elf" elfTools ''
    ${shipped}
    checks/elf.sh usr/bin/agent-data-plane
  '';

  adp-size = script "size" elfTools ''
    ${shipped}
    checks/size.sh usr/bin/agent-data-plane
  '';

  adp-oci = script "oci" ociTools ''
    checks/oci.sh ${release}
    checks/modes.sh ${release}
  '';

  adp-smoke = script "smoke" smokeTools ''
    ${intake}
    checks/smoke.sh ${adp}/bin/agent-data-plane
  '';

  # A seeded burst of the load generator: exact counts, zero decode errors.
  adp-loadgen-smoke = script "loadgen-smoke" smokeTools "checks/loadgen-smoke.sh ${adp}/bin";

  # The shipped binary with the image's runtime as its root.
  adp-smoke-armv7 = script "smoke-armv7" smokeTools ''
    ${intake}
    checks/smoke.sh ${binary}/bin/agent-data-plane qemu-arm -L ${rootfs}
  '';

  adp-image-smoke = script "image-smoke" (smokeTools ++ ociTools) ''
    ${intake}
    checks/image-smoke.sh ${release}
  '';

  # checks/reproducibility.sh makes its two builds with the Debian toolchain;
  # here Nix makes them (release and releaseRebuilt: no shared artifacts, a
  # different cargo schedule) and this compares them the same way: every
  # artifact in SHA256SUMS, and a diffoscope report of what differs.
  adp-reproducibility = script "reproducibility" [ pkgs.diffoscopeMinimal ] ''
    a=${release} b=${releaseRebuilt}
    (cd $a && sha256sum --check --quiet SHA256SUMS) && (cd $b && sha256sum --check --quiet SHA256SUMS)
    if cmp -s $a/SHA256SUMS $b/SHA256SUMS; then
      echo "reproducibility: ok: all $(wc -l <$a/SHA256SUMS) artifacts of two independent builds are identical"
    else
      diff $a/SHA256SUMS $b/SHA256SUMS || true
      while read -r _ name; do
        cmp -s "$a/$name" "$b/$name" || diffoscope --text - "$a/$name" "$b/$name" | head -n 200 || true
      done <$a/SHA256SUMS
      echo "reproducibility: FAIL: two builds of the same inputs differ" >&2
      exit 1
    fi
  '';
}
