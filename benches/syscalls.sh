#!/usr/bin/env bash
# Syscalls per 1 KiB echo round trip, solo vs tokio: each echo server runs under `strace -c`
# while one client does ROUNDS round trips; the counts are divided by ROUNDS.
#
#     bash benches/syscalls.sh [ROUNDS]        (needs strace: apt-get install strace)
set -euo pipefail
cd "$(dirname "$0")/.."
ROUNDS=${1:-10000}
cargo build -q --release --example echo --example echo_tokio
client() {
  python3 - "$1" "$ROUNDS" <<'PY'
import socket, sys
port, rounds = int(sys.argv[1]), int(sys.argv[2])
s = socket.create_connection(("127.0.0.1", port))
s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
msg = b"x" * 1024
for _ in range(rounds):
    s.sendall(msg)
    got = 0
    while got < len(msg):
        got += len(s.recv(4096))
s.close()
PY
}
run() {
  local name=$1 bin=$2 port=$3
  strace -f -c -o "/tmp/solo-strace-$name" "$bin" "127.0.0.1:$port" >/dev/null &
  local pid=$!
  sleep 0.5
  client "$port"
  sleep 0.2
  pkill -f "$bin 127.0.0.1:$port" || true   # the server; strace then prints its summary
  wait "$pid" 2>/dev/null || true
  echo "== $name: syscalls per round trip over $ROUNDS round trips"
  awk -v r="$ROUNDS" '$NF ~ /^[a-z_0-9]+$/ && $NF != "total" && $4 ~ /^[0-9]+$/ {
                        t += $4; if ($4 / r >= 0.01) printf "  %-14s %6.2f\n", $NF, $4 / r }
                      END {printf "  %-14s %6.2f\n", "total", t / r}' "/tmp/solo-strace-$name"
}
run solo target/release/examples/echo 7310
run tokio target/release/examples/echo_tokio 7311
