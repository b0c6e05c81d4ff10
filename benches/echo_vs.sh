#!/usr/bin/env bash
# "Would io_uring beat this loop?" The tcp_echo rows of benches/versus.rs with monoio as a third
# column: the same workload shape (C blocking client connections, one thread each, each doing R
# round trips of 1 KiB, write_all then read_exact; C = 1, 10, 100 with R = 4,000, 800, 80) against
# four echo servers, each its own process on one thread:
#   solo          examples/echo.rs (a default loop: mio, no spin)
#   tokio         examples/echo_tokio.rs (current_thread)
#   monoio        benches/monoio's echo --threads 1 (io_uring)
#   monoio_epoll  the same with MONOIO_FORCE_LEGACY_DRIVER=1 (monoio's epoll driver)
# The client is benches/monoio's echo_load --rounds (versus.rs's echo_client, out of process).
# The servers take turns within each round, so slow and fast moments of a shared machine hit
# them alike; medians over the rounds.
#
# Wall time per round trip is at the mercy of a shared machine, so two figures that are not
# are measured too: the server's CPU time per round trip (the sum of its threads'
# /proc/PID/task/*/schedstat, in ns, over all rounds), and its syscalls per round trip
# (strace -c -f on a separate run of each server: 1 and 10 connections, 2,000 round trips in
# all; skipped without strace).
#
#     bash benches/echo_vs.sh [ROUNDS]        (default 5)
#
# Writes benches/results/echo_vs.csv in versus.csv's format (workload,solo_ns_per_op,
# tokio_ns_per_op,ratio, ratio = tokio/solo) with monoio's columns after it:
# monoio_ns_per_op,monoio_ratio (monoio/solo),monoio_epoll_ns_per_op,monoio_epoll_ratio.
# Above 1, solo is faster. The CPU rows are named tcp_echo_C_server_cpu (ns of server CPU per
# round trip), the syscall rows tcp_echo_C_syscalls (syscalls per round trip).
set -euo pipefail
cd "$(dirname "$0")/.."
rounds=${1:-5}
[[ $rounds =~ ^[1-9][0-9]*$ ]] || { echo "ROUNDS must be a positive count, not '$rounds'" >&2; exit 2; }

cargo build --release --quiet --example echo --example echo_tokio
cargo build --release --quiet --manifest-path benches/monoio/Cargo.toml --target-dir target/peers
load=target/peers/release/echo_load

servers=(solo tokio monoio monoio_epoll)
declare -A port=([solo]=7611 [tokio]=7612 [monoio]=7613 [monoio_epoll]=7614)
pids=()
raw=$(mktemp)
trap 'kill "${pids[@]}" 2>/dev/null || true; rm -f "$raw"' EXIT
target/release/examples/echo "127.0.0.1:${port[solo]}" >/dev/null & pids+=($!)
target/release/examples/echo_tokio "127.0.0.1:${port[tokio]}" >/dev/null & pids+=($!)
target/peers/release/echo "127.0.0.1:${port[monoio]}" --threads 1 & pids+=($!)
MONOIO_FORCE_LEGACY_DRIVER=1 target/peers/release/echo "127.0.0.1:${port[monoio_epoll]}" --threads 1 & pids+=($!)
for name in "${servers[@]}"; do
    for _ in $(seq 100); do
        (exec 3<>"/dev/tcp/127.0.0.1/${port[$name]}") 2>/dev/null && break
        sleep 0.1
    done
done

