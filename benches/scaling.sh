#!/usr/bin/env bash
# Scaling out: echo, hello_http and kv on 1, 2, 4 … up to the machine's cores (nproc), on solo
# (--shards N, both ways of sharing the port: --share reuseport and --share acceptor), tokio's
# multi-thread runtime (--threads N workers) and monoio thread-per-core (--threads N runtimes).
#
#     bash benches/scaling.sh [--secs S] [--rounds R] [--only echo,http,kv]
#                             [--runtimes solo,tokio,monoio] [--max N] [--conns C] [--no-imbalance]
#
# Defaults: 5 s per run, 3 rounds, 256 connections, every workload and runtime, N up to nproc.
# Within a round the runtimes take turns at each N, so slow and fast moments of a shared
# machine hit them alike; the CSV has the median of the rounds and their range.
#
# Load: benches/monoio's echo_load for echo (C connections doing 1 KiB round trips, driven
# through epoll by a few threads), wrk for hello_http, redis-benchmark for kv (SET and GET,
# -P 16, random keys from a space of 100,000 so that they spread over shards and stripes).
# Servers run on cores 0..N-1 and the load generator on the cores left (taskset); where no
# core is left (N = nproc), the load runs on every core, competing with the servers, and the
# CSV says so (pinned = no).
#
# Prints throughput per core count and efficiency against linear, throughput(N) /
# (N × throughput(1)), for each runtime, and writes benches/results/scaling.csv:
#     workload,runtime,cores,throughput,efficiency,pinned,rounds,min,max
# throughput (the median) is round trips/s (echo) or requests/s (http, kv_set, kv_get). Then
# benches/scaling_chart.py draws benches/results/scaling.svg from it.
#
# Imbalance: for each solo sharing mode and each N >= 2, hello_http under wrk with 1,000
# connections, then SIGTERM; the server's per-shard counts of accepted connections (the
# summary it prints as it stops, `shard I: N accepted, M open`) give max/min connections per shard,
# written to benches/results/scaling_imbalance.csv: mode,shards,accepted_per_shard,max_over_min.
#
# solo's --shards/--share flags: the script looks for them in examples/echo.rs, hello_http.rs
# and kv.rs; an example without them runs at N = 1 only, as a single loop (runtime "solo").
# Needs wrk, redis-benchmark (Debian's wrk, redis-tools) and taskset; builds what it runs.
set -euo pipefail
cd "$(dirname "$0")/.."
root=$PWD

secs=5
rounds=3
only="echo,http,kv"
runtimes="solo,tokio,monoio"
max=$(nproc)
conns=256
imbalance=yes
while (($#)); do
    case $1 in
        --secs) secs=$2; shift 2 ;;
        --rounds) rounds=$2; shift 2 ;;
        --only) only=$2; shift 2 ;;
        --runtimes) runtimes=$2; shift 2 ;;
        --max) max=$2; shift 2 ;;
        --conns) conns=$2; shift 2 ;;
        --no-imbalance) imbalance=no; shift ;;
        *) echo "unknown argument $1 (see the head of $0)" >&2; exit 2 ;;
    esac
done
for tool in wrk redis-benchmark taskset; do
    command -v "$tool" >/dev/null || { echo "needs $tool (apt-get install wrk redis-tools util-linux)" >&2; exit 1; }
done
ulimit -n 65536 2>/dev/null || ulimit -n "$(ulimit -Hn)"

cargo build --release --quiet --features hyper \
    --example echo --example hello_http --example kv \
    --example echo_tokio --example hello_http_tokio --example kv_tokio
cargo build --release --quiet --manifest-path benches/monoio/Cargo.toml --target-dir target/peers
ex=target/release/examples
peers=target/peers/release

cores=$(nproc)
counts=()
for ((n = 1; n <= max && n <= cores; n *= 2)); do counts+=("$n"); done
last=$((max < cores ? max : cores))
[[ ${counts[-1]} -ne $last ]] && counts+=("$last")

# Which solo examples take --shards (another part of the work adds it; until then, N = 1).
declare -A sharded
for ex_name in echo hello_http kv; do
    if grep -q -- '--shards' "examples/$ex_name.rs" && grep -q -- '--share' "examples/$ex_name.rs"; then
        sharded[$ex_name]=yes
    else
        sharded[$ex_name]=no
    fi
done

