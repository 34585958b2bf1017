#!/usr/bin/env bash
# Install test of the StemeDB distro packages (make install-test).
#
#  1. build dist/stemedb_<v>_amd64.deb + dist/stemedb-<v>-1.x86_64.rpm, and
#     a <v>+installtest1 pair for the upgrade checks (packaging/build.sh)
#  2. lint them (packaging/lint.sh: lintian, rpmlint with justified overrides)
#  3. systemd units: `systemd-analyze verify` against the installed tree,
#     `systemd-analyze security --offline` exposure <= 2.0 for every service
#  4. deb, in a throw-away copy of a cached `debootstrap --variant=minbase
#     bookworm` root (no systemd running): apt-get install ./stemedb.deb,
#     account/directories/permissions, server started as the unit would
#     (user stemedb, env file, no-new-privs, empty capability bounding set,
#     MemoryDenyWriteExecute via PR_SET_MDWE, read-only /opt, umask 0027),
#     /v1/health, signed assertion written and read back, the timer jobs'
#     commands, nginx site (`nginx -t` + live TLS proxy check with a
#     throw-away certificate), clean SIGTERM stop, `stemedb verify`; upgrade
#     to the bumped version (data and an edited env file survive); remove
#     (data kept); purge (data deleted, with a message)
#  5. rpm, in a second copy of that root: `rpm --root -i` with scriptlets,
#     the same smoke test from the rpm's files, `rpm -U` upgrade, `rpm -e`
#
# Exits non-zero on any failure and prints a summary. Needs root (chroot,
# mounts, apt-get). Idempotent: every run works in a fresh directory under
# build/install-test/ and removes it afterwards (kept on failure, or with
# STEMEDB_TEST_KEEP=1).
#
# Environment:
#   STEMEDB_TEST_SKIP_BUILD=1  use the packages already in dist/ (and the
#                              upgrade pair in build/install-test/dist-upgrade)
#   STEMEDB_TEST_MIRROR=URL    Debian mirror (default: the one of this
#                              machine's /etc/apt/sources.list(.d))
#   STEMEDB_TEST_KEEP=1        keep the work directory
set -euo pipefail
unset STEMEDB_PKG_VERSION STEMEDB_PKG_FORMATS STEMEDB_PKG_PAYLOAD_FROM

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
TEST_NAME="install test"
# shellcheck source=packaging/lib.sh
. "$HERE/lib.sh"  # REPO, the cached root, PASS/FAIL + summary, mounts, start_server ...
TEST_BASE=$REPO/build/install-test

ensure_packages debootstrap lintian rpmlint rpm rpm2cpio cpio systemd systemd-container openssl curl python3 util-linux

# The Debian mirror this machine's apt uses (first "deb" source of $SUITE).
debian_mirror() {
    "$HOSTPY" - "$SUITE" <<'EOF'
import glob, re, sys
suite = sys.argv[1]
def deb822(path):
    for stanza in re.split(r"\n\s*\n", open(path).read()):
        fields = {}
        for line in stanza.splitlines():
            if line.startswith("#") or ":" not in line or line[0].isspace():
                continue
            key, _, value = line.partition(":")
            fields[key.strip().lower()] = value.split()
        if ("deb" in fields.get("types", []) and suite in fields.get("suites", [])
                and fields.get("enabled", ["yes"])[0].lower() != "no" and fields.get("uris")):
            return fields["uris"][0]
def one_line(path):
    for line in open(path):
        m = re.match(r"\s*deb\s+(?:\[[^\]]*\]\s+)?(\S+)\s+(\S+)\s", line)
        if m and m.group(2) == suite:
            return m.group(1)
for path in sorted(glob.glob("/etc/apt/sources.list.d/*.sources")):
    if (uri := deb822(path)):
        print(uri); sys.exit(0)
for path in ["/etc/apt/sources.list", *sorted(glob.glob("/etc/apt/sources.list.d/*.list"))]:
    try:
        if (uri := one_line(path)):
            print(uri); sys.exit(0)
    except FileNotFoundError:
        pass
sys.exit(1)
EOF
}
MIRROR=${STEMEDB_TEST_MIRROR:-$(debian_mirror)} || die "no '$SUITE' Debian source in /etc/apt/sources.list(.d); set STEMEDB_TEST_MIRROR"

