# packages.adp-armv7: the release artifacts, made by the workspace's own
# packaging tool with the steps and flags of `make adp-armv7`
# (checks/build-adp-armv7.sh), from the crane-built armv7 binary and, in
# place of Debian's libc6/libgcc-s1/ca-certificates .debs, the nixos-22.11
# glibc 2.35 runtime (./rootfs.nix) and nixpkgs' CA bundle.
#
# Output: the FHS tarball, its .debug file, the OCI image layout (oci/) and
# oci-archive, and SHA256SUMS.
{
  lib,
  craneLib,
  commonArgs,
  crossEnv,
  runCommand,
  armv7Cc,
  adp,
  binary,
  rootfs,
  cacert,
  sources,
  version,
  revision,
  sourceDateEpoch,
}:

let
  tools = "${armv7Cc.bintools}/bin/${armv7Cc.targetPrefix}";
  stem = "agent-data-plane-${version}-linux-armv7";

  # The crates built into the armv7 binary, which the SBOM is limited to.
  cargoTree = craneLib.mkCargoDerivation (
    commonArgs
    // crossEnv
    // {
      pname = "agent-data-plane-armv7-cargo-tree";
      cargoArtifacts = null;
      doInstallCargoArtifacts = false;
      buildPhaseCargoCommand = ''
        cargo tree --locked --offline -p agent-data-plane -e normal \
          --target armv7-unknown-linux-gnueabihf --prefix none --format '{p}' >cargo-tree.txt
      '';
      installPhaseCommand = "cp cargo-tree.txt $out";
    }
  );
in
runCommand "adp-armv7-${version}"
  {
    passthru = { inherit binary rootfs cargoTree; };
    meta.description = "agent-data-plane ${version} for armv7 (glibc >= 2.35): tarball, OCI image, SBOM";
  }
  ''
    # Split the debug info, strip, and link the two: the make path's script.
    mkdir work
    cd work
    ADP_BINUTILS_PREFIX=${tools} bash ${sources.splitDebug}/checks/split-debug.sh \
      ${binary}/bin/agent-data-plane agent-data-plane ${stem}.debug

    ${adp}/bin/adp-package build \
      --binary agent-data-plane \
      --debug-file ${stem}.debug \
      --version ${lib.escapeShellArg version} \
      --revision ${lib.escapeShellArg revision} \
      --source-date-epoch ${toString sourceDateEpoch} \
      --rootfs-dir ${rootfs} \
      --ca-bundle ${cacert}/etc/ssl/certs/ca-bundle.crt \
      --cargo-lock ${sources.cargo}/Cargo.lock \
      --cargo-tree ${cargoTree} \
      --packaging-dir ${sources.packaging}/packaging \
      --license ${sources.packaging}/LICENSE \
      --out $out
  ''