raw=$(mktemp)
log=$(mktemp)
server_pid=
stop_server() {
    if [[ -n $server_pid ]]; then
        kill -TERM "$server_pid" 2>/dev/null || true
        for _ in $(seq 50); do kill -0 "$server_pid" 2>/dev/null || break; sleep 0.1; done
        kill -KILL "$server_pid" 2>/dev/null || true
        wait "$server_pid" 2>/dev/null || true
        server_pid=
    fi
}
trap 'stop_server; rm -f "$raw" "$log"' EXIT

# The cores of the servers and of the load for N server threads.
server_cpus() { echo "0-$(($1 - 1))"; }
load_cpus() { if (($1 < cores)); then echo "$1-$((cores - 1))"; else echo "0-$((cores - 1))"; fi; }
load_threads() { local free=$((cores - $1)); echo $((free > 0 ? free : 1)); }

# start_server PORT CPUS COMMAND...: starts it in the background and waits until it accepts.
start_server() {
    local port=$1 cpus=$2; shift 2
    taskset -c "$cpus" "$@" >"$log" 2>&1 &
    server_pid=$!
    for _ in $(seq 100); do
        if (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then return 0; fi
        kill -0 "$server_pid" 2>/dev/null || break
        sleep 0.1
    done
    echo "server did not start: $*" >&2
    cat "$log" >&2
    server_pid=
    return 1
}

# The command line of a server: runtime, service (echo, hello_http, kv), N, port.
server_cmd() {
    local rt=$1 svc=$2 n=$3 port=$4 addr="127.0.0.1:$4"
    case $rt in
        solo) echo "$ex/$svc $addr" ;;
        solo-reuseport) echo "$ex/$svc $addr --shards $n --share reuseport" ;;
        solo-acceptor) echo "$ex/$svc $addr --shards $n --share acceptor" ;;
        tokio) echo "$ex/${svc}_tokio $addr --threads $n" ;;
        monoio) echo "$peers/$svc $addr --threads $n" ;;
    esac
}

# The runtimes to run for a service at N.
runtimes_for() {
    local svc=$1 n=$2 out=()
    for rt in ${runtimes//,/ }; do
        if [[ $rt == solo ]]; then
            if [[ ${sharded[$svc]} == yes ]]; then
                out+=(solo-reuseport solo-acceptor)
            elif ((n == 1)); then
                out+=(solo)
            fi
        else
            out+=("$rt")
        fi
    done
    echo "${out[@]}"
}

# run_load SERVICE N PORT: prints "workload throughput" lines.
run_load() {
    local svc=$1 n=$2 port=$3 cpus threads
    cpus=$(load_cpus "$n")
    threads=$(load_threads "$n")
    case $svc in
        echo)
            local out
            out=$(taskset -c "$cpus" "$peers/echo_load" "127.0.0.1:$port" --conns "$conns" \
                --threads "$threads" --secs "$secs" || true)
            echo "echo $(awk '/^rps/ {print $2}' <<<"$out")"
            ;;
        hello_http)
            local out
            out=$(taskset -c "$cpus" wrk -t"$threads" -c"$conns" -d"${secs}s" "http://127.0.0.1:$port/" || true)
            if grep -q 'Non-2xx\|Socket errors' <<<"$out"; then
                echo "wrk saw errors against port $port:" >&2
                grep 'Non-2xx\|Socket errors' <<<"$out" >&2
            fi
            echo "http $(awk '/^Requests\/sec/ {print $2}' <<<"$out")"
            ;;
        kv)
            # About secs seconds per test at a million requests per second per server core.
            local requests=$((secs * 1000000 * n / 2)) out
            out=$(taskset -c "$cpus" redis-benchmark -p "$port" -t set,get -n "$requests" \
                -c "$conns" -P 16 -r 100000 --threads "$threads" -q 2>/dev/null | tr '\r' '\n' || true)
            echo "kv_set $(grep -o 'SET: [0-9.]*' <<<"$out" | tail -1 | cut -d' ' -f2)"
            echo "kv_get $(grep -o 'GET: [0-9.]*' <<<"$out" | tail -1 | cut -d' ' -f2)"
            ;;
    esac
}

# The per-shard accept counts in a server's output, space-separated: from the lines that name a
# shard, the number before "accepted" (`  shard   0:       498 accepted,       0 open`, as
# solo::shards' Port::summary writes them).
shard_counts() {
    grep -iE '^ *shard +[0-9]+:' "$1" | grep -oE '[0-9]+ +accepted' |
        grep -oE '[0-9]+' | paste -sd' ' - || true
}

