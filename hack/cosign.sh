#!/usr/bin/env bash
# Builds cosign VERSION from its Go module (through the module proxy, with
# this host's Go) into CACHE/cosign-VERSION/cosign, once: the signing
# integration test checks with it that cosign verifies what skillbuild
# signs and the other way round. No binary is committed.
#
#   hack/cosign.sh [VERSION] [CACHE]
#
# VERSION defaults to hack/cosign.version (the one place it is pinned),
# CACHE to /var/cache/skillbuild.
#
# Building takes minutes (cosign links hundreds of modules), which is why
# the result is cached by version and `make test` runs this first.
set -euo pipefail
version=${1:-$(cat "$(dirname "$0")/cosign.version")}
cache=${2:-/var/cache/skillbuild}
out="$cache/cosign-$version/cosign"
if [ -x "$out" ]; then
	exit 0
fi
major=${version%%.*}
mod=github.com/sigstore/cosign
[ "$major" = v1 ] || mod="$mod/$major"

scratch=$(mktemp -d)
trap 'rm -rf "$scratch"' EXIT
cd "$scratch"
printf 'module cosignbuild\n\ngo 1.26\n' >go.mod
# Only this scratch module: no workspace, the local toolchain, and the
# versions cosign's own go.mod pins (MVS from cosign alone).
export GOWORK=off GOTOOLCHAIN=local GOFLAGS=-mod=mod
start=$(date +%s)
echo "cosign.sh: building cosign $version ($mod) into $out" >&2
go get "$mod/cmd/cosign@$version"
mkdir -p "$(dirname "$out")"
go build -trimpath -o "$out.tmp" \
	-ldflags "-X sigs.k8s.io/release-utils/version.gitVersion=$version" \
	"$mod/cmd/cosign"
mv "$out.tmp" "$out"
echo "cosign.sh: built cosign $version in $(($(date +%s) - start)) s" >&2
