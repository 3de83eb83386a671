# The native release build of the workspace's binaries, as `make adp` builds
# them: the agent, the test intake the smoke checks send to, the packaging
# tool and the load generator.
{
  craneLib,
  commonArgs,
  buildInfo,
}:

let
  args = commonArgs // {
    pname = "adp";
    cargoExtraArgs = "--locked -p agent-data-plane -p adp-test-intake -p adp-package -p adp-loadgen";
    # Host tests run once, in checks.adp-test.
    doCheck = false;
  };
in
craneLib.buildPackage (
  args
  // {
    cargoArtifacts = craneLib.buildDepsOnly args;
    # The agent's build identity (see agent-data-plane.nix), final build only.
    ADP_REVISION = buildInfo.revision;
    ADP_GIT_HASH = buildInfo.gitHash;
    SOURCE_DATE_EPOCH = toString buildInfo.sourceDateEpoch;
  }
)
