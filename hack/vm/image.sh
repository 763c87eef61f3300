#!/usr/bin/env bash
# Build (once) the disk image of the cgroup v2 test VM and print its
# directory: a Debian bookworm guest (its kernel and the initrd debootstrap
# makes, systemd, Debian's containerd and runc, RootlessKit, uidmap,
# python3 and Debian's wheels), the files under hack/vm/guest, and the
# suite's python base rootfs at /var/cache/skillbuild/rootfs-bookworm.
#
# The image lives in $CACHE/vm-cgroup2-KEY/ (disk.img, vmlinuz, initrd.img),
# KEY being a hash of this script, the guest files and the base rootfs's
# file list: a change to any of them builds a new one, and older images
# are removed. A second run with the same inputs is instant.
# Usage: hack/vm/image.sh [BASE_ROOTFS]
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
rootfs=${1:-/var/cache/skillbuild/rootfs-bookworm}
cache=${CACHE:-/var/cache/skillbuild}
[ -x "$rootfs/usr/bin/python3" ] || { echo "no python base rootfs at $rootfs (make base-rootfs)" >&2; exit 1; }
packages=linux-image-amd64,initramfs-tools,systemd,systemd-sysv,dbus,dbus-user-session,libpam-systemd,containerd,runc,rootlesskit,uidmap,python3,python3-pip-whl,python3-setuptools-whl,python3-wheel-whl,iproute2,kmod,procps,e2fsprogs
# Debootstrap is the slow part (minutes): its tree is kept on its own,
# keyed by the package list, so a change to the guest files or the base
# rootfs only rebuilds the disk.
guest="$cache/vm-guest-$(echo "bookworm $packages" | sha256sum | cut -c1-16)"
if [ ! -f "$guest/complete" ]; then
  for old in "$cache"/vm-guest-*; do [ "$old" != "$guest" ] && [ -d "$old" ] && rm -rf "$old"; done
  gtmp="$guest.tmp.$$"
  rm -rf "$gtmp"; mkdir -p "$gtmp"
  trap 'rm -rf "$gtmp"' EXIT
  mirror=()
  if [ -n "${DEBIAN_MIRROR:-}" ]; then mirror=("$DEBIAN_MIRROR"); fi
  echo "debootstrap the cgroup v2 test VM's guest into $guest (a few minutes, once)" >&2
  debootstrap --variant=minbase --include="$packages" bookworm "$gtmp/root" "${mirror[@]}" >"$gtmp/debootstrap.log" 2>&1 \
    || { tail -n 30 "$gtmp/debootstrap.log" >&2; exit 1; }
  rm -rf "$gtmp"/root/var/cache/apt/archives/*.deb "$gtmp"/root/var/lib/apt/lists/* "$gtmp/debootstrap.log"
  rm -rf "$guest"; mv "$gtmp" "$guest"; touch "$guest/complete"
  trap - EXIT
fi
key=$( { cat "$here/image.sh"; echo "$guest"; (cd "$here/guest" && find . -type f -print0 | sort -z | xargs -0 sha256sum);
         (cd "$rootfs" && find . -printf '%P %s %m %U %T@\n' | sort); } | sha256sum | cut -c1-16)
dir="$cache/vm-cgroup2-$key"
if [ -f "$dir/complete" ]; then echo "$dir"; exit 0; fi
for old in "$cache"/vm-cgroup2-*; do [ "$old" != "$dir" ] && [ -d "$old" ] && rm -rf "$old"; done
tmp="$dir.tmp.$$"
rm -rf "$tmp"; mkdir -p "$tmp"
trap 'rm -rf "$tmp"' EXIT
stage="$tmp/root"
echo "assembling the cgroup v2 test VM's disk in $dir" >&2
cp -a "$guest/root" "$stage"
cp "$stage"/boot/vmlinuz-* "$tmp/vmlinuz"
cp "$stage"/boot/initrd.img-* "$tmp/initrd.img"
# The guest's own files: its init without systemd, the test runner, the
# unit that runs it under systemd.
cp -a "$here/guest/." "$stage/"
chmod 0755 "$stage/usr/local/sbin/"*
echo sbvm >"$stage/etc/hostname"
printf '127.0.0.1 localhost sbvm\n::1 localhost\n' >"$stage/etc/hosts"
printf '/dev/vda / ext4 rw,errors=remount-ro 0 0\n' >"$stage/etc/fstab"
# systemd: run the tests once booted; nothing else that costs time (the
# suite starts a containerd of its own).
mkdir -p "$stage/etc/systemd/system/multi-user.target.wants"
ln -sf /etc/systemd/system/skillbuild-vm-test.service "$stage/etc/systemd/system/multi-user.target.wants/skillbuild-vm-test.service"
for u in serial-getty@ttyS0.service getty@tty1.service apt-daily.timer apt-daily-upgrade.timer \
         e2scrub_all.timer e2scrub_reap.service fstrim.timer man-db.timer dpkg-db-backup.timer \
         systemd-timesyncd.service containerd.service; do
  ln -sf /dev/null "$stage/etc/systemd/system/$u"
done
mkdir -p "$stage/var/cache/skillbuild"
cp -a "$rootfs" "$stage/var/cache/skillbuild/rootfs-bookworm"
# Room for the tests' images, snapshots and builds.
truncate -s 12G "$tmp/disk.img"
mkfs.ext4 -q -F -L sbvm -d "$stage" "$tmp/disk.img"
rm -rf "$stage"
rm -rf "$dir"; mv "$tmp" "$dir"
trap - EXIT
touch "$dir/complete"
echo "$dir"
