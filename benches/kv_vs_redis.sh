#!/usr/bin/env bash
# kv (examples/kv.rs) against redis-server under redis-benchmark, side by side in one run.
#
#     bash benches/kv_vs_redis.sh [ROUNDS] [REQUESTS]      (defaults: 3 rounds, 1,000,000)
#
# Installs Debian's redis-server and redis-tools when they are missing (needs apt-get and root
# or sudo). Every server is pinned to CPU 0 and redis-benchmark to CPU 1 (on a 2-core machine
# they would otherwise compete for the same CPUs), and the servers take turns within each
# round, so slow and fast moments of a shared machine hit all of them alike.
# Servers:
#   redis       redis-server --save "" --appendonly no
#   kv          examples/kv.rs as it ships: its loop naps 20 us before it sleeps
#               (Builder::nap_before_sleep), what kv does when neither variable below is set
#   kv-sleep    the same binary with SOLO_NAP_US=0: a loop that sleeps at once
#   kv+spin     the same binary with SOLO_SPIN_US=100 (Builder::spin_before_sleep): spins
#               100 us before it sleeps
#   kv_tokio    the same connection code on tokio's current_thread runtime
# Loads: `redis-benchmark -t set` then `-t get`, 50 connections, pipelines of 16 (-P 16,
# REQUESTS requests) and of 1 (-P 1, REQUESTS / 5 requests).
# For each run it prints requests per second, the server's CPU time (user+system, from
# /proc/PID/stat) and requests per CPU-second of the server, the share of that CPU time spent
# in user space (the rest is the kernel's, mostly the syscalls), how often the server slept
# (voluntary context switches), and the system CPU time of redis-benchmark itself (it pays for
# waking a sleeping server). At the end: medians over the rounds, and each server's medians as
# ratios to redis-server's, for throughput and for requests per CPU-second.
set -euo pipefail
cd "$(dirname "$0")/.."
rounds=${1:-3}
n=${2:-1000000}
servers=(redis kv kv-sleep kv+spin kv_tokio)

if ! command -v redis-server >/dev/null || ! command -v redis-benchmark >/dev/null; then
    echo "== installing redis-server, redis-tools"
    sudo=""
    if [[ $(id -u) -ne 0 ]]; then sudo=sudo; fi
    for attempt in 1 2 3; do # a mirror's bad moment should not fail the run
        if $sudo apt-get update -qq &&
            $sudo env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq redis-server redis-tools >/dev/null; then
            break
        fi
        [[ $attempt == 3 ]] && { echo "could not install redis-server, redis-tools" >&2; exit 1; }
        sleep 10
    done
fi
for tool in taskset bc; do
    command -v "$tool" >/dev/null || { echo "needs $tool" >&2; exit 1; }
done
cargo build --release --quiet --example kv --example kv_tokio

declare -A port=([redis]=6390 [kv]=6391 [kv+spin]=6392 [kv_tokio]=6393 [kv-sleep]=6394)
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
start kv target/release/examples/kv "127.0.0.1:${port[kv]}"
SOLO_NAP_US=0 start kv-sleep target/release/examples/kv "127.0.0.1:${port[kv-sleep]}"
SOLO_SPIN_US=100 start kv+spin target/release/examples/kv "127.0.0.1:${port[kv+spin]}"
start kv_tokio target/release/examples/kv_tokio "127.0.0.1:${port[kv_tokio]}"
sleep 1

ticks() { awk '{print $14 + $15}' "/proc/$1/stat"; }
user_ticks() { awk '{print $14}' "/proc/$1/stat"; }
switches() { awk '/^voluntary_ctxt_switches/ {print $2}' "/proc/$1/status"; }
hz=$(getconf CLK_TCK)

printf '%-4s %-3s %-9s %12s %11s %14s %9s %11s %8s\n' test P server 'requests/s' 'server CPU' \
    'requests/CPU-s' sleeps 'client sys' 'of it user'
for pipeline in 16 1; do
    requests=$n
    [[ $pipeline == 1 ]] && requests=$((n / 5))
    for test in set get; do
        for ((r = 1; r <= rounds; r++)); do
            for name in "${servers[@]}"; do
                p=${pid[$name]}
                t0=$(ticks "$p"); s0=$(switches "$p"); u0=$(user_ticks "$p")
                out=$( (TIMEFORMAT='client-sys %S' && time taskset -c 1 redis-benchmark \
                    -p "${port[$name]}" -t "$test" -n "$requests" -c 50 -P "$pipeline" -q) 2>&1)
                rps=$(grep -o '[0-9.]* requests per second' <<<"$out" | tail -1 | cut -d' ' -f1)
                client_sys=$(awk '/^client-sys/ {print $2}' <<<"$out")
                t1=$(ticks "$p"); s1=$(switches "$p"); u1=$(user_ticks "$p")
                cpu=$(echo "($t1 - $t0) / $hz" | bc -l)
                per_cpu=$(echo "if ($cpu > 0) $requests / $cpu else 0" | bc -l)
                user=$(echo "if ($t1 > $t0) ($u1 - $u0) / ($t1 - $t0) else 0" | bc -l)
                printf '%-4s %-3s %-9s %12.0f %10.2fs %14.0f %9d %10.2fs %8.2f\n' "$test" "$pipeline" \
                    "$name" "$rps" "$cpu" "$per_cpu" $((s1 - s0)) "$client_sys" "$user" | tee -a "$results"
            done
        done
    done
done

# Medians over the rounds, and each server's medians against redis-server's.
median() { # test, pipeline, server, column
    awk -v t="$1" -v p="$2" -v s="$3" -v c="$4" '$1 == t && $2 == p && $3 == s {print $c}' "$results" |
        sort -n | awk '{v[NR] = $1} END {print (NR % 2) ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2}'
}
echo
echo "medians of $rounds rounds (ratios: this server's median / redis-server's):"
printf '%-4s %-3s %-9s %12s %9s %14s %9s\n' test P server 'requests/s' 'vs redis' 'requests/CPU-s' \
    'vs redis'
for pipeline in 16 1; do
    for test in set get; do
        rps_redis=$(median "$test" "$pipeline" redis 4)
        cpu_redis=$(median "$test" "$pipeline" redis 6)
        for name in "${servers[@]}"; do
            rps=$(median "$test" "$pipeline" "$name" 4)
            cpu=$(median "$test" "$pipeline" "$name" 6)
            printf '%-4s %-3s %-9s %12.0f %9.2f %14.0f %9.2f\n' "$test" "$pipeline" "$name" \
                "$rps" "$(echo "$rps / $rps_redis" | bc -l)" "$cpu" "$(echo "$cpu / $cpu_redis" | bc -l)"
        done
    done
done
