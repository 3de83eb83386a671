# packages.release: the release of every architecture, as `make release`
# (checks/build-release.sh) assembles result-release/: the packaging tool
# joins the per-architecture builds (packages.adp-armv7, adp-arm64,
# adp-amd64) into one directory with their tarballs, .debs and debug files,
# one OCI layout whose tag is an image index over linux/arm/v7, linux/arm64
# and linux/amd64, its oci-archive, one provenance statement and SHA256SUMS.
{
  runCommand,
  adp,
  version,
  # The adp-ARCH packages, in release order (armv7, arm64, amd64).
  inputs,
}:

runCommand "adp-release-${version}"
  {
    passthru = { inherit inputs; };
    meta.description = "agent-data-plane ${version}: every architecture's artifacts and one multi-platform OCI index";
  }
  ''
    ${adp}/bin/adp-package release \
      ${toString (map (input: "--input ${input}") inputs)} \
      --out $out
  ''