new_work_dir

VERSION=$(project_version)
UPVERSION=$VERSION+installtest1
DEB=$REPO/dist/stemedb_${VERSION}_amd64.deb
RPM=$REPO/dist/stemedb-${VERSION}-1.x86_64.rpm
UPDIST=$TEST_BASE/dist-upgrade
UPDEB=$UPDIST/stemedb_${UPVERSION}_amd64.deb
UPRPM=$UPDIST/stemedb-${UPVERSION}-1.x86_64.rpm

# From here on a failed check is recorded and the run goes on; die() stops it.
set +e

# ------------------------------------------------------------------ build
say "build (packaging/build.sh)"
if [ -z "${STEMEDB_TEST_SKIP_BUILD:-}" ]; then
    t0=$(date +%s)
    if STEMEDB_PKG_BUILD_DIR=$REPO/build/pkg STEMEDB_PKG_DIST_DIR=$REPO/dist \
        bash "$HERE/build.sh" > "$LOGS/build.log" 2>&1; then
        pass "build $VERSION deb+rpm ($(($(date +%s) - t0)) s)"
    else
        tail -30 "$LOGS/build.log"; die "build $VERSION (log: $LOGS/build.log)"
    fi
    t0=$(date +%s)
    # Same payload (venv) as the first build, only the version differs.
    if STEMEDB_PKG_VERSION=$UPVERSION STEMEDB_PKG_BUILD_DIR=$REPO/build/pkg-upgrade \
        STEMEDB_PKG_DIST_DIR=$UPDIST STEMEDB_PKG_PAYLOAD_FROM=$REPO/build/pkg/root \
        bash "$HERE/build.sh" > "$LOGS/build-upgrade.log" 2>&1; then
        pass "build $UPVERSION deb+rpm for the upgrade checks ($(($(date +%s) - t0)) s)"
    else
        tail -30 "$LOGS/build-upgrade.log"; die "build $UPVERSION (log: $LOGS/build-upgrade.log)"
    fi
fi
for f in "$DEB" "$RPM" "$UPDEB" "$UPRPM"; do [ -f "$f" ] || die "missing $f"; done
DEB_SIZE=$(stat -c %s "$DEB"); RPM_SIZE=$(stat -c %s "$RPM")
DEB_INSTALLED_KB=$(dpkg-deb -f "$DEB" Installed-Size)

# ------------------------------------------------------------------- lint
say "lint (packaging/lint.sh)"
if bash "$HERE/lint.sh" "$VERSION" > "$LOGS/lint.log" 2>&1; then
    pass "lintian + rpmlint clean (justified overrides only)"
else
    cat "$LOGS/lint.log"; fail "lint (log: $LOGS/lint.log)"
fi

# ---------------------------------------------------------- systemd units
say "systemd units"
UNITS=(stemedb-api.service stemedb-backup.service stemedb-backup.timer stemedb-archive.service
    stemedb-archive.timer stemedb-verify.service stemedb-verify.timer stemedb-litestream.service)
