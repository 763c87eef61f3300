#!/usr/bin/env bash
# Start (or reuse) a private containerd with its own root, state and socket.
# Usage: hack/containerd.sh DIR   -> prints the socket path on stdout.
# The daemon's log is DIR/containerd.log; its pid is in DIR/containerd.pid.
set -euo pipefail
dir=${1:?usage: hack/containerd.sh DIR}
mkdir -p "$dir"
dir=$(cd "$dir" && pwd)
sock="$dir/containerd.sock"
if [ -S "$sock" ] && ctr --address "$sock" version >/dev/null 2>&1; then
  echo "$sock"; exit 0
fi
cat > "$dir/config.toml" <<TOML
version = 2
root = "$dir/root"
state = "$dir/state"
disabled_plugins = ["io.containerd.grpc.v1.cri"]
[grpc]
  address = "$sock"
[ttrpc]
  address = "$sock.ttrpc"
[debug]
  address = "$dir/debug.sock"
TOML
nohup containerd --config "$dir/config.toml" >"$dir/containerd.log" 2>&1 &
echo $! > "$dir/containerd.pid"
for _ in $(seq 1 100); do
  if ctr --address "$sock" version >/dev/null 2>&1; then echo "$sock"; exit 0; fi
  sleep 0.1
done
echo "containerd did not start; log:" >&2; tail -n 30 "$dir/containerd.log" >&2; exit 1
