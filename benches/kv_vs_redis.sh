#!/usr/bin/env bash
# kv (examples/kv.rs) against redis-server under redis-benchmark, side by side in one run.
#
#     bash benches/kv_vs_redis.sh [ROUNDS] [REQUESTS]      (defaults: 3 rounds, 1,000,000)
#
# Needs Debian's redis-server and redis-tools (apt-get install redis-server redis-tools).
# Every server is pinned to CPU 0 and redis-benchmark to CPU 1, and the servers take turns
# within each round, so slow and fast moments of a shared machine hit all of them alike.
# Servers:
#   redis       redis-server --save "" --appendonly no
#   kv          examples/kv.rs on solo with SOLO_SPIN_US=0: a loop that sleeps at once
#   kv+spin     the same binary with SOLO_SPIN_US=100 (Builder::spin_before_sleep), which is
#               what kv does when the variable is not set
#   kv_tokio    the same connection code on tokio's current_thread runtime
# For each run it prints requests per second, the server's CPU time (user+system, from
# /proc/PID/stat), how often the server slept (voluntary context switches), and the system
# CPU time of redis-benchmark itself (it pays for waking a sleeping server).
set -euo pipefail
cd "$(dirname "$0")/.."
rounds=${1:-3}
n=${2:-1000000}
for tool in redis-server redis-benchmark taskset; do
    command -v "$tool" >/dev/null || { echo "needs $tool (apt-get install redis-server redis-tools)" >&2; exit 1; }
done
cargo build --release --quiet --example kv --example kv_tokio

declare -A port=([redis]=6390 [kv]=6391 [kv+spin]=6392 [kv_tokio]=6393)
declare -A pid
pids=()
results=$(mktemp)
trap 'kill "${pids[@]}" 2>/dev/null || true; rm -f "$results"' EXIT
start() { # name, command...
    local name=$1; shift
    taskset -c 0 "$@" >/dev/null 2>&1 &
    pid[$name]=$!
    pids+=($!)
}
start redis redis-server --port "${port[redis]}" --save "" --appendonly no
SOLO_SPIN_US=0 start kv target/release/examples/kv "127.0.0.1:${port[kv]}"
SOLO_SPIN_US=100 start kv+spin target/release/examples/kv "127.0.0.1:${port[kv+spin]}"
start kv_tokio target/release/examples/kv_tokio "127.0.0.1:${port[kv_tokio]}"
sleep 1

ticks() { awk '{print $14 + $15}' "/proc/$1/stat"; }
switches() { awk '/^voluntary_ctxt_switches/ {print $2}' "/proc/$1/status"; }
hz=$(getconf CLK_TCK)

printf '%-6s %-9s %14s %12s %10s %12s\n' test server 'requests/s' 'server CPU' sleeps 'client sys'
for test in set get; do
    for ((r = 1; r <= rounds; r++)); do
        for name in redis kv kv+spin kv_tokio; do
            p=${pid[$name]}
            t0=$(ticks "$p"); s0=$(switches "$p")
            out=$( (TIMEFORMAT='client-sys %S' && time taskset -c 1 redis-benchmark \
                -p "${port[$name]}" -t "$test" -n "$n" -c 50 -P 16 -q) 2>&1)
            rps=$(grep -o '[0-9.]* requests per second' <<<"$out" | tail -1 | cut -d' ' -f1)
            client_sys=$(awk '/^client-sys/ {print $2}' <<<"$out")
            t1=$(ticks "$p"); s1=$(switches "$p")
            printf '%-6s %-9s %14.0f %11.2fs %10d %11.2fs\n' "$test" "$name" "$rps" \
                "$(echo "($t1 - $t0) / $hz" | bc -l)" $((s1 - s0)) "$client_sys" | tee -a "$results"
        done
    done
done

# Medians over the rounds, and each server's median against redis-server's.
echo
echo "medians of $rounds rounds:"
for test in set get; do
    declare -A median=()
    for name in redis kv kv+spin kv_tokio; do
        median[$name]=$(awk -v t="$test" -v s="$name" '$1 == t && $2 == s {print $3}' "$results" |
            sort -n | awk '{v[NR] = $1} END {print (NR % 2) ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2}')
    done
    for name in redis kv kv+spin kv_tokio; do
        printf '%-6s %-9s %14.0f   %.2f of redis\n' "$test" "$name" "${median[$name]}" \
            "$(echo "${median[$name]} / ${median[redis]}" | bc -l)"
    done
done
