#!/usr/bin/env bash
# docker/Dockerfile.cpu's base image on this engine: pulled when a registry answers, else a local stand-in built
# from Debian's own packages (this project's machines reach no image registry): debootstrap's minbase, slimmed the
# way debian:bookworm-slim is, `docker import`ed under the same name so that the build picks it as it is.
#   tools/base-image.sh [NAME]   (default: Dockerfile.cpu's BASE_IMAGE; FORCE=1 rebuilds the stand-in)
set -euo pipefail
DOCKER=${DOCKER:-/usr/bin/docker}
NAME=${1:-$(sed -n 's/^ARG BASE_IMAGE=//p' "$(dirname "$0")/../docker/Dockerfile.cpu")}
SUITE=bookworm
MIRROR=${DEBIAN_MIRROR:-http://deb.debian.org/debian}

if [ -z "${FORCE:-}" ] && "$DOCKER" image inspect "$NAME" >/dev/null 2>&1; then
    echo "base-image: $NAME is here: $("$DOCKER" image inspect -f '{{.Comment}}' "$NAME" | cut -c1-100)"
    exit 0
fi
if [ -z "${FORCE:-}" ] && "$DOCKER" pull -q "$NAME" 2>/dev/null; then
    exit 0
fi
case "$NAME" in *@*) echo "base-image: cannot tag a stand-in as a digest ($NAME): pass a tag" >&2; exit 2 ;; esac
echo "base-image: $NAME cannot be pulled; building a stand-in with debootstrap --variant=minbase $SUITE"
command -v debootstrap >/dev/null || { echo "base-image: debootstrap is missing: make docker-engine" >&2; exit 1; }

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
root=$work/rootfs
start=$(date +%s)
debootstrap --variant=minbase "$SUITE" "$root" "$MIRROR" >"$work/debootstrap.log" 2>&1 \
    || { tail -20 "$work/debootstrap.log" >&2; exit 1; }

# What debian:bookworm-slim does on top of a minbase (debuerreotype's slimify and docker tweaks): the same apt
# sources (updates and security included), no docs, man pages or locales from later installs, no apt caches.
rm -f "$root/etc/apt/sources.list"
cat >"$root/etc/apt/sources.list.d/debian.sources" <<EOF
Types: deb
URIs: $MIRROR
Suites: $SUITE $SUITE-updates
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg

Types: deb
URIs: http://deb.debian.org/debian-security
Suites: $SUITE-security
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg
EOF
cat >"$root/etc/dpkg/dpkg.cfg.d/docker" <<'EOF'
path-exclude /usr/share/doc/*
path-include /usr/share/doc/*/copyright
path-exclude /usr/share/man/*
path-exclude /usr/share/info/*
path-exclude /usr/share/locale/*
path-include /usr/share/locale/locale.alias
EOF
cat >"$root/etc/apt/apt.conf.d/docker-clean" <<'EOF'
DPkg::Post-Invoke { "rm -f /var/cache/apt/archives/*.deb /var/cache/apt/archives/partial/*.deb /var/cache/apt/*.bin || true"; };
APT::Update::Post-Invoke { "rm -f /var/cache/apt/archives/*.deb /var/cache/apt/archives/partial/*.deb /var/cache/apt/*.bin || true"; };
Dir::Cache::pkgcache "";
Dir::Cache::srcpkgcache "";
EOF
echo 'Acquire::Languages "none";' >"$root/etc/apt/apt.conf.d/docker-no-languages"
find "$root/usr/share/doc" -mindepth 1 -not -name copyright -not -type d -delete
find "$root/usr/share/doc" -mindepth 1 -type d -empty -delete
rm -rf "$root"/usr/share/{man,info}/* "$root"/var/lib/apt/lists/* "$root"/var/cache/apt/*.bin \
    "$root"/var/cache/apt/archives/*.deb "$root"/var/log/*.log "$root"/var/log/apt/*
find "$root/usr/share/locale" -mindepth 1 -maxdepth 1 -not -name locale.alias -exec rm -rf {} +

tar --numeric-owner -C "$root" -c . | "$DOCKER" import \
    --change 'ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' \
    --change 'CMD ["bash"]' \
    --message "stand-in: debootstrap --variant=minbase $SUITE $MIRROR, slimmed (tools/base-image.sh)" - "$NAME" >/dev/null
size=$("$DOCKER" image inspect -f '{{.Size}}' "$NAME")
echo "base-image: $NAME (stand-in) from debootstrap $SUITE in $(( $(date +%s) - start )) s, $(( size / 1000000 )) MB"