declare -A pid_of
for i in "${!servers[@]}"; do pid_of[${servers[$i]}]=${pids[$i]}; done
# CPU time of every thread of a process so far, in ns.
cpu_ns() { cat /proc/"$1"/task/*/schedstat | awk '{t += $1} END {printf "%.0f", t}'; }
declare -A cpu ops
for ((r = 1; r <= rounds; r++)); do
    for shape in "1 4000" "10 800" "100 80"; do
        read -r conns reps <<<"$shape"
        for name in "${servers[@]}"; do
            c0=$(cpu_ns "${pid_of[$name]}")
            ns=$("$load" "127.0.0.1:${port[$name]}" --conns "$conns" --rounds "$reps" | awk '/^ns_per_op/ {print $2}')
            c1=$(cpu_ns "${pid_of[$name]}")
            cpu[$conns,$name]=$(( ${cpu[$conns,$name]:-0} + c1 - c0 ))
            ops[$conns,$name]=$(( ${ops[$conns,$name]:-0} + conns * reps ))
            printf 'round %d  tcp_echo_%-4s %-13s %10.1f ns/op  server CPU %7.1f ns/op\n' "$r" "$conns" "$name" "$ns" \
                "$(echo "($c1 - $c0) / ($conns * $reps)" | bc -l)"
            echo "tcp_echo_$conns $name $ns" >>"$raw"
        done
    done
done

# Syscalls per round trip: each server again, alone under strace.
declare -A calls
if command -v strace >/dev/null; then
    sport=7620
    for name in "${servers[@]}"; do
        for shape in "1 2000" "10 200"; do
            read -r conns reps <<<"$shape"
            sport=$((sport + 1))
            trace=$(mktemp)
            case $name in
                solo) cmd=(target/release/examples/echo "127.0.0.1:$sport") ;;
                tokio) cmd=(target/release/examples/echo_tokio "127.0.0.1:$sport") ;;
                monoio) cmd=(target/peers/release/echo "127.0.0.1:$sport" --threads 1) ;;
                monoio_epoll) cmd=(env MONOIO_FORCE_LEGACY_DRIVER=1 target/peers/release/echo "127.0.0.1:$sport" --threads 1) ;;
            esac
            strace -f -c -o "$trace" "${cmd[@]}" >/dev/null 2>&1 &
            spid=$!
            for _ in $(seq 100); do
                (exec 3<>"/dev/tcp/127.0.0.1/$sport") 2>/dev/null && break
                sleep 0.1
            done
            # The census counts this probe's connection and accept too: a few calls in thousands.
            "$load" "127.0.0.1:$sport" --conns "$conns" --rounds "$reps" >/dev/null
            # End the server (strace then writes its census and exits).
            pkill -TERM -P "$spid" 2>/dev/null || true
            wait "$spid" 2>/dev/null || true
            total=$(awk '$NF == "total" {print $(NF - 2)}' "$trace")
            top=$(awk 'NR > 2 && $1 !~ /^-/ && $NF != "total" {print $NF "=" ($4 ~ /^[0-9]+$/ ? $4 : $4)}' "$trace" |
                sort -t= -k2,2nr | head -4 | paste -sd' ' -)
            calls[$conns,$name]=$(echo "$total / ($conns * $reps)" | bc -l)
            printf 'syscalls  tcp_echo_%-4s %-13s %6.2f per round trip  (%s, for %d round trips)\n' \
                "$conns" "$name" "${calls[$conns,$name]}" "$top" $((conns * reps))
            rm -f "$trace"
        done
    done
fi

median() { # workload server
    awk -v w="$1" -v s="$2" '$1 == w && $2 == s {print $3}' "$raw" | sort -g |
        awk '{v[NR] = $1} END {print (NR % 2 ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2)}'
}
range() {
    awk -v w="$1" -v s="$2" '$1 == w && $2 == s {print $3}' "$raw" | sort -g | sed -n '1p;$p' | paste -sd'-' -
}

mkdir -p benches/results
csv=benches/results/echo_vs.csv
echo "workload,solo_ns_per_op,tokio_ns_per_op,ratio,monoio_ns_per_op,monoio_ratio,monoio_epoll_ns_per_op,monoio_epoll_ratio" >"$csv"
echo
printf '%-14s %12s %12s %12s %12s %8s %8s %8s\n' workload solo tokio monoio monoio_epoll tokio/solo monoio/solo epoll/solo
for conns in 1 10 100; do
    w=tcp_echo_$conns
    s=$(median "$w" solo); t=$(median "$w" tokio); m=$(median "$w" monoio); e=$(median "$w" monoio_epoll)
    rt=$(echo "$t / $s" | bc -l); rm=$(echo "$m / $s" | bc -l); re=$(echo "$e / $s" | bc -l)
    printf '%-14s %12.1f %12.1f %12.1f %12.1f %8.2f %8.2f %8.2f\n' "$w" "$s" "$t" "$m" "$e" "$rt" "$rm" "$re"
    printf '%s,%.1f,%.1f,%.3f,%.1f,%.3f,%.1f,%.3f\n' "$w" "$s" "$t" "$rt" "$m" "$rm" "$e" "$re" >>"$csv"
done
# Rows of the same shape for the server's CPU per round trip and its syscalls per round trip.
row() { # workload solo tokio monoio monoio_epoll
    local w=$1 s=$2 t=$3 m=$4 e=$5
    printf '%-24s %12.2f %12.2f %12.2f %12.2f %8.2f %8.2f %8.2f\n' "$w" "$s" "$t" "$m" "$e" \
        "$(echo "$t / $s" | bc -l)" "$(echo "$m / $s" | bc -l)" "$(echo "$e / $s" | bc -l)"
    printf '%s,%.2f,%.2f,%.3f,%.2f,%.3f,%.2f,%.3f\n' "$w" "$s" "$t" "$(echo "$t / $s" | bc -l)" \
        "$m" "$(echo "$m / $s" | bc -l)" "$e" "$(echo "$e / $s" | bc -l)" >>"$csv"
}
for conns in 1 10 100; do
    per=()
    for name in "${servers[@]}"; do per+=("$(echo "${cpu[$conns,$name]} / ${ops[$conns,$name]}" | bc -l)"); done
    row "tcp_echo_${conns}_server_cpu" "${per[@]}"
done
for conns in 1 10; do
    [[ -n ${calls[$conns,solo]:-} ]] || continue
    row "tcp_echo_${conns}_syscalls" "${calls[$conns,solo]}" "${calls[$conns,tokio]}" \
        "${calls[$conns,monoio]}" "${calls[$conns,monoio_epoll]}"
done
echo
echo "ranges over $rounds rounds (ns/op):"
for conns in 1 10 100; do
    for name in "${servers[@]}"; do
        printf '  tcp_echo_%-4s %-13s %s\n' "$conns" "$name" "$(range "tcp_echo_$conns" "$name")"
    done
done
echo "wrote $csv"