verify_units() { # verify_units TREE UNITDIR
    local tree=$1 unitdir=$2
    # The package tree plus the host's own units (targets, sockets) so that
    # dependencies resolve; ExecStart binaries are checked inside TREE.
    cp -an /lib/systemd/system/. "$tree/$unitdir/"
    (cd "$tree/$unitdir" && systemd-analyze --root="$tree" --man=no verify "${UNITS[@]}") \
        > "$LOGS/verify-$(basename "$tree").log" 2>&1 \
        && ! [ -s "$LOGS/verify-$(basename "$tree").log" ] \
        || { cat "$LOGS/verify-$(basename "$tree").log"; return 1; }
}
mkdir -p "$WORK/tree-deb" "$WORK/tree-rpm"
dpkg-deb -x "$DEB" "$WORK/tree-deb"
(cd "$WORK/tree-rpm" && rpm2cpio "$RPM" | cpio -idm --quiet)
check "systemd-analyze verify: all 8 units of the .deb" verify_units "$WORK/tree-deb" lib/systemd/system
check "systemd-analyze verify: all 8 units of the .rpm" verify_units "$WORK/tree-rpm" usr/lib/systemd/system
exposure() { systemd-analyze security --offline=true "$HERE/systemd/$1.service" 2>/dev/null \
    | sed -n 's/.*Overall exposure level for [^:]*: \([0-9.]*\).*/\1/p'; }
exposure_ok() { systemd-analyze security --offline=true --threshold=20 "$HERE/systemd/$1.service" >/dev/null 2>&1; }
for svc in stemedb-api stemedb-backup stemedb-archive stemedb-verify; do
    check "systemd-analyze security --offline $svc.service: exposure $(exposure "$svc") (limit 2.0)" exposure_ok "$svc"
done
API_SCORE=$(exposure stemedb-api)

# ---------------------------------------------------------------- rootfs
say "bookworm rootfs ($MIRROR)"
if [ ! -x "$ROOTFS_CACHE/usr/bin/apt-get" ]; then
    t0=$(date +%s)
    rm -rf "$ROOTFS_CACHE.partial"
    if debootstrap --variant=minbase "$SUITE" "$ROOTFS_CACHE.partial" "$MIRROR" > "$LOGS/debootstrap.log" 2>&1; then
        rm -rf "$ROOTFS_CACHE"
        mv "$ROOTFS_CACHE.partial" "$ROOTFS_CACHE"
        pass "debootstrap --variant=minbase $SUITE (cold cache, $(($(date +%s) - t0)) s)"
    else
        tail -20 "$LOGS/debootstrap.log"; die "debootstrap (log: $LOGS/debootstrap.log)"
    fi
fi

