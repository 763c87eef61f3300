#!/usr/bin/env bash
# Install what skillbuild's tests and demo need on Debian/Ubuntu, if missing:
# containerd + runc (the engine), runsc (gVisor, for --runtime gvisor),
# debootstrap (the offline python base), rootlesskit + uidmap (+ slirp4netns,
# fuse-overlayfs) for rootless mode, Debian's pip/setuptools/wheel wheels
# (real wheels for the test index), and the host's python3 with pip and
# venv plus curl (unit-test tools), and docker-registry + skopeo (the
# registry tests), QEMU (the cgroup v2 lane).
set -euo pipefail
need=()
command -v containerd >/dev/null || need+=(containerd)
command -v runc >/dev/null || need+=(runc)
# gVisor's runsc, for runs with --runtime gvisor (Debian's package).
[ -x /usr/bin/runsc ] || need+=(runsc)
command -v debootstrap >/dev/null || need+=(debootstrap)
# Rootless mode (and its tests, which run as an unprivileged user):
# RootlessKit, newuidmap/newgidmap, and the network and overlay helpers
# rootless setups commonly use.
command -v rootlesskit >/dev/null || need+=(rootlesskit)
command -v newuidmap >/dev/null || need+=(uidmap)
command -v slirp4netns >/dev/null || need+=(slirp4netns)
command -v fuse-overlayfs >/dev/null || need+=(fuse-overlayfs)
# The host's Debian python3 with pip and venv, and curl, drive the unit
# tests of the index bridge and the wheel fixtures.
/usr/bin/python3 -m pip --version >/dev/null 2>&1 || need+=(python3-pip)
/usr/bin/python3 -c 'import venv, ensurepip' >/dev/null 2>&1 || need+=(python3-venv)
command -v curl >/dev/null || need+=(curl)
# A real registry (CNCF distribution) and an independent reader for the
# push/pull tests.
command -v docker-registry >/dev/null || need+=(docker-registry)
command -v skopeo >/dev/null || need+=(skopeo)
# The cgroup v2 lane boots a Debian VM under QEMU (hack/vm): the emulator
# and mkfs.ext4 for its disk.
command -v qemu-system-x86_64 >/dev/null || need+=(qemu-system-x86)
command -v mkfs.ext4 >/dev/null || need+=(e2fsprogs)
ls /usr/share/python-wheels/pip-*.whl >/dev/null 2>&1 || need+=(python3-pip-whl)
ls /usr/share/python-wheels/setuptools-*.whl >/dev/null 2>&1 || need+=(python3-setuptools-whl)
ls /usr/share/python-wheels/wheel-*.whl >/dev/null 2>&1 || need+=(python3-wheel-whl)
if [ ${#need[@]} -gt 0 ]; then
  if [ "$(id -u)" != 0 ]; then echo "need root to apt-get install ${need[*]}" >&2; exit 1; fi
  echo "installing: ${need[*]}" >&2
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need[@]}" >/dev/null
fi