declare -A svc_of=([echo]=echo [http]=hello_http [kv]=kv)
port=7700
echo "machine: $cores cores; server core counts: ${counts[*]}; $secs s per run, $conns connections"
for short in ${only//,/ }; do
    svc=${svc_of[$short]:?unknown workload $short (echo, http, kv)}
    for n in "${counts[@]}"; do
        pinned=$( ((n < cores)) && echo yes || echo no)
        for ((round = 1; round <= rounds; round++)); do
            for rt in $(runtimes_for "$svc" "$n"); do
                port=$((port + 1))
                # shellcheck disable=SC2046
                start_server "$port" "$(server_cpus "$n")" $(server_cmd "$rt" "$svc" "$n" "$port") || continue
                while read -r workload value; do
                    if [[ -z $value ]]; then
                        echo "  $workload $rt N=$n: no result" >&2
                        continue
                    fi
                    printf '  round %d %-7s %-15s N=%-3d %12.0f /s  (load pinned away: %s)\n' \
                        "$round" "$workload" "$rt" "$n" "$value" "$pinned"
                    echo "$workload,$rt,$n,$value,$pinned" >>"$raw"
                done < <(run_load "$svc" "$n" "$port")
                stop_server
            done
        done
    done
done

mkdir -p benches/results
csv=benches/results/scaling.csv
echo "workload,runtime,cores,throughput,efficiency,pinned,rounds,min,max" >"$csv"
# The median of each workload, runtime and N (rows sorted by key, then by value), then the
# efficiency against the same runtime's N = 1.
sort -t, -k1,1 -k2,2 -k3,3n -k4,4g "$raw" | awk -F, '
    function flush() {
        if (n == 0) return;
        med = (n % 2) ? v[(n + 1) / 2] : (v[n / 2] + v[n / 2 + 1]) / 2;
        out[++rows] = k[1] "," k[2] "," k[3] "," med "," pin "," n "," v[1] "," v[n];
        if (k[3] == 1) base[k[1] "," k[2]] = med;
        n = 0;
    }
    { key = $1 "," $2 "," $3; if (key != last) { flush(); last = key; split(key, k, ",") } v[++n] = $4; pin = $5 }
    END {
        flush();
        for (i = 1; i <= rows; i++) {
            split(out[i], f, ",");
            b = base[f[1] "," f[2]];
            eff = b > 0 ? sprintf("%.3f", f[4] / (f[3] * b)) : "";
            printf "%s,%s,%s,%.0f,%s,%s,%s,%.0f,%.0f\n", f[1], f[2], f[3], f[4], eff, f[5], f[6], f[7], f[8];
        }
    }' >>"$csv"

echo
echo "throughput per second (efficiency against linear: throughput(N) / (N x throughput(1)))"
python3 benches/scaling_chart.py --table "$csv"

if [[ $imbalance == yes && ${sharded[hello_http]} == yes && $runtimes == *solo* ]]; then
    icsv=benches/results/scaling_imbalance.csv
    echo "mode,shards,accepted_per_shard,max_over_min" >"$icsv"
    echo
    echo "imbalance: hello_http under wrk -c 1000, accepted connections per shard"
    for n in "${counts[@]}"; do
        ((n >= 2)) || continue
        for mode in reuseport acceptor; do
            port=$((port + 1))
            # shellcheck disable=SC2046
            start_server "$port" "$(server_cpus "$n")" $(server_cmd "solo-$mode" hello_http "$n" "$port") || continue
            taskset -c "$(load_cpus "$n")" wrk -t"$(load_threads "$n")" -c1000 -d"${secs}s" \
                "http://127.0.0.1:$port/" >/dev/null
            stop_server
            counts_line=$(shard_counts "$log")
            if [[ -z $counts_line ]]; then
                echo "  $mode N=$n: the server printed no per-shard accept counts" >&2
                continue
            fi
            ratio=$(tr ' ' '\n' <<<"$counts_line" | awk 'NR == 1 || $1 > mx {mx = $1} NR == 1 || $1 < mn {mn = $1} END {print (mn > 0 ? sprintf("%.2f", mx / mn) : "inf")}')
            printf '  %-9s N=%-3d accepted per shard: %s  max/min %s\n' "$mode" "$n" "$counts_line" "$ratio"
            echo "$mode,$n,${counts_line// /;},$ratio" >>"$icsv"
        done
    done
fi

python3 benches/scaling_chart.py "$csv" benches/results/scaling.svg
echo "wrote $csv and benches/results/scaling.svg"