post_signed_assertion() { # post_signed_assertion ROOT PORT -> prints the hash
    as_service "$1" /opt/stemedb/venv/bin/python - "$2" <<'EOF'
import json, sys, urllib.request
from stemedb.crypto import generate_signing_key
from stemedb.signing import make_assertion
record = make_assertion(generate_signing_key(), "packaging/install-test", "installs_cleanly", True, 0.9)
request = urllib.request.Request(
    f"http://127.0.0.1:{sys.argv[1]}/v1/assert", data=json.dumps(record).encode(),
    headers={"Content-Type": "application/json"}, method="POST")
with urllib.request.urlopen(request, timeout=30) as response:
    print(json.load(response)["hash"])
EOF
}
read_back() { # read_back PORT HASH
    curl -fsS -m 10 "http://127.0.0.1:$1/v1/assertions/$2" | grep -q '"packaging/install-test"'
}
stat_is() { # stat_is ROOT PATH "owner:group mode" (names as the chroot resolves them)
    local got
    got=$(chroot "$1" stat -c '%U:%G %a' "$2" 2>&1)
    [ "$got" = "$3" ] || { echo "    $2: $got, expected $3"; return 1; }
}
env_documents_all_variables() { # every STEMEDB_* variable the code reads is in the env file
    chroot "$1" /opt/stemedb/venv/bin/python - <<'EOF'
import re, sys
from stemedb.config import KNOWN_VARIABLES
text = open("/etc/stemedb/stemedb.env").read()
listed = set(re.findall(r"^#?(STEMEDB_[A-Z0-9_]+)=", text, re.M))
missing = sorted(KNOWN_VARIABLES - listed)
if missing:
    print("    not in /etc/stemedb/stemedb.env:", " ".join(missing))
sys.exit(1 if missing else 0)
EOF
}
cli() { # cli ROOT LOGNAME cmd...: as the service, output to a log
    local r=$1 log=$LOGS/$2.log; shift 2
    as_service "$r" "$@" > "$log" 2>&1 || { tail -5 "$log"; return 1; }
}
unit_command() { sed -n 's/^ExecStart=//p' "$HERE/systemd/$1.service"; }
run_job() { # run_job ROOT UNIT: the timer service's ExecStart, as the service
    local cmd
    read -r -a cmd <<< "$(unit_command "$2")"
    as_service "$1" "${cmd[@]}" > "$LOGS/job-$2-$(basename "$1").log" 2>&1 \
        || { tail -5 "$LOGS/job-$2-$(basename "$1").log"; return 1; }
}
smoke() { # smoke ROOT LABEL: server up, signed write, read back, jobs, stop, verify
    local r=$1 label=$2
    PORT=$(free_port)
    # The administrator's edit that upgrades must keep.
    sed -i "s/^STEMEDB_BIND_ADDR=.*/STEMEDB_BIND_ADDR=127.0.0.1:$PORT/" "$r/etc/stemedb/stemedb.env"
    echo "# local edit by the install test" >> "$r/etc/stemedb/stemedb.env"
    check "$label: env file documents every STEMEDB_* variable of stemedb.config" env_documents_all_variables "$r"
    check "$label: stemedb-api starts as user stemedb (env file, no-new-privs, no caps, MDWE, read-only /opt), /v1/health answers" \
        start_server "$r" "$PORT" "$LOGS/$label-server.log" || return 1
    check "$label: start-up logged all ten steps" grep -q '\[10/10\]' "$LOGS/$label-server.log"
    HASH=$(post_signed_assertion "$r" "$PORT" 2> "$LOGS/$label-post.log") || HASH=""
    check "$label: signed assertion POST /v1/assert -> $HASH" test -n "$HASH"
    check "$label: GET /v1/assertions/<hash> reads it back" read_back "$PORT" "$HASH"
    COUNT=$(health_count "$PORT")
    check "$label: /v1/health assertion_count = $COUNT" test "$COUNT" -ge 1
    check "$label: stemedb-archive.service command ($(unit_command stemedb-archive)) as user stemedb" run_job "$r" stemedb-archive
    check "$label: stemedb-backup.service command ($(unit_command stemedb-backup)) as user stemedb" run_job "$r" stemedb-backup
    check "$label: SIGTERM stops the server cleanly (exit 0)" stop_server "$r"
    check "$label: stemedb verify (installed CLI, as user stemedb)" cli "$r" "$label-verify" stemedb verify
    check "$label: stemedb-verify.service command ($(unit_command stemedb-verify)) as user stemedb" run_job "$r" stemedb-verify
}
after_upgrade() { # after_upgrade ROOT LABEL: edits, data and service still there
    local r=$1 label=$2
    check "$label: edited env file kept (marker + port)" \
        grep -q "^STEMEDB_BIND_ADDR=127.0.0.1:$PORT\$" "$r/etc/stemedb/stemedb.env"
    check "$label: env file still root:stemedb 0640" stat_is "$r" /etc/stemedb/stemedb.env "root:stemedb 640"
    check "$label: server starts on the upgraded package" \
        start_server "$r" "$PORT" "$LOGS/$label-server-upgraded.log" || return 1
    local n
    n=$(health_count "$PORT")
    check "$label: data survived: assertion_count $n (was $COUNT)" test "$n" = "$COUNT"
    check "$label: data survived: the assertion reads back" read_back "$PORT" "$HASH"
    check "$label: backups survived" sh -c "ls '$r/var/backups/stemedb' | grep -q ."
    check "$label: SIGTERM stops the upgraded server cleanly" stop_server "$r"
}
common_layout() { # common_layout ROOT LABEL
    local r=$1 label=$2
    check "$label: system account stemedb (home /var/lib/stemedb, nologin)" \
        sh -c "chroot '$r' getent passwd stemedb | grep -q ':/var/lib/stemedb:/usr/sbin/nologin\$'"
    for d in /var/lib/stemedb /var/lib/stemedb/db /var/lib/stemedb/wal /var/backups/stemedb; do
        check "$label: $d stemedb:stemedb 0750" stat_is "$r" "$d" "stemedb:stemedb 750"
    done
    check "$label: /etc/stemedb/stemedb.env root:stemedb 0640" stat_is "$r" /etc/stemedb/stemedb.env "root:stemedb 640"
    check "$label: /usr/bin/stemedb, /usr/bin/stemedb-api run from the venv" \
        sh -c "chroot '$r' /usr/bin/stemedb --help >/dev/null && chroot '$r' /usr/bin/stemedb-api --help >/dev/null"
    check "$label: nginx site + man pages installed" \
        test -f "$r/usr/share/stemedb/nginx/stemedb.conf" -a -f "$r/usr/share/man/man1/stemedb.1.gz"
    if [ -d "$HERE/monitoring" ]; then
        check "$label: monitoring files in /usr/share/stemedb/monitoring" \
            sh -c "ls '$r/usr/share/stemedb/monitoring' | grep -q ."
    fi
}

