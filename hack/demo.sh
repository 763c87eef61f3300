#!/usr/bin/env bash
# The main job end to end on this host: a private containerd, the offline
# base, the vulnerability database, two skills pinning conflicting versions
# of one package, and a line of Python run in each.
set -euo pipefail
bin=$(realpath "$1"); dir=$2; rootfs=$3; base=$4
mkdir -p "$dir"; dir=$(realpath "$dir")
sock=$(hack/containerd.sh "$dir/containerd")
sb() { env -i PATH="$PATH" HOME="$dir" "$bin" --address "$sock" --root "$dir/root" "$@"; }
step() { printf '\n\033[1m== %s\033[0m\n' "$*"; }

step "containerd on $sock (log: $dir/containerd/containerd.log)"
if ! ctr --address "$sock" -n skillbuild images ls -q | grep -qx "$base"; then
  step "importing the python base rootfs as $base"
  sb base import --rootfs "$rootfs" --name "$base"
fi
step "vulnerability database (PyPA advisories, offline copy)"
sb db import scan/testdata/PyPI-pypa-20241010.zip
step "wheelhouse with pkgx 1.0 and 2.0"
go run ./hack/mkwheels "$dir/wheels"
ls "$dir/wheels"

step "skill-a needs pkgx==1.0"
sb install --progress plain --base "$base" --find-links "$dir/wheels" skill-a 'pkgx==1.0'
step "skill-b needs pkgx==2.0"
sb install --progress plain --base "$base" --find-links "$dir/wheels" skill-b 'pkgx==2.0'
step "skill-c needs pip==23.0.1 (a known vulnerability): refused"
set +e; sb install --progress quiet --base "$base" --find-links "$dir/wheels" skill-c 'pip==23.0.1'; echo "exit code $?"; set -e

code='import pkgx; result = {"pkgx": pkgx.__version__, "greeting": pkgx.greet(inputs["who"])}'
for s in skill-a skill-b; do
  step "run in $s"
  sb run --json -c "$code" --inputs '{"who": "'"$s"'"}' "$s"
done
step "done: images in containerd namespace skillbuild"
ctr --address "$sock" -n skillbuild images ls -q | grep atom-skill
