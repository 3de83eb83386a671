# The native release build of the workspace's binaries, as `make adp` builds
# them: the agent, the test intake the smoke checks send to, the packaging
# tool and the load generator.
{ craneLib, commonArgs }:

let
  args = commonArgs // {
    pname = "adp";
    cargoExtraArgs = "--locked -p agent-data-plane -p adp-test-intake -p adp-package -p adp-loadgen";
    # Host tests run once, in checks.adp-test.
    doCheck = false;
  };
in
craneLib.buildPackage (args // { cargoArtifacts = craneLib.buildDepsOnly args; })
