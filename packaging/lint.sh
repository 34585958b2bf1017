#!/usr/bin/env bash
# Lint the built packages: lintian on the .deb, rpmlint on the .rpm, each
# with the project's overrides (packaging/deb/stemedb.lintian-overrides is
# inside the .deb; packaging/rpm/stemedb.rpmlintrc + rpmlint.toml here).
# Exits non-zero on any lintian error/warning/info or any rpmlint error or
# warning that no justified override covers.
#   bash packaging/lint.sh [VERSION]      (default: pyproject version)
set -euo pipefail
HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
REPO=$(cd "$HERE/.." && pwd)
DIST=${STEMEDB_PKG_DIST_DIR:-$REPO/dist}
VERSION=${1:-${STEMEDB_PKG_VERSION:-$(/usr/bin/python3 -c \
    'import sys, tomllib; print(tomllib.load(open(sys.argv[1], "rb"))["project"]["version"])' \
    "$REPO/pyproject.toml")}}
DEB=$DIST/stemedb_${VERSION}_amd64.deb
RPM=$DIST/stemedb-${VERSION}-1.x86_64.rpm

missing=()
for p in lintian rpmlint; do
    dpkg-query -W -f='${db:Status-Status}' "$p" 2>/dev/null | grep -qx installed || missing+=("$p")
done
if ((${#missing[@]})); then
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

rc=0
if [ -f "$DEB" ]; then
    echo "== lintian $(lintian --version | awk '{print $2}') $DEB"
    # --fail-on error,warning,info: even an informational tag fails the run.
    lrc=0
    out=$(lintian --info --pedantic --fail-on error,warning,info "$DEB" 2>&1) || lrc=$?
    out=$(printf '%s\n' "$out" | grep -v 'running with root privileges' || true)
    if [ -n "$out" ] || [ "$lrc" != 0 ]; then
        printf '%s\n' "$out"; echo "lintian: FAILED (exit $lrc)"; rc=1
    else
        echo "lintian: clean (0 tags beyond the justified overrides)"
    fi
else
    echo "lint.sh: $DEB not found" >&2; rc=1
fi
if [ -f "$RPM" ]; then
    echo "== $(rpmlint --version 2>/dev/null | head -1) $RPM"
    out=$(rpmlint -c "$HERE/rpm/rpmlint.toml" -r "$HERE/rpm/stemedb.rpmlintrc" "$RPM" 2>&1) || rc=1
    summary=$(echo "$out" | tail -1)
    echo "$summary"
    if ! echo "$summary" | grep -q ' 0 errors, 0 warnings'; then echo "$out"; rc=1; fi
else
    echo "lint.sh: $RPM not found" >&2; rc=1
fi
exit $rc
