# Sourced by checks/build-adp-armv7.sh and checks/reproducibility.sh: the build's
# external inputs, decided once from the git checkout (run from its root) unless
# the caller set them, and exported.
#   SOURCE_DATE_EPOCH  the last commit's time (every timestamp in the artifacts)
#   ADP_REVISION       the commit, "-dirty" with uncommitted tracked changes
#   ADP_GIT_HASH       its first 8 digits, for the binary's version line
# Without git (a source tarball), SOURCE_DATE_EPOCH falls back to 1980-01-01 with
# a warning and the revision is "unknown".
adp_build_inputs() {
    if [ -z "${SOURCE_DATE_EPOCH:-}" ]; then
        SOURCE_DATE_EPOCH=$(git log -1 --format=%ct 2>/dev/null || true)
        if [ -z "$SOURCE_DATE_EPOCH" ]; then
            SOURCE_DATE_EPOCH=315532800
            printf 'warning: no git commit to date the build; SOURCE_DATE_EPOCH=%s (set it to the release commit time)\n' \
                "$SOURCE_DATE_EPOCH" >&2
        fi
    fi
    if [ -z "${ADP_REVISION:-}" ]; then
        if ADP_REVISION=$(git rev-parse HEAD 2>/dev/null); then
            [ -z "$(git status --porcelain --untracked-files=no 2>/dev/null)" ] || ADP_REVISION=$ADP_REVISION-dirty
        else
            ADP_REVISION=unknown
        fi
    fi
    # The binary's build.rs wants 7-40 hex digits (no -dirty); without git it
    # falls back to "unknown" itself.
    if [ -z "${ADP_GIT_HASH:-}" ] && [ "$ADP_REVISION" != unknown ]; then
        ADP_GIT_HASH=${ADP_REVISION:0:8}
    fi
    export SOURCE_DATE_EPOCH ADP_REVISION
    [ -z "${ADP_GIT_HASH:-}" ] || export ADP_GIT_HASH
}
