# One architecture's release binary (armv7, arm64, amd64: nix/arches.nix):
# crane builds it with Rust 1.85 for the architecture's target and links it
# against nixos-22.11's glibc 2.35, then it is patched for FHS hosts.
#
# The linker gives every binary a store interpreter and store rpaths (that is
# how the armv7 tests run in the sandbox); the shipped one must be loaded by
# the target's own glibc, so its interpreter becomes Debian's
# (/lib/ld-linux-armhf.so.3, /lib/ld-linux-aarch64.so.1,
# /lib64/ld-linux-x86-64.so.2) and its rpath goes. checks.adp-elf then holds
# it to the same rules as the make build (glibc <= 2.36, interpreter, no
# rpath, NEEDED).
{
  # The architecture's name and its nix/arches.nix entry.
  name,
  arch,
  craneLib,
  commonArgs,
  crossEnv,
  patchelf,
  buildInfo,
}:

let
  args =
    commonArgs
    // crossEnv
    // {
      pname = "agent-data-plane-${name}";
      cargoExtraArgs = "--locked -p agent-data-plane";
      # The workspace's tests run for armv7 in checks.adp-test-armv7.
      doCheck = false;
    };

  cargoArtifacts = craneLib.buildDepsOnly args;
in
craneLib.buildPackage (
  args
  // {
    inherit cargoArtifacts;
    nativeBuildInputs = [ patchelf ];

    # What the binary reports as its revision and build time (build.rs), as
    # checks/build-adp.sh exports them: the commit, not stdenv's 1980
    # default. Set here only, not on the dependency build, so that a new
    # commit does not rebuild the dependencies.
    ADP_REVISION = buildInfo.revision;
    ADP_GIT_HASH = buildInfo.gitHash;
    SOURCE_DATE_EPOCH = toString buildInfo.sourceDateEpoch;

    # checks/split-debug.sh splits the debug info and strips the shipped
    # binary with the target's binutils; the native strip and patchelf
    # fixups know nothing of ARM (and would shrink the rpath the next
    # command removes).
    dontStrip = true;
    dontPatchELF = true;

    postInstall = ''
      patchelf --set-interpreter ${arch.interpreter} --remove-rpath \
        $out/bin/agent-data-plane
      # The remap in commonArgs.preBuild must have hit: no build directory
      # path in the binary or its debug info.
      if grep -q -a -F "$NIX_BUILD_TOP/source/" $out/bin/agent-data-plane; then
        echo "agent-data-plane: the binary holds $NIX_BUILD_TOP/source/ paths: --remap-path-prefix missed the workspace" >&2
        exit 1
      fi
    '';

    passthru = { inherit cargoArtifacts; };
  }
)