nginx_check() { # nginx_check ROOT: the shipped site with a throw-away certificate
    local r=$1 tls_port http_port out
    printf '#!/bin/sh\nexit 101\n' > "$r/usr/sbin/policy-rc.d"; chmod 0755 "$r/usr/sbin/policy-rc.d"
    chroot "$r" apt-get install -y -qq --no-install-recommends nginx-light > "$LOGS/nginx-install.log" 2>&1 \
        || { tail -5 "$LOGS/nginx-install.log"; return 1; }
    openssl req -x509 -newkey rsa:2048 -nodes -days 2 -subj /CN=stemedb.example.org \
        -addext subjectAltName=DNS:stemedb.example.org \
        -keyout "$r/etc/stemedb/tls/key.pem" -out "$r/etc/stemedb/tls/cert.pem" 2>/dev/null
    chroot "$r" sh -c 'chown root:stemedb /etc/stemedb/tls/*.pem && chmod 0640 /etc/stemedb/tls/*.pem'
    rm -f "$r/etc/nginx/sites-enabled/default"
    ln -s /usr/share/stemedb/nginx/stemedb.conf "$r/etc/nginx/sites-enabled/stemedb"
    chroot "$r" nginx -t > "$LOGS/nginx-t.log" 2>&1 || { cat "$LOGS/nginx-t.log"; return 1; }
    pass "nginx -t accepts /usr/share/stemedb/nginx/stemedb.conf (nginx-light, self-signed certificate)"
    # Live: the same site on loopback test ports, proxying to the test server.
    tls_port=$(free_port); http_port=$(free_port)
    rm "$r/etc/nginx/sites-enabled/stemedb"
    sed -e "s/listen 443 ssl;/listen 127.0.0.1:$tls_port ssl;/" -e "s/listen 80;/listen 127.0.0.1:$http_port;/" \
        -e '/listen \[::\]/d' -e "s/server 127.0.0.1:18180;/server 127.0.0.1:$PORT;/" \
        "$r/usr/share/stemedb/nginx/stemedb.conf" > "$r/etc/nginx/sites-enabled/stemedb-test"
    chroot "$r" nginx || return 1
    PIDS+=("$(cat "$r/run/nginx.pid")")
    out=$(curl -sS -m 10 --cacert "$r/etc/stemedb/tls/cert.pem" \
        --resolve "stemedb.example.org:$tls_port:127.0.0.1" -H 'X-Request-Id: install-test-42' \
        -D - "https://stemedb.example.org:$tls_port/v1/health" 2>&1) || true
    chroot "$r" sh -c 'kill -QUIT "$(cat /run/nginx.pid)"'
    echo "$out" > "$LOGS/nginx-live.log"
    echo "$out" | grep -q '"healthy"' && echo "$out" | grep -qi '^x-request-id: install-test-42' \
        || { cat "$LOGS/nginx-live.log"; return 1; }
}

