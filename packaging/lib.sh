# shellcheck shell=bash
# What packaging/test-install.sh and packaging/test-repo.sh share: the PASS/FAIL
# bookkeeping and its summary, the work directory, the cached bookworm root and
# its mounts, and the server started as the unit starts it. One definition, so
# the two tests cannot drift apart (they did: one killed empty PIDs, one ran the
# server without the MemoryDenyWriteExecute emulation).
#
# Sourced, never run, right after `set -euo pipefail`, with
#   HERE       the packaging/ folder
#   TEST_NAME  what the summary calls the run ("install test")
#   TEST_BASE  where run.* work directories go
# set by the caller. A caller may define summary_cleanup() for its own
# clean-up; it runs after the mounts are gone, before the work directory goes.
# Sourcing it sets the EXIT trap and refuses to go on unless run as root.

REPO=$(cd "$HERE/.." && pwd)
CACHE=$HERE/.cache
ROOTFS_CACHE=$CACHE/rootfs-bookworm
APT_CACHE=$CACHE/apt-archives
SUITE=bookworm
HOSTPY=/usr/bin/python3
export LC_ALL=C.UTF-8 DEBIAN_FRONTEND=noninteractive

START=$(date +%s)
RESULTS=()
FAILED=0
SKIPPED=0
WORK=""
LOGS=""
MOUNTS=()
PIDS=()

# ------------------------------------------------------------- bookkeeping
say() { printf '\n=== [%3d s] %s\n' "$(($(date +%s) - START))" "$*"; }
pass() { RESULTS+=("PASS  $*"); printf '  PASS  %s\n' "$*"; }
fail() { RESULTS+=("FAIL  $*"); FAILED=$((FAILED + 1)); printf '  FAIL  %s\n' "$*" >&2; }
skip() { RESULTS+=("SKIP  $*"); SKIPPED=$((SKIPPED + 1)); printf '  SKIP  %s\n' "$*"; }
check() { # check "description" command... (returns the command's success)
    local what=$1; shift
    if "$@"; then pass "$what"; else fail "$what"; return 1; fi
}
die() { fail "$*"; exit 1; }

