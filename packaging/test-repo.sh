#!/usr/bin/env bash
# Repository test (make repo-test): the signed APT and RPM repositories that
# `make repo` (packaging/repo.sh) publishes, used the way a user does.
#
#  1. a throw-away OpenPGP key (never the project's; deleted afterwards) and
#     a second "attacker" key; the packages of packaging/test-install.sh
#     (dist/) plus a <next> version (0.1.0 -> 0.1.1) built from the same
#     payload; `make repo-publish` with the first version; the published
#     signatures checked with gpgv and rpmkeys
#  2. the tree served over HTTP on 127.0.0.1 (python3 -m http.server)
#  3. apt, in a copy of the cached `debootstrap --variant=minbase bookworm`
#     root: key and deb822 .sources file fetched from the server (Signed-By),
#     apt refuses a Release file changed after signing, a Release signed by
#     another key and a changed .deb; `apt-get update && apt-get install
#     stemedb`; the server starts as the unit would and answers; a signed
#     write; the env file edited
#  4. <next> published into the same repository; `apt-get update && apt-get
#     upgrade` inside the root booted with systemd-nspawn (real systemd: the
#     service started at boot, restarted by the upgrade with a new main PID,
#     data and the edited env file kept); when no container can be booted
#     here the upgrade runs in the chroot and only the restart is SKIPped
#  5. dnf (Debian's), against the RPM repository with gpgcheck=1 and
#     repo_gpgcheck=1, in a private --installroot: the key imported from the
#     .repo file's gpgkey=, metadata signature verified, `dnf repoquery`,
#     `dnf download stemedb` and dnf's own package signature check (the code
#     path of `dnf install`'s gpgcheck); refused: a changed repomd.xml, a
#     changed package, an unsigned package in correctly signed metadata.
#     dnf cannot install here (no Fedora/RHEL dependency repositories): the
#     rpm install itself stays tested by test-install.sh with `rpm --root`.
#
# Needs root and, first, a run of packaging/test-install.sh (its packages in
# dist/, its payload in build/pkg/root and its cached root in
# packaging/.cache). Prints a PASS/FAIL list, exits non-zero on any failure.
#
# Environment:
#   STEMEDB_TEST_KEEP=1        keep the work directory (build/repo-test/run.*)
set -euo pipefail
unset STEMEDB_PKG_VERSION STEMEDB_PKG_FORMATS STEMEDB_PKG_PAYLOAD_FROM STEMEDB_REPO_KEY_FILE \
    STEMEDB_REPO_KEY_ID STEMEDB_REPO_EXTRA_KEYS

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
TEST_NAME="repository test"
GNUPG_HOMES=()
summary_cleanup() { # gpg agents, the throw-away private keys, stemedb debs in the shared apt cache
    local home
    for home in "${GNUPG_HOMES[@]}"; do gpgconf --homedir "$home" --kill all 2>/dev/null; done
    rm -f "$APT_CACHE"/stemedb_*.deb
    # The throw-away private keys never outlive the run.
    [ -z "$WORK" ] || rm -rf "$WORK/gnupg" "$WORK/gnupg-attacker"
}
# shellcheck source=packaging/lib.sh
. "$HERE/lib.sh"  # REPO, the cached root, PASS/FAIL + summary, mounts, start_server ...
TEST_BASE=$REPO/build/repo-test

ensure_packages reprepro createrepo-c rpm rpmlint gnupg dnf dnf-plugins-core python3-dnf systemd-container curl python3

VERSION=$(project_version)
# The next release: the last number of the version plus one (0.1.0 -> 0.1.1).
NEXT=$("$HOSTPY" -c 'import re, sys; v = sys.argv[1]; m = re.match(r"(.*?)(\d+)$", v); print(m[1] + str(int(m[2]) + 1))' "$VERSION")
DEB=$REPO/dist/stemedb_${VERSION}_amd64.deb
RPM=$REPO/dist/stemedb-${VERSION}-1.x86_64.rpm
for f in "$DEB" "$RPM" "$REPO/build/pkg/root/opt/stemedb/venv/bin/stemedb" "$ROOTFS_CACHE/usr/bin/apt-get"; do
    [ -e "$f" ] || die "missing $f: run packaging/test-install.sh first (make install-test)"
