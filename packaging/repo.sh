#!/usr/bin/env bash
# Publish built packages into the signed StemeDB package repositories
# (make repo). One static tree, served as is by any web server:
#
#   <out>/apt/        APT repository made by reprepro: dists/<codename>/
#                     {InRelease,Release,Release.gpg} signed with the key,
#                     pool/main/s/stemedb/*.deb
#   <out>/rpm/        RPM repository: packages/*.rpm signed with rpmsign,
#                     repodata/ by createrepo_c, repodata/repomd.xml.asc
#                     (detached armored signature, for repo_gpgcheck=1)
#   <out>/stemedb-archive-keyring.gpg  the public key (binary; apt Signed-By)
#   <out>/stemedb-archive-keyring.asc  the same key armored (dnf gpgkey=, rpm --import)
#   <out>/stemedb.sources              deb822 file for /etc/apt/sources.list.d/
#   <out>/stemedb.repo                 repository file for /etc/yum.repos.d/
#
#   bash packaging/repo.sh [PACKAGE.deb|PACKAGE.rpm ...]
#
# Without arguments it publishes dist/stemedb_<v>_amd64.deb and
# dist/stemedb-<v>-1.x86_64.rpm of the pyproject version. Publishing again
# with a newer version updates the same tree (apt: the suite then holds the
# newer version; rpm: both stay, dnf picks the newest). Re-publishing the
# same version with different content is refused: bump the version.
#
# Environment (the signing key is an input; nothing here creates one):
#   STEMEDB_REPO_GNUPGHOME  GnuPG home holding the secret signing key, or
#   STEMEDB_REPO_KEY_FILE   a secret key file (armored or binary), imported
#                           into a private temporary GnuPG home
#   STEMEDB_REPO_KEY_ID     fingerprint of the signing key (default: the only
#                           secret key found; an error when there are several)
#   STEMEDB_REPO_EXTRA_KEYS fingerprints of further public keys to publish in
#                           the keyring files (key rotation: the next key)
#   STEMEDB_REPO_DIR        output tree (default dist/repo)
#   STEMEDB_REPO_STATE      reprepro's database and configuration (default
#                           build/repo-state); keep it between releases, or
#                           rebuild it by publishing every current package again
#   STEMEDB_REPO_URL        where the tree is served (default
#                           https://packages.stemedb.invalid/stemedb), written
#                           into stemedb.sources and stemedb.repo
#   STEMEDB_REPO_CODENAME   APT codename (default bookworm: the packages need
#                           Debian 12's python3.11)
# See docs/operations/packaging.md ("Package repositories").
set -euo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
REPO=$(cd "$HERE/.." && pwd)
OUT=${STEMEDB_REPO_DIR:-$REPO/dist/repo}
STATE=${STEMEDB_REPO_STATE:-$REPO/build/repo-state}
URL=${STEMEDB_REPO_URL:-https://packages.stemedb.invalid/stemedb}
URL=${URL%/}
CODENAME=${STEMEDB_REPO_CODENAME:-bookworm}
export LC_ALL=C.UTF-8 TZ=UTC

log() { printf '==> %s\n' "$*" >&2; }
die() { printf 'repo.sh: error: %s\n' "$*" >&2; exit 1; }

TOOLS=(reprepro createrepo-c rpm gnupg)
missing=()
for p in "${TOOLS[@]}"; do
    dpkg-query -W -f='${db:Status-Status}' "$p" 2>/dev/null | grep -qx installed || missing+=("$p")
done
if ((${#missing[@]})); then
    [ "$(id -u)" = 0 ] || die "missing Debian packages: ${missing[*]} (run as root or install them)"
    log "installing ${missing[*]}"
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

# ------------------------------------------------------------- the key
TMP=$(mktemp -d /tmp/stemedb-repo.XXXXXX)
cleanup() {
    if [ -n "${OWN_GNUPGHOME:-}" ]; then gpgconf --homedir "$GNUPGHOME" --kill all 2>/dev/null || true; fi
    rm -rf "$TMP"
}
trap cleanup EXIT
if [ -n "${STEMEDB_REPO_KEY_FILE:-}" ]; then
    [ -r "$STEMEDB_REPO_KEY_FILE" ] || die "STEMEDB_REPO_KEY_FILE=$STEMEDB_REPO_KEY_FILE is not readable"
    export GNUPGHOME=$TMP/gnupg
    OWN_GNUPGHOME=1
    install -d -m 0700 "$GNUPGHOME"
    gpg --batch --quiet --import "$STEMEDB_REPO_KEY_FILE" 2>/dev/null \
        || die "could not import $STEMEDB_REPO_KEY_FILE"
elif [ -n "${STEMEDB_REPO_GNUPGHOME:-}" ]; then
    [ -d "$STEMEDB_REPO_GNUPGHOME" ] || die "STEMEDB_REPO_GNUPGHOME=$STEMEDB_REPO_GNUPGHOME is not a directory"
    export GNUPGHOME=$STEMEDB_REPO_GNUPGHOME
else
    die "no signing key: set STEMEDB_REPO_GNUPGHOME (a GnuPG home with the secret key) or STEMEDB_REPO_KEY_FILE (docs/operations/packaging.md, 'Package repositories')"
fi
secret_fprs() { gpg --batch --with-colons --list-secret-keys 2>/dev/null | awk -F: '$1 == "sec" {k = 1} k && $1 == "fpr" {print $10; k = 0}'; }
if [ -n "${STEMEDB_REPO_KEY_ID:-}" ]; then
    KEY=$(gpg --batch --with-colons --list-secret-keys "$STEMEDB_REPO_KEY_ID" 2>/dev/null \
        | awk -F: '$1 == "fpr" {print $10; exit}') || true
    [ -n "$KEY" ] || die "no secret key $STEMEDB_REPO_KEY_ID in $GNUPGHOME"
else
    mapfile -t fprs < <(secret_fprs)
    ((${#fprs[@]} == 1)) || die "${#fprs[@]} secret keys in $GNUPGHOME: choose one with STEMEDB_REPO_KEY_ID"
    KEY=${fprs[0]}
fi
log "signing key $KEY ($(gpg --batch --with-colons --list-keys "$KEY" | awk -F: '$1 == "uid" {print $10; exit}'))"

# ------------------------------------------------------------- packages
VERSION=$(/usr/bin/python3 -c \
    'import sys, tomllib; print(tomllib.load(open(sys.argv[1], "rb"))["project"]["version"])' \
    "$REPO/pyproject.toml")
PKGS=("$@")
((${#PKGS[@]})) || PKGS=("$REPO/dist/stemedb_${VERSION}_amd64.deb" "$REPO/dist/stemedb-${VERSION}-1.x86_64.rpm")
DEBS=() RPMS=()
for p in "${PKGS[@]}"; do
    [ -f "$p" ] || die "$p not found (make packages builds it)"
    case $p in
        *.deb) DEBS+=("$(readlink -f "$p")") ;;
        *.rpm) RPMS+=("$(readlink -f "$p")") ;;
        *) die "$p: not a .deb or .rpm" ;;
    esac
done

# Refused before anything is written: a published version never changes
# (signing changes an rpm file, not its payload digest).
payload_digest() { rpm -qp --qf '%{PAYLOADDIGEST}' "$1" 2>/dev/null; }
for rpm in "${RPMS[@]}"; do
    dest=$OUT/rpm/packages/$(basename "$rpm")
    if [ -e "$dest" ] && [ "$(payload_digest "$rpm")" != "$(payload_digest "$dest")" ]; then
        die "rpm: $(basename "$rpm") is already published with other content: bump the version"
    fi
done

mkdir -p "$OUT/apt" "$OUT/rpm/packages" "$STATE/conf"

# ------------------------------------------------------------- keys out
gpg --batch --export "$KEY" ${STEMEDB_REPO_EXTRA_KEYS:-} > "$TMP/keyring.gpg"
[ -s "$TMP/keyring.gpg" ] || die "could not export the public key $KEY"
gpg --batch --armor --export "$KEY" ${STEMEDB_REPO_EXTRA_KEYS:-} > "$TMP/keyring.asc"
install -m 0644 "$TMP/keyring.gpg" "$OUT/stemedb-archive-keyring.gpg"
install -m 0644 "$TMP/keyring.asc" "$OUT/stemedb-archive-keyring.asc"

# ------------------------------------------------------------------ apt
if ((${#DEBS[@]})); then
    cat > "$STATE/conf/distributions" <<EOF
Origin: StemeDB
Label: StemeDB
Codename: $CODENAME
Suite: stable
Architectures: amd64
Components: main
Description: StemeDB packages for Debian $CODENAME
SignWith: $KEY
EOF
    cat > "$STATE/conf/options" <<EOF
outdir $OUT/apt
dbdir $STATE/db
EOF
    for deb in "${DEBS[@]}"; do
        [ "$(dpkg-deb -f "$deb" Architecture)" = amd64 ] || die "$deb: only amd64 packages go into this repository"
        log "apt: reprepro includedeb $CODENAME $(basename "$deb")"
        reprepro --silent -b "$STATE" includedeb "$CODENAME" "$deb" \
            || die "reprepro refused $(basename "$deb") (the same version with other content is already published? bump the version)"
    done
    # Re-signs and re-exports even when nothing changed (new key, Valid-Until).
    reprepro --silent -b "$STATE" export "$CODENAME"
    # Checked here, not only by apt: a release with a broken signature is never left published.
    gpgv --quiet --keyring "$TMP/keyring.gpg" "$OUT/apt/dists/$CODENAME/InRelease" 2>/dev/null \
        || die "apt: InRelease does not verify with the exported key"
    gpgv --quiet --keyring "$TMP/keyring.gpg" "$OUT/apt/dists/$CODENAME/Release.gpg" \
        "$OUT/apt/dists/$CODENAME/Release" 2>/dev/null \
        || die "apt: Release.gpg does not verify with the exported key"
fi

# ------------------------------------------------------------------ rpm
RPMDB=$TMP/rpmdb
rpmkeys --dbpath "$RPMDB" --import "$TMP/keyring.asc"
for rpm in "${RPMS[@]}"; do
    dest=$OUT/rpm/packages/$(basename "$rpm")
    if [ -e "$dest" ]; then
        log "rpm: $(basename "$rpm") already published"
        continue
    fi
    log "rpm: rpmsign --addsign $(basename "$rpm")"
    cp "$rpm" "$TMP/sign.rpm"
    rpmsign --define "__gpg $(command -v gpg)" --define "_gpg_name $KEY" --define "_gpg_path $GNUPGHOME" \
        --define '_gpg_digest_algo sha256' --addsign "$TMP/sign.rpm" > "$TMP/rpmsign.log" 2>&1 \
        || { cat "$TMP/rpmsign.log" >&2; die "rpmsign failed"; }
    rpmkeys --dbpath "$RPMDB" --checksig "$TMP/sign.rpm" > "$TMP/checksig.log" 2>&1 \
        && grep -q 'signatures OK' "$TMP/checksig.log" \
        || { cat "$TMP/checksig.log" >&2; die "rpm: the signed package does not verify"; }
    install -m 0644 "$TMP/sign.rpm" "$dest"
done
if ((${#RPMS[@]})) || [ ! -f "$OUT/rpm/repodata/repomd.xml" ]; then
    log "rpm: createrepo_c"
    createrepo_c --quiet --update --no-database --checksum sha256 "$OUT/rpm" \
        || die "createrepo_c failed"
fi
rm -f "$OUT/rpm/repodata/repomd.xml.asc"
gpg --batch --yes --local-user "$KEY" --armor --detach-sign \
    --output "$OUT/rpm/repodata/repomd.xml.asc" "$OUT/rpm/repodata/repomd.xml"
gpgv --quiet --keyring "$TMP/keyring.gpg" "$OUT/rpm/repodata/repomd.xml.asc" \
    "$OUT/rpm/repodata/repomd.xml" 2>/dev/null || die "rpm: repomd.xml.asc does not verify"

# ---------------------------------------------------- client configuration
cat > "$OUT/stemedb.sources" <<EOF
# StemeDB packages for Debian $CODENAME. Install as /etc/apt/sources.list.d/stemedb.sources
# with the key at /etc/apt/keyrings/stemedb-archive-keyring.gpg
# (signing key $KEY).
Types: deb
URIs: $URL/apt
Suites: $CODENAME
Components: main
Architectures: amd64
Signed-By: /etc/apt/keyrings/stemedb-archive-keyring.gpg
EOF
cat > "$OUT/stemedb.repo" <<EOF
# StemeDB packages for RHEL 9 / Fedora (x86_64). Install as /etc/yum.repos.d/stemedb.repo
# (signing key $KEY).
[stemedb]
name=StemeDB
baseurl=$URL/rpm
enabled=1
gpgcheck=1
repo_gpgcheck=1
gpgkey=$URL/stemedb-archive-keyring.asc
EOF
echo "$KEY" > "$OUT/FINGERPRINT"
chmod -R u+rwX,go+rX,go-w "$OUT"

log "repository in $OUT (serve it at $URL):"
[ -d "$OUT/apt/pool" ] && find "$OUT/apt/pool" -name '*.deb' -printf '  apt: %f\n' >&2
find "$OUT/rpm/packages" -name '*.rpm' -printf '  rpm: %f\n' >&2
