# The agent as a nixpkgs package: overlays.default's `agent-data-plane`,
# packages.<system>.agent-data-plane (native) and agent-data-plane-armv7l
# (pkgsCross.armv7l-hf-multiplatform), and the NixOS module's default
# package.
#
# Built by the package set's own Rust platform for whatever platform that set
# targets, linked against its glibc with its store interpreter: what runs on
# NixOS, with no glibc ceiling. The release for FHS hosts (Debian, Raspberry
# Pi OS) is packages.adp-armv7 instead: glibc 2.35, /lib/ld-linux-armhf.so.3.
#
# Called with the package set's callPackage, so that a cross set
# (pkgsCross.*) cross-compiles: buildRustPackage passes the target to cargo.
{
  lib,
  rustPlatform,
  src,
  cargoLock,
  version,
  buildInfo,
}:

rustPlatform.buildRustPackage {
  pname = "agent-data-plane";
  inherit version src;
  # Cargo.lock has only crates.io sources (checks/nix-offline.sh): each
  # crate is fetched by its checksum, no cargoHash to keep up to date.
  cargoLock.lockFile = cargoLock;
  cargoBuildFlags = [
    "--package"
    "agent-data-plane"
  ];

  # The workspace's tests run in checks.adp-test (they need the test intake
  # and the Python client); this derivation only builds.
  doCheck = false;

  # The system checks' shipped configuration (the IoT Agent's set of
  # conf.yaml.default files), where the release puts it under /etc; the NixOS
  # module links it to /etc/datadog-agent/conf.d, the agent's confd_path.
  postInstall = ''
    mkdir -p $out/etc/datadog-agent
    cp -r crates/checks/conf.d $out/etc/datadog-agent/conf.d
  '';

  # The agent's build identity, as the release has it (see build-info.nix).
  env = {
    ADP_REVISION = buildInfo.revision;
    ADP_GIT_HASH = buildInfo.gitHash;
    SOURCE_DATE_EPOCH = toString buildInfo.sourceDateEpoch;
  };

  meta = {
    description = "Datadog Agent Data Plane: the DogStatsD pipeline (UDP and Unix sockets, aggregation, forwarding to the Datadog intake)";
    homepage = "https://github.com/adp-armv7/agent-data-plane";
    license = lib.licenses.asl20;
    mainProgram = "agent-data-plane";
    platforms = lib.platforms.linux;
  };
}