done
MIRROR=$(awk '$1 == "deb" {print $2; exit}' "$ROOTFS_CACHE/etc/apt/sources.list")
[ -n "$MIRROR" ] || die "no mirror in $ROOTFS_CACHE/etc/apt/sources.list"

new_work_dir
WWW=$WORK/www
OUT=$WWW/stemedb
mkdir -p "$LOGS" "$WWW"
# apt must download stemedb from the repository, never find it cached.
rm -f "$APT_CACHE"/stemedb_*.deb

set +e

# ------------------------------------------------------------------ keys
say "throw-away signing keys, the $NEXT packages"
genkey() { # genkey HOME "user id"
    install -d -m 0700 "$1"
    GNUPG_HOMES+=("$1")
    GNUPGHOME=$1 gpg --batch --passphrase '' --quick-gen-key "$2" rsa3072 sign 1d > "$LOGS/genkey-$(basename "$1").log" 2>&1
}
check "throw-away repository key generated (rsa3072, expires in 1 day)" \
    genkey "$WORK/gnupg" "StemeDB repository test key (throw-away) <repo-test@stemedb.invalid>" \
    || die "gpg key generation"
check "a second, attacker's key generated" genkey "$WORK/gnupg-attacker" "Attacker <evil@example.invalid>"
FPR=$(GNUPGHOME=$WORK/gnupg gpg --batch --with-colons --list-secret-keys 2>/dev/null | awk -F: '$1 == "fpr" {print $10; exit}')

NEXTDIST=$WORK/dist-next
t0=$(date +%s)
if STEMEDB_PKG_VERSION=$NEXT STEMEDB_PKG_BUILD_DIR=$REPO/build/pkg-repo-next STEMEDB_PKG_DIST_DIR=$NEXTDIST \
    STEMEDB_PKG_PAYLOAD_FROM=$REPO/build/pkg/root bash "$HERE/build.sh" > "$LOGS/build-next.log" 2>&1; then
    pass "build $NEXT deb+rpm from the payload of $VERSION ($(($(date +%s) - t0)) s)"
else
    tail -20 "$LOGS/build-next.log"; die "build $NEXT (log: $LOGS/build-next.log)"
fi
NEXTDEB=$NEXTDIST/stemedb_${NEXT}_amd64.deb
NEXTRPM=$NEXTDIST/stemedb-${NEXT}-1.x86_64.rpm

# --------------------------------------------------------------- publish
HTTP_PORT=$(free_port)
BASEURL=http://127.0.0.1:$HTTP_PORT
publish() { # publish LOGNAME PACKAGE...: `make repo-publish` into $OUT
    local log=$LOGS/$1.log; shift
    make -C "$REPO" --no-print-directory repo-publish STEMEDB_REPO_PACKAGES="$*" \
        STEMEDB_REPO_GNUPGHOME="$WORK/gnupg" STEMEDB_REPO_DIR="$OUT" STEMEDB_REPO_STATE="$WORK/repo-state" \
        STEMEDB_REPO_URL="$BASEURL/stemedb" > "$log" 2>&1 || { tail -20 "$log"; return 1; }
}
say "make repo-publish $VERSION"
check "make repo-publish: $(basename "$DEB") + $(basename "$RPM") into a new repository" publish publish-1 "$DEB" "$RPM" \
    || die "repo.sh"
DISTS=$OUT/apt/dists/bookworm
check "the public key, stemedb.sources and stemedb.repo are in the output" \
    test -s "$OUT/stemedb-archive-keyring.gpg" -a -s "$OUT/stemedb-archive-keyring.asc" \
    -a -s "$OUT/stemedb.sources" -a -s "$OUT/stemedb.repo"