summary() { # the EXIT trap: stop what we started, unmount, keep or remove WORK, print the list
    local rc=$? pid i title rule
    set +e
    for pid in "${PIDS[@]}"; do [ -n "$pid" ] && kill -TERM "$pid" 2>/dev/null; done
    for pid in "${PIDS[@]}"; do [ -n "$pid" ] && wait "$pid" 2>/dev/null; done
    for ((i = ${#MOUNTS[@]} - 1; i >= 0; i--)); do
        umount "${MOUNTS[i]}" 2>/dev/null || umount -l "${MOUNTS[i]}" 2>/dev/null
    done
    if declare -F summary_cleanup >/dev/null; then summary_cleanup; fi
    if [ -n "$WORK" ] && [ -d "$WORK" ]; then
        if grep -qF " $WORK/" /proc/self/mounts; then
            echo "$(basename "$0"): something is still mounted under $WORK; not removing it" >&2
        elif [ "$FAILED" = 0 ] && [ "$rc" = 0 ] && [ -z "${STEMEDB_TEST_KEEP:-}" ]; then
            rm -rf "$WORK"
        else
            echo "work directory kept: $WORK" >&2
        fi
    fi
    title="==================== $TEST_NAME summary ===================="
    rule=$(printf '%*s' "${#title}" '' | tr ' ' -)
    echo
    echo "$title"
    printf '%s\n' "${RESULTS[@]}"
    echo "$rule"
    local passed=$((${#RESULTS[@]} - FAILED - SKIPPED))
    echo "$passed passed, $FAILED failed, $SKIPPED skipped ($(($(date +%s) - START)) s)"
    [ "$FAILED" = 0 ] && [ "$rc" = 0 ] || exit 1
}
trap summary EXIT

[ "$(id -u)" = 0 ] || die "run as root (chroot, mounts, apt-get)"

# ------------------------------------------------------------------- host
ensure_packages() { # ensure_packages PACKAGE...: apt-get install the missing ones
    local missing=() p
    for p in "$@"; do
        dpkg-query -W -f='${db:Status-Status}' "$p" 2>/dev/null | grep -qx installed || missing+=("$p")
    done
    ((${#missing[@]})) || return 0
    echo "installing ${missing[*]}"
    apt-get update -qq
    apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
}
free_port() { "$HOSTPY" -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }
json_field() { "$HOSTPY" -c 'import json, sys; print(json.load(sys.stdin)[sys.argv[1]])' "$1"; }
project_version() { # the version in pyproject.toml
    "$HOSTPY" -c 'import sys, tomllib; print(tomllib.load(open(sys.argv[1], "rb"))["project"]["version"])' \
        "$REPO/pyproject.toml"
}
new_work_dir() { # WORK=$TEST_BASE/run.XXXXXX and LOGS in it; leftovers of interrupted runs go
    local old
    mkdir -p "$TEST_BASE" "$APT_CACHE"
    for old in "$TEST_BASE"/run.*; do
        [ -d "$old" ] || continue
        grep -qF " $old/" /proc/self/mounts || rm -rf "$old"  # never while mounted there
    done
    WORK=$(mktemp -d "$TEST_BASE/run.XXXXXX")
    LOGS=$WORK/logs
    mkdir -p "$LOGS"
}

# ----------------------------------------------------------------- chroots
mount_into() { # mount_into ROOT: proc, /dev, the shared apt download cache
    local r=$1
    mount -t proc proc "$r/proc" && MOUNTS+=("$r/proc")
    mount --bind /dev "$r/dev" && MOUNTS+=("$r/dev")
    mount --bind "$APT_CACHE" "$r/var/cache/apt/archives" && MOUNTS+=("$r/var/cache/apt/archives")
}
unmount_all_under() { # unmount_all_under ROOT
    local r=$1 i
    for ((i = ${#MOUNTS[@]} - 1; i >= 0; i--)); do
        case ${MOUNTS[i]} in
            "$r"/*) umount "${MOUNTS[i]}" || umount -l "${MOUNTS[i]}"; unset 'MOUNTS[i]' ;;
        esac
    done
    MOUNTS=("${MOUNTS[@]}")
}
forget_mount() { # forget_mount PATH: unmount it and drop it from MOUNTS
    local i
    umount "$1" || umount -l "$1"
    for i in "${!MOUNTS[@]}"; do [ "${MOUNTS[i]}" = "$1" ] && unset 'MOUNTS[i]'; done
    MOUNTS=("${MOUNTS[@]}")
}
new_root() { # new_root NAME: $WORK/NAME, a fresh copy of the cached rootfs, mounted, apt lists fresh ($MIRROR)
    local r=$WORK/$1
    cp -a "$ROOTFS_CACHE" "$r"
    echo "deb $MIRROR $SUITE main" > "$r/etc/apt/sources.list"
    cp -L /etc/resolv.conf "$r/etc/resolv.conf"
    mkdir -p "$r/var/cache/apt/archives" "$r/tmp/pkgs"
    mount_into "$r"
    chroot "$r" apt-get update -qq > "$LOGS/$1-apt-update.log" 2>&1 \
        || { cat "$LOGS/$1-apt-update.log"; die "$1: apt-get update in the chroot"; }
}

# ------------------------------------------------- the server, as the unit runs it
# User stemedb, the env file, no new privileges, no capabilities, umask 0027.
SERVICE_SH='umask 0027; set -a; . /etc/stemedb/stemedb.env; set +a; exec "$@"'
as_service() { # as_service ROOT cmd...
    local r=$1; shift
    chroot "$r" setpriv --reuid=stemedb --regid=stemedb --init-groups --no-new-privs \
        --bounding-set=-all --inh-caps=-all --reset-env sh -c "$SERVICE_SH" sh "$@"
}
# MemoryDenyWriteExecute=yes, emulated with the kernel's PR_SET_MDWE (Linux
# >= 6.3; inherited across execve, like systemd's seccomp filter).
MDWE_EXEC='import ctypes, os, sys
if ctypes.CDLL(None, use_errno=True).prctl(65, 1, 0, 0, 0) != 0:
    sys.stderr.write("install-test: PR_SET_MDWE unavailable, MemoryDenyWriteExecute not emulated\n")
os.execv(sys.argv[1], sys.argv[1:])'

SERVER_PID=""
start_server() { # start_server ROOT PORT LOG: up and answering /v1/health (read-only /opt, MDWE)
    local r=$1 port=$2 log=$3 i
    if curl -fsS -m 2 "http://127.0.0.1:$port/v1/health" >/dev/null 2>&1; then
        echo "    port $port already answers: a server is still running"; return 1
    fi
    # ProtectSystem=strict: the venv must work read-only.
    mount --bind "$r/opt" "$r/opt" && MOUNTS+=("$r/opt")
    mount -o remount,bind,ro "$r/opt"
    # exec: $! must be the server itself (chroot, setpriv, sh and python exec
    # one another), not a subshell.
    { exec chroot "$r" setpriv --reuid=stemedb --regid=stemedb --init-groups --no-new-privs \
        --bounding-set=-all --inh-caps=-all --reset-env sh -c "$SERVICE_SH" sh \
        /opt/stemedb/venv/bin/python -c "$MDWE_EXEC" /usr/bin/stemedb-api; } > "$log" 2>&1 &
    SERVER_PID=$!
    PIDS+=("$SERVER_PID")
    for i in $(seq 1 120); do
        if curl -fsS -m 2 "http://127.0.0.1:$port/v1/health" > "$log.health" 2>/dev/null; then
            return 0
        fi
        kill -0 "$SERVER_PID" 2>/dev/null || { tail -20 "$log"; return 1; }
        sleep 0.5
    done
    tail -20 "$log"
    return 1
}
stop_server() { # stop_server ROOT -> SIGTERM, expect exit 0 within 30 s
    local r=$1 rc=0
    kill -TERM "$SERVER_PID"
    for _ in $(seq 1 60); do kill -0 "$SERVER_PID" 2>/dev/null || break; sleep 0.5; done
    if kill -0 "$SERVER_PID" 2>/dev/null; then
        echo "    still running 30 s after SIGTERM: SIGKILL"
        kill -KILL "$SERVER_PID"
    fi
    wait "$SERVER_PID" || rc=$?
    PIDS=("${PIDS[@]/$SERVER_PID}")
    forget_mount "$r/opt"
    [ "$rc" = 0 ] || echo "    server exit status $rc"
    return $rc
}
health_count() { curl -fsS -m 5 "http://127.0.0.1:$1/v1/health" | json_field assertion_count; }

# ------------------------------------------- a check run inside a booted container
# The caller writes ROOT/usr/local/sbin/NAME: a script that writes "PASS text" /
# "FAIL text" lines and a last "DONE" to /root/NAME.log, then powers off. Its
# helpers res() and prop() are in $CHECK_HELPERS (paste it into the heredoc).
# shellcheck disable=SC2034  # used in the callers' heredocs
CHECK_HELPERS='res() { if [ "$1" = 0 ]; then echo "PASS $2"; else echo "FAIL $2"; fi; }
prop() { systemctl show -P "$2" "$1"; }'
boot_check() { # boot_check ROOT NAME DESCRIPTION PREFIX: boot, run NAME once, record its lines
    local r=$1 name=$2 description=$3 prefix=$4 t0 verdict text
    chmod 0755 "$r/usr/local/sbin/$name"
    cat > "$r/etc/systemd/system/$name.service" <<UNIT
[Unit]
Description=$description
After=multi-user.target
[Service]
Type=oneshot
ExecStart=/usr/local/sbin/$name
[Install]
WantedBy=multi-user.target
UNIT
    ln -sf "/etc/systemd/system/$name.service" "$r/etc/systemd/system/multi-user.target.wants/$name.service"
    t0=$(date +%s)
    timeout 300 systemd-nspawn --quiet --directory="$r" --boot --register=no --keep-unit \
        --console=read-only > "$LOGS/nspawn-boot.log" 2>&1
    rm -f "$r/etc/systemd/system/multi-user.target.wants/$name.service"
    if ! grep -q '^DONE' "$r/root/$name.log" 2>/dev/null; then
        tail -20 "$LOGS/nspawn-boot.log"
        return 1
    fi
    pass "systemd-nspawn boot of the $SUITE container ($(($(date +%s) - t0)) s)"
    while read -r verdict text; do
        case $verdict in PASS) pass "$prefix: $text" ;; FAIL) fail "$prefix: $text" ;; esac
    done < <(grep -E '^(PASS|FAIL) ' "$r/root/$name.log")
    cp "$r/root/$name.log" "$LOGS/"
}
