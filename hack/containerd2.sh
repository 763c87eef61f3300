#!/usr/bin/env bash
# Build (once) containerd, its runc shim and ctr from the Go module at the
# client version in go.mod, into /var/cache/skillbuild/containerd-VERSION/bin
# (or $CACHE/containerd-VERSION/bin), and print that directory. The
# containerd 2.x lane of the integration suite (make test-containerd2)
# points the suite's harness at it; a second run is instant.
# Building takes a few minutes of both cores and fetches containerd's own
# dependencies through the Go module proxy.
set -euo pipefail
cd "$(dirname "$0")/.."
GO=${GO:-go}
version=${CONTAINERD_VERSION:-$($GO list -m -f '{{.Version}}' github.com/containerd/containerd/v2)}
cache=${CACHE:-/var/cache/skillbuild}
dir="$cache/containerd-$version"
bins=(containerd containerd-shim-runc-v2 ctr)
if [ -f "$dir/complete" ]; then echo "$dir/bin"; exit 0; fi
tmp="$dir.tmp.$$"
rm -rf "$tmp"; mkdir -p "$tmp/bin"
trap 'rm -rf "$tmp"' EXIT
echo "building containerd $version (containerd, containerd-shim-runc-v2, ctr) into $dir (a few minutes, once)" >&2
pkgs=()
for b in "${bins[@]}"; do pkgs+=("github.com/containerd/containerd/v2/cmd/$b@$version"); done
# Outside this module: `go install PKG@VERSION` builds with containerd's
# own go.mod. The version string the binaries report is set as
# containerd's Makefile sets it.
(cd "$tmp" && GOBIN="$tmp/bin" GOFLAGS= $GO install \
  -ldflags "-X github.com/containerd/containerd/v2/version.Version=${version#v}" \
  "${pkgs[@]}")
"$tmp/bin/containerd" --version >&2
rm -rf "$dir"; mv "$tmp" "$dir"
trap - EXIT
touch "$dir/complete"
echo "$dir/bin"
