#!/usr/bin/env bash
# The cgroup v2 lane: boot the test VM (hack/vm/image.sh) under QEMU and run
# the integration suite's cgroup v2 tests in it, twice:
#   plain    PID 1 is a shell script that mounts only cgroup2 (no systemd):
#            run limits, hostile runs, a build over its step memory limit,
#            serve, and rootless with root's `rootless setup --user`;
#   systemd  PID 1 is systemd: rootless through the user's systemd manager
#            and skillbuild's unit with Delegate=yes.
# The guest gets the binaries built from this tree and the compiled test
# binary over a read-only virtio-9p share and writes go test's output to a
# second one. A watchdog stops a guest that prints nothing (console,
# heartbeat or test output) for $STALL seconds, or whose kernel panics or
# oopses, and fails with its console log. The kernel's lockup and stall
# detectors (soft lockup, RCU stall, hung task) measure how much host time
# the emulated CPUs got: they are reported with the host's load at the
# time, and fail the lane only through what they cause (a test's deadline,
# the stall watchdog).
# Usage: hack/vm/run.sh [LANE...]   (default: plain systemd)
# Env: ROOTFS (the python base rootfs), STALL (default 600), DEADLINE per
# lane (default 3600), KEEP=1 keeps the work directory, VM_RUN and
# VM_SKIP replace the lanes' test patterns.
set -euo pipefail
cd "$(dirname "$0")/../.."
GO=${GO:-go}
ROOTFS=${ROOTFS:-/var/cache/skillbuild/rootfs-bookworm}
STALL=${STALL:-600}
DEADLINE=${DEADLINE:-3600}
lanes=("$@")
[ ${#lanes[@]} -gt 0 ] || lanes=(plain systemd)

# What each lane runs (go test -run and -skip patterns over the
# integration suite). Emulation makes a test about ten times slower than
# on the host, so the lanes run what differs on cgroup v2 only: run limits
# read from memory.max, cpu.max and pids.max and the OOM counter of
# memory.events (TestRunLimitsAndInterrupt), a build step's memory limit
# (TestInstallStepOverMemoryLimitFails), delegation without systemd
# (TestRootless without its subtests that cgroups do not touch) and with
# it (TestRootlessSystemd). The hostile runs and serve's warm runs use
# the same cgroup code as TestRunLimitsAndInterrupt and stay on the host
# lanes: under emulation on a loaded machine their output flood and
# fail-fast cases outrun their deadlines (VM_RUN runs them here for a look).
declare -A RUN=(
  [plain]='^(TestRunLimitsAndInterrupt|TestInstallStepOverMemoryLimitFails|TestRootless)$'
  [systemd]='^TestRootlessSystemd$'
)
declare -A SKIP=(
  [plain]='^TestRootless$/^(install_steps|scan_gate|runs_under_rlimits|concurrent_runs|ls,_rm)'
  [systemd]='^$'
)
# VM_RUN and VM_SKIP, when set, replace every lane's patterns (a one-off
# look).
if [ -n "${VM_RUN:-}" ]; then for l in "${!RUN[@]}"; do RUN[$l]=$VM_RUN; SKIP[$l]=${VM_SKIP:-^\$}; done; fi

for b in qemu-system-x86_64 debootstrap mkfs.ext4; do
  command -v "$b" >/dev/null || { echo "$b not found: make deps installs it" >&2; exit 1; }
done
t0=$SECONDS
img=$(hack/vm/image.sh "$ROOTFS")
echo "vm image: $img ($((SECONDS - t0)) s)" >&2

work=$(mktemp -d /var/tmp/skillbuild-vm.XXXXXX)
qpid=
cleanup() {
  if [ -n "$qpid" ]; then kill "$qpid" 2>/dev/null || true; wait "$qpid" 2>/dev/null || true; fi
  if [ -z "${KEEP:-}" ]; then rm -rf "$work"; else echo "kept $work" >&2; fi
}
trap cleanup EXIT
payload=$work/payload results=$work/results
mkdir -p "$payload/bin" "$payload/src/integration" "$payload/src/scan/testdata" "$payload/src/clients" "$results"
t1=$SECONDS
$GO build -o "$payload/bin/skillbuild" .
CGO_ENABLED=0 $GO build -o "$payload/bin/skillbuild-init" ./runtime/pid1/cmd/skillbuild-init
$GO build -o "$payload/bin/peakrss" ./hack/peakrss
$GO test -c -o "$payload/integration.test" ./integration
# What the tests read by relative path from the package directory.
cp scan/testdata/PyPI-pypa-20241010.zip "$payload/src/scan/testdata/"
cp -a clients/python "$payload/src/clients/"
echo "payload built ($((SECONDS - t1)) s)" >&2

# What the guest kernel prints when its CPUs did not run for a while.
starved='soft lockup|workqueue lockup|rcu_preempt detected stalls|rcu_sched detected stalls|blocked for more than'
fail=0
for lane in "${lanes[@]}"; do
  [ -n "${RUN[$lane]:-}" ] || { echo "unknown lane $lane (plain, systemd)" >&2; exit 2; }
  printf 'ARGS=(-test.run %q -test.skip %q -test.timeout %q)\n' "${RUN[$lane]}" "${SKIP[$lane]}" "$((DEADLINE - 120))s" >"$payload/lane-$lane.env"
  init=init=/usr/local/sbin/skillbuild-vm-init
  [ "$lane" = systemd ] && init="init=/lib/systemd/systemd systemd.unified_cgroup_hierarchy=1"
  console=$work/console-$lane.log
  : >"$console"
  start=$SECONDS
  echo "=== cgroup v2 lane: $lane (go test -run '${RUN[$lane]}')" >&2
  # Hardware KVM cannot boot this kernel on every host: TCG, two vCPUs.
  # tsc=reliable: on a loaded host the kernel's clocksource watchdog
  # judges the emulated TSC unstable and falls back to the HPET, whose
  # every read is a trip through QEMU's device emulation.
  qemu-system-x86_64 -accel tcg,thread=multi -cpu max -smp 2 -m 2048 \
    -nodefaults -display none -no-reboot -monitor none \
    -kernel "$img/vmlinuz" -initrd "$img/initrd.img" \
    -append "console=ttyS0 root=/dev/vda rw panic=1 loglevel=${LOGLEVEL:-4} clocksource=tsc tsc=reliable $init skillbuild.lane=$lane" \
    -drive "file=$img/disk.img,format=raw,if=virtio,snapshot=on" \
    -virtfs "local,path=$payload,mount_tag=payload,security_model=none,readonly=on" \
    -virtfs "local,path=$results,mount_tag=results,security_model=none" \
    -device virtio-rng-pci -serial "file:$console" &
  qpid=$!
  verdict= last=$SECONDS seen=-1 warned=0 hostload=
  while kill -0 "$qpid" 2>/dev/null; do
    size=$(( $(stat -c %s "$console") + $(stat -c %s "$results/$lane/test.log" 2>/dev/null || echo 0) ))
    if [ "$size" != "$seen" ]; then seen=$size last=$SECONDS; fi
    if grep -E 'Kernel panic|Oops: |BUG: |general protection fault' "$console" | grep -qvE "$starved"; then verdict="the guest kernel reported a fault"; fi
    n=$(grep -cE "$starved" "$console" || true)
    if (( n > warned )); then
      warned=$n
      hostload+="  at $((SECONDS - start))s: host load $(cut -d' ' -f1-3 /proc/loadavg), busiest: $(ps -eo pcpu=,args= --sort=-pcpu | head -n 3 | cut -c1-80 | tr -s ' \n' ' ')"$'\n'
    fi
    if (( SECONDS - last > STALL )); then verdict="the guest printed nothing for ${STALL}s: hung"; fi
    if (( SECONDS - start > DEADLINE )); then verdict="the lane ran over its ${DEADLINE}s deadline"; fi
    if [ -n "$verdict" ]; then kill "$qpid" 2>/dev/null || true; break; fi
    sleep 2 # poll interval
  done
  wait "$qpid" 2>/dev/null || true
  qpid=
  rc=$(cat "$results/$lane/rc" 2>/dev/null || echo none)
  took=$((SECONDS - start))
  if (( warned > 0 )); then
    echo "--- the guest kernel's lockup and stall detectors fired ($lane): its CPUs did not run for a while"
    grep -E "$starved" "$console" | head -n 10
    printf '%s' "$hostload"
  fi
  if [ -z "$verdict" ] && [ "$rc" = 0 ]; then
    grep -E '^(--- |=== (RUN|NAME)|ok|PASS|FAIL|integration: )' "$results/$lane/test.log" | grep -v '^=== RUN' || true
    echo "cgroup v2 lane $lane: ok (${took}s)"
    continue
  fi
  fail=1
  if [ -z "$verdict" ]; then
    if [ "$rc" = none ]; then verdict="the guest stopped before go test finished"; else verdict="go test exited $rc"; fi
  fi
  echo "--- go test output ($lane):"
  cat "$results/$lane/test.log" 2>/dev/null || echo "(none)"
  echo "--- end of the guest console ($lane):"
  tail -n 80 "$console"
  echo "cgroup v2 lane $lane: FAILED: $verdict (${took}s)"
done
echo "cgroup v2 lanes: $((SECONDS - t0)) s" >&2
exit $fail
