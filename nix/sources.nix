# The sources each derivation sees: only what the job reads, so that edits to
# docs or CI do not rebuild the workspace.
{ lib }:

let
  inherit (lib.fileset) toSource unions;
in
{
  # The Cargo workspace with every crate's and binary's files, test fixtures
  # included (crane's cleanCargoSource would drop the data files that tests
  # read with include_bytes!), and the standalone environment the e2e tests
  # share with the smoke checks (include_str!), and docs/architecture.md,
  # whose configuration key table a test checks against the keys the crates read.
  cargo = toSource {
    root = ../.;
    fileset = unions [
      ../Cargo.toml
      ../Cargo.lock
      ../rustfmt.toml
      ../crates
      ../bin
      ../checks/lib/standalone.env
      ../docs/architecture.md
    ];
  };

  # The workspace's manifests, the licence policy and the scripts that apply
  # it (checks.adp-licences).
  licences = toSource {
    root = ../.;
    fileset = unions [
      ../Cargo.toml
      ../Cargo.lock
      ../crates
      ../bin
      ../deny.toml
      ../checks/licences.sh
      ../checks/licences.py
    ];
  };

  # The packaging tool's static inputs: unit, config example, passwd, group,
  # nsswitch.conf and the licence.
  packaging = toSource {
    root = ../.;
    fileset = unions [
      ../packaging
      ../LICENSE
    ];
  };

  # The one script that splits, strips and links the release binary's debug
  # info (packages.adp-armv7; make's checks/build-adp-armv7.sh calls it too).
  splitDebug = toSource {
    root = ../.;
    fileset = ../checks/split-debug.sh;
  };

  # The shell checks that `make` runs too.
  checks = toSource {
    root = ../.;
    fileset = ../checks;
  };
}
