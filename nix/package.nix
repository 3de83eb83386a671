# packages.adp-ARCH (armv7, arm64, amd64): one architecture's release
# artifacts, made by the workspace's own packaging tool with the steps and
# flags of `make adp-ARCH` (checks/build-adp.sh), from the crane-built binary
# and, in place of Debian's libc6/libgcc-s1/ca-certificates .debs, the
# nixos-22.11 glibc 2.35 runtime (./rootfs.nix) and nixpkgs' CA bundle.
#
# Output: the FHS tarball, its .debug file, the .deb, the OCI image layout
# (oci/) and oci-archive, the provenance statement and SHA256SUMS.
{
  lib,
  # The architecture's name and its nix/arches.nix entry.
  name,
  arch,
  craneLib,
  commonArgs,
  crossEnv,
  runCommand,
  # 22.11's gcc wrapper for the architecture (its binutils split the debug info).
  cc,
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
  tools = "${cc.bintools}/bin/${cc.targetPrefix}";
  stem = "agent-data-plane-${version}-linux-${name}";

  # The crates built into the binary, which the SBOM is limited to.
  cargoTree = craneLib.mkCargoDerivation (
    commonArgs
    // crossEnv
    // {
      pname = "agent-data-plane-${name}-cargo-tree";
      cargoArtifacts = null;
      doInstallCargoArtifacts = false;
      buildPhaseCargoCommand = ''
        cargo tree --locked --offline -p agent-data-plane -e normal \
          --target ${arch.target} --prefix none --format '{p}' >cargo-tree.txt
      '';
      installPhaseCommand = "cp cargo-tree.txt $out";
    }
  );
in
runCommand "adp-${name}-${version}"
  {
    passthru = {
      inherit
        binary
        rootfs
        cargoTree
        crossEnv
        ;
    };
    meta.description = "agent-data-plane ${version} for ${name} (glibc >= 2.35): tarball, .deb, OCI image, SBOM, provenance";
  }
  ''
    # Split the debug info, strip, and link the two: the make path's script.
    mkdir work
    cd work
    ADP_BINUTILS_PREFIX=${tools} bash ${sources.splitDebug}/checks/split-debug.sh \
      ${binary}/bin/agent-data-plane agent-data-plane ${stem}.debug

    # The builder id tells a Nix-built release from a make-built one in the
    # provenance: the two are not bit-identical (docs/nix.md, Reproducibility).
    ${adp}/bin/adp-package build \
      --arch ${name} \
      --binary agent-data-plane \
      --debug-file ${stem}.debug \
      --version ${lib.escapeShellArg version} \
      --revision ${lib.escapeShellArg revision} \
      --source-date-epoch ${toString sourceDateEpoch} \
      --rootfs-dir ${rootfs} \
      --ca-bundle ${cacert}/etc/ssl/certs/ca-bundle.crt \
      --cargo-lock ${sources.cargo}/Cargo.lock \
      --cargo-tree ${cargoTree} \
      --builder-id urn:agent-data-plane:builder:nix-flake \
      --packaging-dir ${sources.packaging}/packaging \
      --license ${sources.packaging}/LICENSE \
      --out $out
  ''