# -------------------------------------------------------------------- deb
say "deb: install, run, upgrade, remove, purge in a $SUITE chroot"
new_root deb-root; R=$WORK/deb-root
cp "$DEB" "$UPDEB" "$R/tmp/pkgs/"
if chroot "$R" apt-get install -y --no-install-recommends "/tmp/pkgs/$(basename "$DEB")" > "$LOGS/deb-install.log" 2>&1; then
    pass "deb: apt-get install ./$(basename "$DEB") (dependencies from the mirror, no systemd running)"
else
    tail -30 "$LOGS/deb-install.log"; die "deb: apt-get install (log: $LOGS/deb-install.log)"
fi
check "deb: python3.11 pulled in as a dependency" sh -c "chroot '$R' dpkg -s python3.11 >/dev/null"
common_layout "$R" deb
check "deb: env file is a conffile" grep -qx /etc/stemedb/stemedb.env "$R/var/lib/dpkg/info/stemedb.conffiles"
check "deb: units enabled for the next boot (stemedb-api + 3 timers)" sh -c \
    "test -L '$R/etc/systemd/system/multi-user.target.wants/stemedb-api.service' && [ \$(ls '$R/etc/systemd/system/timers.target.wants/' | grep -c '^stemedb-') = 3 ]"
check "deb: postinst restarts stemedb-api after upgrades" grep -q '_dh_action=restart' "$R/var/lib/dpkg/info/stemedb.postinst"
smoke "$R" deb
if start_server "$R" "$PORT" "$LOGS/deb-server-nginx.log"; then
    check "deb: nginx site live: TLS on loopback -> stemedb, X-Request-Id passed through" nginx_check "$R"
    stop_server "$R" || true
else
    fail "deb: server for the nginx check"
fi

if chroot "$R" apt-get install -y "/tmp/pkgs/$(basename "$UPDEB")" > "$LOGS/deb-upgrade.log" 2>&1; then
    pass "deb: upgrade $VERSION -> $UPVERSION with apt-get install"
else
    tail -30 "$LOGS/deb-upgrade.log"; fail "deb: upgrade (log: $LOGS/deb-upgrade.log)"
fi
check "deb: installed version is $UPVERSION" sh -c "[ \"\$(chroot '$R' dpkg-query -W -f='\${Version}' stemedb)\" = '$UPVERSION' ]"
after_upgrade "$R" deb

chroot "$R" apt-get remove -y stemedb > "$LOGS/deb-remove.log" 2>&1 || fail "deb: apt-get remove"
check "deb: remove deletes the program (/opt/stemedb, /usr/bin/stemedb)" \
    sh -c "! test -e '$R/opt/stemedb/venv/bin/stemedb' && ! test -e '$R/usr/bin/stemedb'"
check "deb: remove keeps the database, backups and configuration" \
    test -f "$R/var/lib/stemedb/db/stemedb.db" -a -d "$R/var/backups/stemedb" -a -f "$R/etc/stemedb/stemedb.env"
chroot "$R" apt-get purge -y stemedb > "$LOGS/deb-purge.log" 2>&1 || fail "deb: apt-get purge"
check "deb: purge says what it deletes" grep -q 'stemedb: purge: deleting /var/lib/stemedb' "$LOGS/deb-purge.log"
check "deb: purge deleted /var/lib/stemedb, /var/backups/stemedb, stemedb.env" \
    sh -c "! test -e '$R/var/lib/stemedb' && ! test -e '$R/var/backups/stemedb' && ! test -e '$R/etc/stemedb/stemedb.env'"