check "apt: InRelease and Release.gpg verify (gpgv, published key)" sh -c \
    "gpgv --keyring '$OUT/stemedb-archive-keyring.gpg' '$DISTS/InRelease' 2>'$LOGS/gpgv.log' && gpgv --keyring '$OUT/stemedb-archive-keyring.gpg' '$DISTS/Release.gpg' '$DISTS/Release' 2>>'$LOGS/gpgv.log'"
check "apt: the pool holds stemedb_${VERSION}_amd64.deb, byte for byte the built one" \
    cmp -s "$DEB" "$OUT/apt/pool/main/s/stemedb/stemedb_${VERSION}_amd64.deb"
rpmkeys --dbpath "$WORK/rpmdb" --import "$OUT/stemedb-archive-keyring.asc"
check "rpm: the published rpm is signed by the key (rpmkeys --checksig: signatures OK)" \
    sh -c "rpmkeys --dbpath '$WORK/rpmdb' --checksig '$OUT/rpm/packages/$(basename "$RPM")' | grep -q 'digests signatures OK'"
# rpmlint's signature check asks the rpm database named by ~/.rpmmacros (a
# private one holding the repository key); the build's "no-signature" filter
# is dropped: the published package must carry a known signature.
mkdir -p "$WORK/rpmlint-home"
echo "%_dbpath $WORK/rpmdb" > "$WORK/rpmlint-home/.rpmmacros"
grep -v '^addFilter("no-signature")' "$HERE/rpm/stemedb.rpmlintrc" > "$WORK/rpmlint-home/signed.rpmlintrc"
check "rpmlint on the published (signed) rpm: 0 errors, 0 warnings, signature known" sh -c \
    "HOME='$WORK/rpmlint-home' rpmlint -c '$HERE/rpm/rpmlint.toml' -r '$WORK/rpmlint-home/signed.rpmlintrc' '$OUT/rpm/packages/$(basename "$RPM")' > '$LOGS/rpmlint.log' 2>&1; tail -1 '$LOGS/rpmlint.log' | grep -q ' 0 errors, 0 warnings'" \
    || tail -5 "$LOGS/rpmlint.log"
check "rpm: repomd.xml.asc verifies (gpgv)" \
    gpgv --keyring "$OUT/stemedb-archive-keyring.gpg" "$OUT/rpm/repodata/repomd.xml.asc" "$OUT/rpm/repodata/repomd.xml" 2>/dev/null

# Tampered copies of the tree, each served next to the real one.
tamper_copy() { cp -a "$OUT" "$WWW/$1"; }
# 1. Release changed after signing (a line added to the signed text).
tamper_copy bad-release
sed -i 's/^Label: StemeDB$/Label: StemeDB (changed)/' "$WWW/bad-release/apt/dists/bookworm/InRelease" \
    "$WWW/bad-release/apt/dists/bookworm/Release"
