#!/usr/bin/env bash
# The armhf .deb installed the way a board owner installs it, in a Debian
# bookworm armhf root run under qemu-arm (binfmt_misc): `apt-get install
# ./agent-data-plane_…_armhf.deb` resolves the dependencies from the mirror;
# the installed agent, configured in the installed datadog.yaml and run as the
# dd-agent user, sends a metric to the test intake on the host's loopback
# (the chroot shares the network); an upgrade to a newer build (the same
# release with Debian revision 2, made by checks/build-adp.sh) keeps the
# edited datadog.yaml; `apt-get purge` leaves nothing behind (the root's file
# list, owners and modes, and its user database, are compared with the ones
# before the install).
#
#   checks/deb-install-test.sh [RESULT_DIR]     # default result-adp-armv7 (make adp-armv7)
#   checks/deb-install-test.sh --prepare-root   # only debootstrap and cache the root
#
# Slow (a debootstrap under emulation the first time, then ~5 minutes), so
# not part of `make check`: `make deb-install-test`. Needs root, network
# access to the Debian mirror, debootstrap and qemu-user-static (make setup).
#
# Environment:
#   ADP_DEB_TEST_CACHE   where the finished bookworm root is kept as a tarball
#                        (default <root>/.tmp/deb-install-test); delete it to
#                        debootstrap again
#   ADP_DEB_TEST_MIRROR  the Debian mirror (default http://deb.debian.org/debian)
#   ADP_DEB_TEST_KEEP=1  keep the work directory (the root after purge)
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/.." && pwd)
PREPARE_ONLY=0
[ "${1:-}" != --prepare-root ] || { PREPARE_ONLY=1; shift; }
RESULT=${1:-$ROOT/result-adp-armv7}
CACHE=${ADP_DEB_TEST_CACHE:-$ROOT/.tmp/deb-install-test}
MIRROR=${ADP_DEB_TEST_MIRROR:-http://deb.debian.org/debian}
SECURITY_MIRROR=${MIRROR%/debian}/debian-security
BASE=$CACHE/bookworm-armhf-minbase.tar
TIMEOUT=180

say() { printf 'deb-install-test: %s\n' "$*"; }
die() { printf 'deb-install-test: FAIL: %s\n' "$*" >&2; exit 1; }
run() { printf '+ %s\n' "$*"; "$@"; }

[ "$(id -u)" = 0 ] || die "must run as root (debootstrap, chroot, binfmt_misc)"
for tool in debootstrap qemu-arm-static chroot python3 dpkg-deb; do
    command -v "$tool" >/dev/null || die "$tool not found (make setup)"
done
if [ "$PREPARE_ONLY" = 0 ]; then
    DEB1=$(ls "$RESULT"/agent-data-plane_*_armhf.deb 2>/dev/null | head -1)
    [ -n "$DEB1" ] || die "no agent-data-plane_*_armhf.deb in $RESULT; run 'make adp-armv7' first"
    INTAKE=${ADP_TEST_INTAKE:-$ROOT/target/debug/adp-test-intake}
    [ -x "$INTAKE" ] || die "no test intake at $INTAKE (cargo build -p adp-test-intake)"
fi

declare -a TIMINGS=()
phase_start=$SECONDS
phase() { # NAME: records the time since the previous phase
    TIMINGS+=("$(printf '%-44s %4d s' "$1" $((SECONDS - phase_start)))")
    phase_start=$SECONDS
}

work=$(mktemp -d "${TMPDIR:-/tmp}/adp-deb-test.XXXXXX")
CHROOT=$work/root
BINFMT_MOUNTED=0
BINFMT_OURS=
AGENT_PID=
INTAKE_PID=
cleanup() {
    [ -z "$AGENT_PID" ] || kill -KILL "$AGENT_PID" 2>/dev/null || true
    [ -z "$INTAKE_PID" ] || kill "$INTAKE_PID" 2>/dev/null || true
    wait 2>/dev/null || true
    for mnt in "$CHROOT/dev/pts" "$CHROOT/proc" "$CACHE/stage/proc"; do
        ! mountpoint -q "$mnt" 2>/dev/null || umount "$mnt"
    done
    [ -z "$BINFMT_OURS" ] || echo -1 >"/proc/sys/fs/binfmt_misc/$BINFMT_OURS"
    [ "$BINFMT_MOUNTED" = 0 ] || umount /proc/sys/fs/binfmt_misc
    if [ "${ADP_DEB_TEST_KEEP:-0}" = 1 ]; then say "kept $work"; else rm -rf "$work"; fi
}
trap cleanup EXIT

# --- qemu-arm through binfmt_misc ---------------------------------------------
# The F flag opens the static emulator now, so it works inside the chroot
# without a copy there. An existing handler for ARM ELF is used as it is, and
# ours is removed again at exit: binfmt_misc is the kernel's, shared by the
# whole machine.
if [ ! -e /proc/sys/fs/binfmt_misc/register ]; then
    run mount binfmt_misc -t binfmt_misc /proc/sys/fs/binfmt_misc
    BINFMT_MOUNTED=1
fi
arm_handler=$(grep -l '^magic 7f454c4601010100000000000000000002002800' /proc/sys/fs/binfmt_misc/* 2>/dev/null |
    while read -r f; do grep -q '^enabled' "$f" && basename "$f"; done | head -1 || true)
if [ -n "$arm_handler" ]; then
    say "ARM ELF already handled by binfmt_misc entry '$arm_handler'"
else
    printf '%s' ':adp-qemu-arm:M::\x7fELF\x01\x01\x01\x00\x00\x00\x00\x00\x00\x00\x00\x00\x02\x00\x28\x00:\xff\xff\xff\xff\xff\xff\xff\x00\xff\xff\xff\xff\xff\xff\xff\xff\xfe\xff\xff\xff:/usr/bin/qemu-arm-static:F' \
        >/proc/sys/fs/binfmt_misc/register
    BINFMT_OURS=adp-qemu-arm
    say "registered binfmt_misc entry adp-qemu-arm -> /usr/bin/qemu-arm-static (removed at exit)"
fi
phase "binfmt_misc"

# --- the bookworm armhf root (cached) -------------------------------------------
if [ ! -f "$BASE" ]; then
    say "no cached root at $BASE: debootstrap --foreign, then the second stage under qemu-arm"
    rm -rf "$CACHE/stage"
    mkdir -p "$CACHE/stage"
    run debootstrap --foreign --arch=armhf --variant=minbase bookworm "$CACHE/stage" "$MIRROR" >"$CACHE/debootstrap.log" 2>&1 ||
        { tail -20 "$CACHE/debootstrap.log" >&2; die "debootstrap (first stage) failed; log: $CACHE/debootstrap.log"; }
    phase "debootstrap --foreign (first stage)"
    run chroot "$CACHE/stage" /debootstrap/debootstrap --second-stage >>"$CACHE/debootstrap.log" 2>&1 ||
        { tail -20 "$CACHE/debootstrap.log" >&2; die "debootstrap --second-stage failed; log: $CACHE/debootstrap.log"; }
    phase "debootstrap --second-stage (qemu-arm)"
    cat >"$CACHE/stage/etc/apt/sources.list" <<EOF
deb $MIRROR bookworm main
deb $MIRROR bookworm-updates main
deb $SECURITY_MIRROR bookworm-security main
EOF
    (cd "$CACHE/stage" && tar --numeric-owner -cpf "$BASE.part" .)
    mv "$BASE.part" "$BASE"
    rm -rf "$CACHE/stage"
    phase "cache the root ($BASE)"
fi
if [ "$PREPARE_ONLY" = 1 ]; then
    say "the root is cached at $BASE ($(du -h "$BASE" | cut -f1))"
    printf '  %s\n' "${TIMINGS[@]}"
    exit 0
fi
mkdir -p "$CHROOT"
tar -C "$CHROOT" --numeric-owner -xpf "$BASE"
cp /etc/resolv.conf "$CHROOT/etc/resolv.conf"
mount -t proc proc "$CHROOT/proc"
# A private devpts instance: apt's terminal log wants a pty, and the host's
# /dev/pts is not the root's business.
mkdir -p "$CHROOT/dev/pts"
mount -t devpts -o newinstance,ptmxmode=0666 devpts "$CHROOT/dev/pts"
in_root() { chroot "$CHROOT" env -i PATH=/usr/sbin:/usr/bin:/sbin:/bin DEBIAN_FRONTEND=noninteractive LANG=C.UTF-8 "$@"; }
# apt_get LOG ARGS...: apt-get -y -q ARGS in the root, its output shown indented
# and kept in $work/LOG; fails as apt-get does.
apt_get() {
    local log=$1
    shift
    in_root apt-get -y -q "$@" 2>&1 | tee "$work/$log" | sed 's/^/  | /'
    return "${PIPESTATUS[0]}"
}
# expect_installed DEB WHAT: dpkg must have DEB's version installed; sets $status.
expect_installed() {
    status=$(in_root dpkg-query -W -f='${Status} ${Version}' agent-data-plane)
    [ "$status" = "install ok installed $(dpkg-deb --field "$1" Version)" ] || die "$2: $status"
}
say "root: $(in_root cat /etc/debian_version), $(in_root dpkg --print-architecture), $(in_root uname -m) under emulation"
run in_root apt-get update -q >"$work/apt-update.log" 2>&1 || { cat "$work/apt-update.log" >&2; die "apt-get update failed in the root"; }
phase "unpack the root, apt-get update (qemu-arm)"

# --- the newer build: the same release, Debian revision 2 ------------------------
NEWER=$work/newer
run env ADP_DEB_REVISION=2 "$ROOT/checks/build-adp.sh" armv7 --out "$NEWER" >"$work/newer-build.log" 2>&1 ||
    { tail -30 "$work/newer-build.log" >&2; die "building the Debian revision 2 package failed"; }
DEB2=$(ls "$NEWER"/agent-data-plane_*-2_armhf.deb)
phase "build the newer .deb (Debian revision 2)"
cp "$DEB1" "$DEB2" "$CHROOT/tmp/"
D1=/tmp/$(basename "$DEB1")
D2=/tmp/$(basename "$DEB2")
say "packages: $(basename "$DEB1"), $(basename "$DEB2")"
dpkg-deb --field "$DEB1" Package Version Architecture Depends | sed 's/^/  /'

# A listing of the root (path, type, mode, owner) without what apt and dpkg
# keep about every package they ever handled, to compare before and after.
snapshot() {
    (cd "$CHROOT" && find . -xdev \
        \( -path ./proc -o -path ./tmp -o -path ./var/lib/dpkg -o -path ./var/lib/apt -o -path ./var/cache/apt \
        -o -path ./var/cache/debconf -o -path ./var/log/apt -o -path ./var/log/dpkg.log -o -path ./var/log/alternatives.log \
        -o -path ./etc/passwd- -o -path ./etc/group- -o -path ./etc/shadow- -o -path ./etc/gshadow- -o -path ./etc/subuid- -o -path ./etc/subgid- \
        -o -path ./var/cache/ldconfig -o -path ./etc/ld.so.cache \) -prune -o -printf '%y %m %U:%G %p\n' | sort)
    for f in passwd group shadow gshadow subuid subgid; do
        [ -e "$CHROOT/etc/$f" ] && printf 'content %s %s\n' "$f" "$(sha256sum <"$CHROOT/etc/$f" | cut -c1-16)"
    done
}
snapshot >"$work/before.txt"

# --- install ---------------------------------------------------------------------
say "apt-get install $D1"
apt_get install.log install "$D1" || die "apt-get install failed"
phase "apt-get install ./...-1_armhf.deb"
expect_installed "$DEB1" "dpkg status"
say "ok: $status"
passwd_line=$(in_root getent passwd dd-agent) || die "no dd-agent user after install"
say "ok: user $passwd_line"
case $passwd_line in *:/usr/sbin/nologin) ;; *) die "dd-agent has a login shell" ;; esac
conffiles=$(in_root dpkg-query -W -f='${Conffiles}' agent-data-plane)
grep -q '^ /etc/datadog-agent/datadog.yaml [0-9a-f]\{32\}' <<<"$conffiles" || die "datadog.yaml is not a conffile: $conffiles"
say "ok: conffile$conffiles"
modes=$(in_root stat -c '%a %U:%G %n' /etc/datadog-agent /etc/datadog-agent/datadog.yaml)
[ "$modes" = "755 dd-agent:dd-agent /etc/datadog-agent
640 root:dd-agent /etc/datadog-agent/datadog.yaml" ] || die "owners and modes: $modes"
say "ok: $(tr '\n' ';' <<<"$modes") (dpkg-statoverride: $(in_root dpkg-statoverride --list | tr '\n' ';'))"
if in_root test -x /usr/bin/deb-systemd-helper; then
    wants=/etc/systemd/system/multi-user.target.wants/agent-data-plane.service
    in_root test -L "$wants" || die "the unit is not enabled ($wants missing)"
    say "ok: enabled without a running systemd: $wants -> $(in_root readlink "$wants")"
else
    say "no deb-systemd-helper in this root (init-system-helpers not installed): nothing to enable"
fi
[ ! -d "$CHROOT/run/systemd/system" ] || die "the root has /run/systemd/system: this test expects no running systemd"
say "ok: not started: no systemd runs here ([ -d /run/systemd/system ] is false)"

# --- the installed agent sends a metric --------------------------------------------
"$INTAKE" --listen 127.0.0.1:0 >"$work/intake.out" 2>"$work/intake.err" &
INTAKE_PID=$!
deadline=$((SECONDS + 30))
until INTAKE_ADDR=$(sed -n '1s/^listening on //p' "$work/intake.out") && [ -n "$INTAKE_ADDR" ]; do
    [ $SECONDS -lt $deadline ] || die "the test intake did not start: $(cat "$work/intake.err")"
    sleep 0.1
done
DSD_PORT=$(python3 "$ROOT/checks/lib/smoke.py" free-udp-port)
HOST_TAG=deb-install-$$
# What an owner edits: the API key and where to send; the test adds loopback
# listeners on free ports (the machine is shared) and a short flush.
python3 - "$CHROOT/etc/datadog-agent/datadog.yaml" "$INTAKE_ADDR" "$DSD_PORT" "$HOST_TAG" <<'PY'
import sys
path, intake, port, host = sys.argv[1:]
text = open(path).read()
assert 'api_key: "<YOUR_API_KEY>"' in text, "the shipped placeholder is not in datadog.yaml"
text = text.replace('api_key: "<YOUR_API_KEY>"', 'api_key: "0123456789abcdef0123456789abcdef"')
text = text.replace("dogstatsd_port: 8125", f"dogstatsd_port: {port}")
text = text.replace("data_plane:\n", "data_plane:\n  api_listen_address: tcp://127.0.0.1:0\n  secure_api_listen_address: tcp://127.0.0.1:0\n", 1)
text += f"\n# Edited by the board owner (deb-install-test).\nhostname: {host}\ndd_url: http://{intake}\naggregate_window_duration_seconds: 1\naggregate_flush_interval: 1s\n"
with open(path, "r+") as f:  # in place: the statoverride's owner and mode stay
    f.seek(0)
    f.write(text)
    f.truncate()
PY
edited=$(sha256sum <"$CHROOT/etc/datadog-agent/datadog.yaml" | cut -d' ' -f1)
uid=$(cut -d: -f3 <<<"$passwd_line")
gid=$(cut -d: -f4 <<<"$passwd_line")
say "starting /usr/bin/agent-data-plane run as dd-agent ($uid:$gid) in the root, intake http://$INTAKE_ADDR, DogStatsD udp/$DSD_PORT"
chroot --userspec="$uid:$gid" "$CHROOT" env -i PATH=/usr/bin:/bin DD_LOG_LEVEL=info /usr/bin/agent-data-plane run \
    >"$work/agent.log" 2>&1 &
AGENT_PID=$!
deadline=$((SECONDS + TIMEOUT))
until grep -qF "Topology healthy. Waiting for interrupt..." "$work/agent.log"; do
    kill -0 "$AGENT_PID" 2>/dev/null || { cat "$work/agent.log" >&2; die "the agent exited before it was ready"; }
    [ $SECONDS -lt $deadline ] || { cat "$work/agent.log" >&2; die "the agent was not ready within ${TIMEOUT}s"; }
    sleep 0.5
done
phase "agent start (qemu-arm)"
python3 "$ROOT/checks/lib/smoke.py" udp "$DSD_PORT" "deb.install.metric:5|g|#installed_by:apt"
deadline=$((SECONDS + TIMEOUT))
until found=$(python3 "$ROOT/checks/lib/smoke.py" expect-series "http://$INTAKE_ADDR/_intake/received" "$HOST_TAG" \
    "deb.install.metric,gauge,installed_by:apt,5" 2>&1); do
    [ $SECONDS -lt $deadline ] || { cat "$work/agent.log" >&2; die "the intake never received deb.install.metric: $found"; }
    sleep 1
done
say "ok: the intake received it: $found"
kill -TERM "$AGENT_PID"
rc=0
wait "$AGENT_PID" || rc=$?
AGENT_PID=
[ "$rc" = 0 ] || { cat "$work/agent.log" >&2; die "the agent exited with $rc after SIGTERM"; }
grep -F "Agent Data Plane stopped." "$work/agent.log" >/dev/null || die "no 'Agent Data Plane stopped.' in the log"
token=$(in_root stat -c '%a %U:%G %n' /etc/datadog-agent/auth_token)
say "ok: clean exit after SIGTERM; the agent wrote $token"
phase "metric to the intake, SIGTERM"

# --- upgrade -----------------------------------------------------------------------
say "apt-get install $D2 (upgrade)"
apt_get upgrade.log install "$D2" || die "the upgrade failed"
phase "apt-get install ./...-2_armhf.deb (upgrade)"
expect_installed "$DEB2" "dpkg status after the upgrade"
[ "$(sha256sum <"$CHROOT/etc/datadog-agent/datadog.yaml" | cut -d' ' -f1)" = "$edited" ] ||
    die "the upgrade changed the edited datadog.yaml"
leftovers=$(cd "$CHROOT/etc/datadog-agent" && ls -A | grep -E '\.dpkg-' || true)
[ -z "$leftovers" ] || die "the upgrade left $leftovers"
modes=$(in_root stat -c '%a %U:%G' /etc/datadog-agent/datadog.yaml)
[ "$modes" = "640 root:dd-agent" ] || die "datadog.yaml is $modes after the upgrade"
say "ok: $status; the edited datadog.yaml is unchanged (sha256 ${edited:0:16}…, $modes), no .dpkg-* copies"
say "ok: $(in_root /usr/bin/agent-data-plane version)"

# --- purge ---------------------------------------------------------------------------
say "apt-get purge agent-data-plane"
apt_get purge.log purge agent-data-plane || die "apt-get purge failed"
phase "apt-get purge"
status=$(in_root dpkg-query -W -f='${Status}' agent-data-plane 2>/dev/null || true)
case $status in "" | "unknown ok not-installed" | "purge ok not-installed") ;; *) die "dpkg status after purge: $status" ;; esac
! in_root getent passwd dd-agent >/dev/null || die "dd-agent is still a user after purge"
! in_root getent group dd-agent >/dev/null || die "dd-agent is still a group after purge"
[ -z "$(in_root dpkg-statoverride --list)" ] || die "statoverrides left: $(in_root dpkg-statoverride --list)"
snapshot >"$work/after.txt"
if ! diff -u "$work/before.txt" "$work/after.txt" >"$work/purge.diff"; then
    cat "$work/purge.diff" >&2
    die "the root after purge differs from the root before the install (above)"
fi
say "ok: after purge the root's $(grep -vc '^content' "$work/before.txt") paths (type, mode, owner) and passwd, group, shadow, gshadow are as before the install"

say "timings:"
printf '  %s\n' "${TIMINGS[@]}"
say "passed: $(basename "$DEB1") installed, ran, upgraded to $(basename "$DEB2") keeping datadog.yaml, purged without a trace"