check "deb: package fully gone from dpkg" sh -c "! chroot '$R' dpkg-query -W stemedb >/dev/null 2>&1"
unmount_all_under "$R"

# -------------------------------------------------------- deb + systemd
# The units for real: boot the chroot with systemd-nspawn (systemd as PID 1,
# sharing this machine's network), let the package's own maintainer scripts
# enable and start everything, and check from inside; the container powers
# itself off. Skipped (not failed) when this machine cannot boot a container.
say "deb under systemd: boot a $SUITE container with systemd-nspawn"
new_root nspawn-root; R=$WORK/nspawn-root
# /var/tmp: the booted system mounts a tmpfs over /tmp.
mkdir -p "$R/var/tmp/pkgs"
cp "$DEB" "$UPDEB" "$R/var/tmp/pkgs/"
if chroot "$R" apt-get install -y -qq --no-install-recommends systemd dbus "/var/tmp/pkgs/$(basename "$DEB")" \
    > "$LOGS/nspawn-install.log" 2>&1; then
    NPORT=$(free_port)
    sed -i "s/^STEMEDB_BIND_ADDR=.*/STEMEDB_BIND_ADDR=127.0.0.1:$NPORT/" "$R/etc/stemedb/stemedb.env"
    unmount_all_under "$R"
    cat > "$R/usr/local/sbin/stemedb-install-check" <<CHECK
#!/bin/sh
# Runs once inside the booted container, reports "PASS|FAIL text" lines.
exec > /root/stemedb-install-check.log 2>&1
$CHECK_HELPERS
for i in \$(seq 1 120); do [ "\$(prop stemedb-api.service ActiveState)" = active ] && break; sleep 0.5; done
[ "\$(prop stemedb-api.service SubState)" = running ] && [ -n "\$(prop stemedb-api.service StatusText)" ]
res \$? "stemedb-api.service enabled+started by the package, Type=notify READY=1 received (\$(prop stemedb-api.service StatusText))"
/opt/stemedb/venv/bin/python -c 'import urllib.request; urllib.request.urlopen("http://127.0.0.1:$NPORT/v1/health", timeout=10)'
res \$? "/v1/health answers under the full sandbox (PrivateUsers, SystemCallFilter, MemoryDenyWriteExecute, ...)"
pin=\$(journalctl -u stemedb-api.service --no-pager | grep -o 'cpu affinity: .*' | tail -1)
echo "\$pin" | grep -q '^cpu affinity: auto, ' && ! echo "\$pin" | grep -q 'NOT pinned'
res \$? "the server applied STEMEDB_CPU_AFFINITY under the unit's SystemCallFilter (\$pin)"
systemctl is-active -q stemedb-backup.timer stemedb-archive.timer stemedb-verify.timer
res \$? "the three timers are active"
for job in stemedb-archive stemedb-backup stemedb-verify; do
    systemctl start \$job.service
    [ "\$(prop \$job.service Result)" = success ]
    res \$? "\$job.service runs to success under its sandbox (exit \$(prop \$job.service ExecMainStatus))"
    journalctl -u \$job.service --no-pager | tail -3