# 2. Release re-signed by another key.
tamper_copy wrong-key
(
    export GNUPGHOME=$WORK/gnupg-attacker
    d=$WWW/wrong-key/apt/dists/bookworm
    rm -f "$d/InRelease" "$d/Release.gpg"
    gpg --batch --quiet --clearsign --output "$d/InRelease" "$d/Release"
    gpg --batch --quiet --armor --detach-sign --output "$d/Release.gpg" "$d/Release"
)
# 3./4. A package changed in place (same size: only the checksum tells).
flip_byte() { "$HOSTPY" - "$1" <<'EOF'
import os, sys
path = sys.argv[1]
data = bytearray(open(path, "rb").read())
data[len(data) // 2] ^= 0xFF
os.unlink(path)  # never write through to a hard-linked original
open(path, "wb").write(data)
EOF
}
tamper_copy bad-deb
flip_byte "$WWW/bad-deb/apt/pool/main/s/stemedb/stemedb_${VERSION}_amd64.deb"
tamper_copy bad-rpm
flip_byte "$WWW/bad-rpm/rpm/packages/$(basename "$RPM")"
# 5. repomd.xml changed after signing.
tamper_copy bad-repomd
sed -i 's#<revision>\([0-9]*\)</revision>#<revision>1\1</revision>#' "$WWW/bad-repomd/rpm/repodata/repomd.xml"
# 6. An unsigned package in correctly signed metadata (a release made
#    without rpmsign): only the package signature check can refuse it.
tamper_copy unsigned-rpm
cp "$RPM" "$WWW/unsigned-rpm/rpm/packages/$(basename "$RPM")"
createrepo_c --quiet --update --no-database "$WWW/unsigned-rpm/rpm"
rm -f "$WWW/unsigned-rpm/rpm/repodata/repomd.xml.asc"
GNUPGHOME=$WORK/gnupg gpg --batch --armor --detach-sign --output "$WWW/unsigned-rpm/rpm/repodata/repomd.xml.asc" \
    "$WWW/unsigned-rpm/rpm/repodata/repomd.xml"

say "HTTP server on 127.0.0.1:$HTTP_PORT"
"$HOSTPY" -m http.server --bind 127.0.0.1 --directory "$WWW" "$HTTP_PORT" > "$LOGS/http.log" 2>&1 &
HTTP_PID=$!
PIDS+=("$HTTP_PID")
for _ in $(seq 1 100); do
    curl -fsS -m 2 -o /dev/null "$BASEURL/stemedb/stemedb.sources" 2>/dev/null && break
    kill -0 "$HTTP_PID" 2>/dev/null || break
    sleep 0.1
done
check "python3 -m http.server serves the repository" curl -fsS -m 5 -o /dev/null "$BASEURL/stemedb/stemedb.sources" \
    || die "HTTP server (log: $LOGS/http.log)"

# The signed write, by the installed venv's own code (as test-install.sh).
ASSERT_PY='import json, sys, urllib.request
from stemedb.crypto import generate_signing_key
from stemedb.signing import make_assertion
record = make_assertion(generate_signing_key(), "packaging/repo-test", "installs_from_repository", True, 0.9)
request = urllib.request.Request(f"http://127.0.0.1:{sys.argv[1]}/v1/assert", data=json.dumps(record).encode(),
    headers={"Content-Type": "application/json"}, method="POST")
with urllib.request.urlopen(request, timeout=30) as response:
    print(json.load(response)["hash"])'
read_back() { curl -fsS -m 10 "http://127.0.0.1:$1/v1/assertions/$2" | grep -q '"packaging/repo-test"'; }

# ------------------------------------------------------------------- apt
say "apt: add the repository, refusals, install (bookworm chroot)"
new_root apt-root; R=$WORK/apt-root
# systemd + dbus: the root is booted as a container for the upgrade below.
if chroot "$R" apt-get install -y -qq --no-install-recommends systemd dbus \
    > "$LOGS/apt-base.log" 2>&1; then
    pass "chroot: systemd + dbus installed from the Debian mirror"
else
    tail -20 "$LOGS/apt-base.log"; die "chroot: base packages (log: $LOGS/apt-base.log)"
fi

# What a user types (README / packaging.md), curl run on the host: the
# minimal root has no curl.
install -d -m 0755 "$R/etc/apt/keyrings"
curl -fsS -m 10 -o "$R/etc/apt/keyrings/stemedb-archive-keyring.gpg" "$BASEURL/stemedb/stemedb-archive-keyring.gpg"
install -d -m 0700 "$WORK/gnupg-show"
check "key fingerprint shown by gpg --show-keys is the signing key's" \
    sh -c "GNUPGHOME='$WORK/gnupg-show' gpg --batch --with-colons --show-keys '$R/etc/apt/keyrings/stemedb-archive-keyring.gpg' 2>/dev/null | grep -q '^fpr:*$FPR:'"
SOURCES=$R/etc/apt/sources.list.d/stemedb.sources
sources_for() { # sources_for TREE: the served stemedb.sources, pointed at a (tampered) copy
    curl -fsS -m 10 "$BASEURL/stemedb/stemedb.sources" | sed "s#^URIs: $BASEURL/stemedb/#URIs: $BASEURL/$1/#" > "$SOURCES"
}
apt_refuses_update() { # apt_refuses_update TREE PATTERN: apt-get update fails, says PATTERN, stemedb unknown
    local log=$LOGS/apt-update-$1.log
    sources_for "$1"
    if chroot "$R" apt-get update > "$log" 2>&1; then echo "    apt-get update succeeded"; return 1; fi
    grep -qE "$2" "$log" || { tail -5 "$log"; return 1; }
    ! chroot "$R" apt-cache show stemedb > /dev/null 2>&1
}
check "apt refuses a Release file changed after signing (BADSIG, stemedb not installable)" \
    apt_refuses_update bad-release 'BADSIG|signatures were invalid'
check "apt refuses a Release signed by another key (NO_PUBKEY, stemedb not installable)" \
    apt_refuses_update wrong-key 'NO_PUBKEY'
apt_refuses_deb() {
    local log=$LOGS/apt-install-bad-deb.log
    sources_for bad-deb
    chroot "$R" apt-get update > "$LOGS/apt-update-bad-deb.log" 2>&1 || { tail -5 "$LOGS/apt-update-bad-deb.log"; return 1; }
    if chroot "$R" apt-get install -y --no-install-recommends stemedb > "$log" 2>&1; then
        echo "    apt-get install succeeded"; return 1
    fi
    grep -qE 'Hash Sum mismatch|Hashes of expected file' "$log" || { tail -5 "$log"; return 1; }
    ! chroot "$R" dpkg-query -W stemedb > /dev/null 2>&1
}
check "apt refuses a .deb changed in the pool (Hash Sum mismatch, nothing installed)" apt_refuses_deb

curl -fsS -m 10 -o "$SOURCES" "$BASEURL/stemedb/stemedb.sources"
check "apt-get update with the served stemedb.sources (deb822, Signed-By)" \
    sh -c "chroot '$R' apt-get update > '$LOGS/apt-update.log' 2>&1 && ! grep -q '^[WE]:' '$LOGS/apt-update.log'" \
    || tail -5 "$LOGS/apt-update.log"
if chroot "$R" apt-get install -y --no-install-recommends stemedb > "$LOGS/apt-install.log" 2>&1; then
    pass "apt-get install stemedb: $(chroot "$R" dpkg-query -W -f='${Version}' stemedb) from $BASEURL/stemedb/apt"
else
    tail -20 "$LOGS/apt-install.log"; die "apt-get install stemedb (log: $LOGS/apt-install.log)"
fi
check "the package came from the repository (apt-cache policy)" \
    sh -c "chroot '$R' apt-cache policy stemedb | grep -qF '$BASEURL/stemedb/apt bookworm/main'"

PORT=$(free_port)
sed -i "s/^STEMEDB_BIND_ADDR=.*/STEMEDB_BIND_ADDR=127.0.0.1:$PORT/" "$R/etc/stemedb/stemedb.env"
echo "# local edit by the repository test" >> "$R/etc/stemedb/stemedb.env"
COUNT="" HASH=""
if check "stemedb-api starts (user stemedb, the env file, read-only /opt) and /v1/health answers" \
    start_server "$R" "$PORT" "$LOGS/server-1.log"; then
    HASH=$(chroot "$R" /opt/stemedb/venv/bin/python -c "$ASSERT_PY" "$PORT" 2> "$LOGS/assert.log")
    check "a signed assertion written: $HASH" test -n "$HASH"
    COUNT=$(health_count "$PORT")
    check "SIGTERM stops it cleanly" stop_server "$R"
fi

# ------------------------------------------------------------- upgrade
say "publish $NEXT into the same repository, apt-get upgrade"
check "make repo-publish: $(basename "$NEXTDEB") + $(basename "$NEXTRPM") into the same repository" \
    publish publish-2 "$NEXTDEB" "$NEXTRPM" || die "repo.sh ($NEXT)"
check "apt: the suite now offers $NEXT, InRelease re-signed" sh -c \
    "grep -qx 'Version: $NEXT' '$DISTS/main/binary-amd64/Packages' && gpgv --keyring '$OUT/stemedb-archive-keyring.gpg' '$DISTS/InRelease' 2>/dev/null"
check "rpm: both versions in the repository, the new one signed" sh -c \
    "rpmkeys --dbpath '$WORK/rpmdb' --checksig '$OUT/rpm/packages/$(basename "$NEXTRPM")' | grep -q 'digests signatures OK' && test -f '$OUT/rpm/packages/$(basename "$RPM")'"

after_upgrade() { # the chroot checks after an upgrade, with the server started as the unit would
    check "upgrade: installed version is $NEXT" \
        sh -c "[ \"\$(chroot '$R' dpkg-query -W -f='\${Version}' stemedb)\" = '$NEXT' ]"
    check "upgrade: the edited env file was kept (port + local edit)" sh -c \
        "grep -qx 'STEMEDB_BIND_ADDR=127.0.0.1:$PORT' '$R/etc/stemedb/stemedb.env' && grep -qx '# local edit by the repository test' '$R/etc/stemedb/stemedb.env'"
}

NSPAWN_OK=0
unmount_all_under "$R"
NPORT=$PORT
cat > "$R/usr/local/sbin/stemedb-repo-check" <<CHECK
#!/bin/sh
# Runs once inside the booted container, reports "PASS|FAIL text" lines.
exec > /root/stemedb-repo-check.log 2>&1
$CHECK_HELPERS
health() { /opt/stemedb/venv/bin/python -c 'import json, sys, urllib.request; print(json.load(urllib.request.urlopen("http://127.0.0.1:$NPORT/v1/health", timeout=10))["assertion_count"])'; }
for i in \$(seq 1 120); do [ "\$(prop stemedb-api.service SubState)" = running ] && break; sleep 0.5; done
[ "\$(prop stemedb-api.service SubState)" = running ]
res \$? "stemedb-api.service (installed from the repository) started at boot"
n=\$(health); [ "\$n" = "$COUNT" ]
res \$? "/v1/health answers under systemd: assertion_count \$n"
old=\$(prop stemedb-api.service MainPID)
apt-get update > /root/upgrade.log 2>&1 && apt-get upgrade -y >> /root/upgrade.log 2>&1
res \$? "apt-get update && apt-get upgrade -y (inside the running system)"
[ "\$(dpkg-query -W -f='\${Version}' stemedb)" = "$NEXT" ]
res \$? "stemedb upgraded to \$(dpkg-query -W -f='\${Version}' stemedb) from the repository"
for i in \$(seq 1 120); do [ "\$(prop stemedb-api.service SubState)" = running ] && break; sleep 0.5; done
new=\$(prop stemedb-api.service MainPID)
[ "\$(prop stemedb-api.service SubState)" = running ] && [ "\$new" != "\$old" ] && [ "\$new" != 0 ]
res \$? "the upgrade restarted stemedb-api (main PID \$old -> \$new)"
for i in \$(seq 1 60); do health > /dev/null 2>&1 && break; sleep 0.5; done
n=\$(health); [ "\$n" = "$COUNT" ]
res \$? "data kept: assertion_count \$n after the upgrade"
/opt/stemedb/venv/bin/python -c 'import urllib.request; assert b"packaging/repo-test" in urllib.request.urlopen("http://127.0.0.1:$NPORT/v1/assertions/$HASH", timeout=10).read()'
res \$? "data kept: the assertion written before the upgrade reads back"
systemctl stop stemedb-api.service
[ "\$(prop stemedb-api.service Result)" = success ]
res \$? "systemctl stop: clean"
echo DONE
systemctl poweroff
CHECK
if [ -n "$HASH" ]; then
    if boot_check "$R" stemedb-repo-check "StemeDB repository test (runs once, then powers off)" apt/systemd; then
        NSPAWN_OK=1
        cp "$R/root/upgrade.log" "$LOGS/" 2>/dev/null
        after_upgrade
    else
        skip "systemd-nspawn could not boot a container here: the upgrade runs in the chroot, its restart is not observed (log: $LOGS/nspawn-boot.log)"
    fi
fi
if [ "$NSPAWN_OK" = 0 ]; then
    mount_into "$R"
    if chroot "$R" sh -c 'apt-get update && apt-get upgrade -y' > "$LOGS/apt-upgrade.log" 2>&1; then
        pass "apt-get update && apt-get upgrade -y (chroot)"
    else
        tail -20 "$LOGS/apt-upgrade.log"; fail "apt-get upgrade (log: $LOGS/apt-upgrade.log)"
    fi
    after_upgrade
    if check "upgrade: the server starts on $NEXT" start_server "$R" "$PORT" "$LOGS/server-2.log"; then
        n=$(health_count "$PORT")
        check "upgrade: data kept: assertion_count $n (was $COUNT)" test "$n" = "$COUNT"
        check "upgrade: data kept: the assertion reads back" read_back "$PORT" "$HASH"
        stop_server "$R" || fail "upgrade: SIGTERM stop"
    fi
    unmount_all_under "$R"
fi

# ------------------------------------------------------------------- dnf
say "dnf $(dnf --version 2>/dev/null | head -1): the RPM repository, gpgcheck=1 repo_gpgcheck=1"
dnf_setup() { # dnf_setup TREE: private config, repo file (from the server), cache and installroot
    local d=$WORK/dnf-$1
    mkdir -p "$d/repos.d" "$d/cache" "$d/root" "$d/dl"
    cat > "$d/dnf.conf" <<EOF
[main]
reposdir=$d/repos.d
cachedir=$d/cache
logdir=$d
persistdir=$d/persist
gpgcheck=1
repo_gpgcheck=1
install_weak_deps=0
EOF
    curl -fsS -m 10 "$BASEURL/stemedb/stemedb.repo" | sed "s#^baseurl=$BASEURL/stemedb/#baseurl=$BASEURL/$1/#" \
        > "$d/repos.d/stemedb.repo"
}
dnfc() { # dnfc TREE args...
    local d=$WORK/dnf-$1; shift
    dnf -c "$d/dnf.conf" --installroot "$d/root" --releasever 9 --setopt "reposdir=$d/repos.d" \
        --setopt "cachedir=$d/cache" --disablerepo '*' --enablerepo stemedb -y "$@"
}
dnf_setup stemedb
check "stemedb.repo: gpgcheck=1 and repo_gpgcheck=1" \
    sh -c "grep -qx gpgcheck=1 '$WORK/dnf-stemedb/repos.d/stemedb.repo' && grep -qx repo_gpgcheck=1 '$WORK/dnf-stemedb/repos.d/stemedb.repo'"
if dnfc stemedb makecache > "$LOGS/dnf-makecache.log" 2>&1; then
    pass "dnf makecache: key imported from gpgkey=, repomd.xml signature verified"
else
    tail -10 "$LOGS/dnf-makecache.log"; fail "dnf makecache (log: $LOGS/dnf-makecache.log)"
fi
check "dnf imported the repository key $FPR (from the .repo file's gpgkey=)" \
    sh -c "grep -qi 'Importing GPG key' '$LOGS/dnf-makecache.log' && grep -q '$(echo "$FPR" | sed 's/\(....\)/\1 /g; s/ $//')' '$LOGS/dnf-makecache.log'"
dnfc stemedb repoquery stemedb > "$LOGS/dnf-repoquery.log" 2>&1
check "dnf repoquery stemedb: stemedb-0:$VERSION-1 and stemedb-0:$NEXT-1" \
    sh -c "grep -qx 'stemedb-0:$VERSION-1.x86_64' '$LOGS/dnf-repoquery.log' && grep -qx 'stemedb-0:$NEXT-1.x86_64' '$LOGS/dnf-repoquery.log'" \
    || cat "$LOGS/dnf-repoquery.log"
dnfc stemedb download --destdir "$WORK/dnf-stemedb/dl" stemedb > "$LOGS/dnf-download.log" 2>&1
check "dnf download stemedb: the newest, $(basename "$NEXTRPM"), signed by the key" \
    sh -c "rpmkeys --dbpath '$WORK/rpmdb' --checksig '$WORK/dnf-stemedb/dl/$(basename "$NEXTRPM")' | grep -q 'digests signatures OK'" \
    || tail -5 "$LOGS/dnf-download.log"
# dnf's package signature check, as `dnf install` runs it before the
# transaction (gpgcheck=1): the key from gpgkey= into the root's rpmdb, then
# dnf.Base.package_signature_check on the downloaded package.
dnf_sigcheck() { # dnf_sigcheck TREE VERSION -> exit 0 when dnf accepts the package signature
    local d=$WORK/dnf-$1
    "$HOSTPY" -I - "$d" "$2" > "$LOGS/dnf-sigcheck-$1.log" 2>&1 <<'EOF'
import sys
import dnf
d, version = sys.argv[1], sys.argv[2]
base = dnf.Base()
base.conf.read(f"{d}/dnf.conf")
base.conf.installroot = f"{d}/root"
base.conf.reposdir = [f"{d}/repos.d"]
base.conf.cachedir = f"{d}/cache"
base.conf.substitutions["releasever"] = "9"
base.conf.assumeyes = True
base.read_all_repos()
base.fill_sack(load_system_repo=False)
pkg = base.sack.query().available().filter(name="stemedb", version=version)[0]
base.repos["stemedb"].pkgdir = f"{d}/dl"
base.download_packages([pkg])
code, message = base.package_signature_check(pkg)
if code == 1:  # key not in the rpmdb yet: import it from gpgkey= (dnf install does the same)
    base.package_import_key(pkg, askcb=lambda *a: True)
    code, message = base.package_signature_check(pkg)
print(f"package_signature_check: {code} {message!r}")
sys.exit(0 if code == 0 else 1)
EOF
}
check "dnf's gpgcheck (package_signature_check) accepts the signed $NEXT" dnf_sigcheck stemedb "$NEXT" \
    || tail -5 "$LOGS/dnf-sigcheck-stemedb.log"

dnf_setup bad-repomd
check "dnf refuses a repomd.xml changed after signing (repo_gpgcheck)" sh -c \
    "! dnf -c '$WORK/dnf-bad-repomd/dnf.conf' --installroot '$WORK/dnf-bad-repomd/root' --releasever 9 --disablerepo '*' --enablerepo stemedb -y makecache > '$LOGS/dnf-bad-repomd.log' 2>&1 && grep -qiE 'GPG signature verification error|Bad GPG signature|BADSIG' '$LOGS/dnf-bad-repomd.log'" \
    || tail -5 "$LOGS/dnf-bad-repomd.log"
dnf_setup bad-rpm
dnfc bad-rpm download --destdir "$WORK/dnf-bad-rpm/dl" "stemedb-$VERSION" > "$LOGS/dnf-bad-rpm.log" 2>&1
rc=$?
check "dnf download refuses a package changed in the repository (checksum), nothing kept" sh -c \
    "[ $rc != 0 ] && grep -qiE 'checksum|does not match' '$LOGS/dnf-bad-rpm.log' && ! ls '$WORK/dnf-bad-rpm/dl' | grep -q rpm" \
    || tail -5 "$LOGS/dnf-bad-rpm.log"
dnf_setup unsigned-rpm
if dnf_sigcheck unsigned-rpm "$VERSION"; then
    fail "dnf's gpgcheck refuses an unsigned package in correctly signed metadata (it accepted it)"
else
    grep -q 'package_signature_check: [12] ' "$LOGS/dnf-sigcheck-unsigned-rpm.log" \
        && pass "dnf's gpgcheck refuses an unsigned package in correctly signed metadata ($(grep -o 'package_signature_check: .*' "$LOGS/dnf-sigcheck-unsigned-rpm.log" | cut -c1-90))" \
        || { tail -5 "$LOGS/dnf-sigcheck-unsigned-rpm.log"; fail "dnf's gpgcheck on an unsigned package: no verdict"; }
fi

say "repository"
echo "  $OUT: $(du -sh "$OUT" | cut -f1), signing key $FPR (throw-away)"
