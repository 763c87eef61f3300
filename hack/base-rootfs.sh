#!/usr/bin/env bash
# Build (once) a Debian bookworm root filesystem with python3, venv and pip:
# the offline base image for tests and the demo. A second run is instant.
set -euo pipefail
dir=${1:?usage: hack/base-rootfs.sh DIR}
if [ -x "$dir/usr/bin/python3" ]; then exit 0; fi
# debootstrap uses its own default mirror; DEBIAN_MIRROR picks another.
mirror=()
if [ -n "${DEBIAN_MIRROR:-}" ]; then mirror=("$DEBIAN_MIRROR"); fi
tmp="$dir.tmp.$$"
rm -rf "$tmp"; mkdir -p "$(dirname "$dir")"
echo "debootstrap bookworm python rootfs into $dir (about a minute, once)" >&2
debootstrap --variant=minbase --include=python3,python3-venv,python3-pip bookworm "$tmp" "${mirror[@]}" >"$tmp.log" 2>&1 \
  || { tail -n 30 "$tmp.log" >&2; rm -rf "$tmp"; exit 1; }
rm -f "$tmp.log"
# Trim what a build never needs.
rm -rf "$tmp"/var/cache/apt/archives/*.deb "$tmp"/var/lib/apt/lists/*
mv "$tmp" "$dir"