done
echo "exposure: \$(systemd-analyze security stemedb-api.service 2>/dev/null | tail -1)"
old=\$(prop stemedb-api.service MainPID)
apt-get install -y -q "/var/tmp/pkgs/$(basename "$UPDEB")" > /root/upgrade.log 2>&1
res \$? "upgrade to $UPVERSION inside the running system"
for i in \$(seq 1 120); do [ "\$(prop stemedb-api.service SubState)" = running ] && break; sleep 0.5; done
new=\$(prop stemedb-api.service MainPID)
[ "\$(prop stemedb-api.service SubState)" = running ] && [ "\$new" != "\$old" ] && [ "\$new" != 0 ]
res \$? "the upgrade restarted stemedb-api (main PID \$old -> \$new)"
systemctl stop stemedb-api.service
[ "\$(prop stemedb-api.service Result)" = success ] && [ "\$(prop stemedb-api.service ExecMainStatus)" = 0 ]
res \$? "systemctl stop: clean exit 0 within TimeoutStopSec"
journalctl -u stemedb-api.service --no-pager | tail -25
echo DONE
systemctl poweroff
CHECK
    if boot_check "$R" stemedb-install-check "StemeDB install test (runs once, then powers off)" deb/systemd; then
        grep '^exposure:' "$LOGS/stemedb-install-check.log" | sed 's/^/  /'
    else
        skip "systemd-nspawn could not boot a container here (log: $LOGS/nspawn-boot.log)"
    fi
else
    tail -20 "$LOGS/nspawn-install.log"; fail "deb/systemd: install systemd + stemedb in the container"
    unmount_all_under "$R"
fi

# -------------------------------------------------------------------- rpm
say "rpm: install (with scriptlets), run, upgrade, erase in a second $SUITE chroot"
new_root rpm-root; R=$WORK/rpm-root
# The payload's interpreter is /usr/bin/python3.11 (RHEL 9 / Fedora:
# package python3.11); Debian's python3.11 provides the same path.
chroot "$R" apt-get install -y -qq --no-install-recommends python3.11 > "$LOGS/rpm-python.log" 2>&1 \
    || { tail -5 "$LOGS/rpm-python.log"; die "rpm: python3.11 in the chroot"; }
cp "$RPM" "$UPRPM" "$R/tmp/pkgs/"
rpm --root "$R" --initdb
# --nodeps: the chroot's rpm database knows nothing of Debian's python3.11
# and shadow tools. Scriptlets run (chrooted by rpm) with no systemd.
if rpm --root "$R" -i --nodeps "$R/tmp/pkgs/$(basename "$RPM")" > "$LOGS/rpm-install.log" 2>&1; then
    pass "rpm: rpm -i with scriptlets (%pre account, %post without systemd)"
else
    cat "$LOGS/rpm-install.log"; die "rpm: rpm -i (log: $LOGS/rpm-install.log)"
fi
common_layout "$R" rpm
check "rpm: stemedb.env is %config(noreplace)" sh -c "rpm --root '$R' -qc stemedb | grep -qx /etc/stemedb/stemedb.env"
smoke "$R" rpm
if rpm --root "$R" -U --nodeps "$R/tmp/pkgs/$(basename "$UPRPM")" > "$LOGS/rpm-upgrade.log" 2>&1; then
    pass "rpm: upgrade $VERSION -> $UPVERSION with rpm -U"
else
    cat "$LOGS/rpm-upgrade.log"; fail "rpm: rpm -U (log: $LOGS/rpm-upgrade.log)"
fi
after_upgrade "$R" rpm
rpm --root "$R" -e --nodeps stemedb > "$LOGS/rpm-erase.log" 2>&1 || fail "rpm: rpm -e"
check "rpm: erase deletes the program, keeps the database and backups" \
    sh -c "! test -e '$R/opt/stemedb/venv' && test -f '$R/var/lib/stemedb/db/stemedb.db' && ls '$R/var/backups/stemedb' | grep -q ."
check "rpm: erase keeps the edited configuration as stemedb.env.rpmsave" \
    grep -q "^STEMEDB_BIND_ADDR=127.0.0.1:$PORT\$" "$R/etc/stemedb/stemedb.env.rpmsave"
unmount_all_under "$R"

say "packages"
echo "  $(basename "$DEB"): $((DEB_SIZE / 1024)) KiB (installed $((DEB_INSTALLED_KB / 1024)) MiB)"
echo "  $(basename "$RPM"): $((RPM_SIZE / 1024)) KiB"
echo "  stemedb-api.service exposure: $API_SCORE"
