#!/usr/bin/env bash
# Syscalls per request, counted by `strace -c -f` on each server while a client drives it:
#   echo  examples/echo.rs on solo (mio, then polling) and examples/echo_tokio.rs, 1 KiB round
#         trips over 1, 10 and 100 connections (a Python client, one thread per connection)
#   kv    examples/kv.rs on solo (mio, then polling), examples/kv_tokio.rs and redis-server,
#         under `redis-benchmark -t set,get -c 50 -P 16` (and -P 1)
# Each count is divided by the requests served; connection set-up and the server's start are in
# the counts too, and come to about 0.01 per request.
#
#     bash benches/syscalls.sh [REQUESTS]               (default 20,000 per echo row; kv rows:
#                                                        5 × REQUESTS at -P 16, REQUESTS at -P 1)
#     bash benches/syscalls.sh --callgrind [REQUESTS]   (user-space instructions per request)
#
# With --callgrind each server runs under `valgrind --tool=callgrind` twice, for a short and a
# long run of the same load, and the difference of the instruction counts is divided by the
# difference of the requests: what one request costs in user space, start-up left out. The
# kernel's side of each syscall is not counted (callgrind sees user space only), which is what
# the syscall table is for.
#
# The solo servers run with SOLO_SPIN_US=0 (kv spins by default): a spin is epoll_wait(0) calls
# made on purpose, and this table is about the calls each request needs. Installs Debian's
# strace, redis-server and redis-tools (and valgrind, for --callgrind) when they are missing
# (needs apt-get and root or sudo).
set -euo pipefail
cd "$(dirname "$0")/.."
callgrind=false
if [[ ${1:-} == --callgrind ]]; then
    callgrind=true
    shift
fi
N=${1:-20000}
KV_N=$((N * 5))

if $callgrind && ! command -v valgrind >/dev/null; then
    echo "== installing valgrind"
    sudo=""
    if [[ $(id -u) -ne 0 ]]; then sudo=sudo; fi
    $sudo apt-get update -qq && $sudo env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq valgrind >/dev/null
fi
if ! command -v strace >/dev/null || ! command -v redis-server >/dev/null ||
    ! command -v redis-benchmark >/dev/null; then
    echo "== installing strace, redis-server, redis-tools"
    sudo=""
    if [[ $(id -u) -ne 0 ]]; then sudo=sudo; fi
    for attempt in 1 2 3; do # a mirror's bad moment should not fail the run
        if $sudo apt-get update -qq &&
            $sudo env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq strace redis-server redis-tools >/dev/null; then
            break
        fi
        [[ $attempt == 3 ]] && { echo "could not install strace, redis-server, redis-tools" >&2; exit 1; }
        sleep 10
    done
fi
cargo build -q --release --example echo --example echo_tokio --example kv --example kv_tokio

out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT

# A free port on 127.0.0.1, picked by the kernel.
free_port() {
    python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

# Waits until something accepts connections on the port (at most 10 s).
wait_for() {
    for _ in $(seq 100); do
        if (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; then return 0; fi
        sleep 0.1
    done
    echo "nothing listens on port $1" >&2
    exit 1
}

echo_client() { # port, connections, round trips per connection
    python3 - "$@" <<'PY'
import socket, sys, threading
port, conns, rounds = int(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3])
def one():
    s = socket.create_connection(("127.0.0.1", port))
    s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    msg = b"x" * 1024
    for _ in range(rounds):
        s.sendall(msg)
        got = 0
        while got < len(msg):
            got += len(s.recv(4096))
    s.close()
threads = [threading.Thread(target=one) for _ in range(conns)]
for t in threads: t.start()
for t in threads: t.join()
PY
}

# Starts a server under strace; sets `server` (strace's pid) and `port`.
start() { # name, command... (the port is appended as the command needs it)
    local name=$1
    shift
    port=$(free_port)
    if [[ $1 == redis-server ]]; then
        strace -f -c -o "$out/$name" "$@" --port "$port" --save "" --appendonly no >/dev/null &
    else
        strace -f -c -o "$out/$name" "$@" "127.0.0.1:$port" >/dev/null &
    fi
    server=$!
    wait_for "$port"
}

# Stops the server (strace then writes its summary) and prints one row: calls per request.
stop() { # name, requests
    local name=$1 requests=$2
    pkill -TERM -P "$server" || true
    wait "$server" 2>/dev/null || true
    awk -v r="$requests" -v name="$name" '
        $NF ~ /^[a-z_0-9]+$/ && $NF != "total" && $4 ~ /^[0-9]+$/ {
            n = $4; c = $NF; t += n
            if (c ~ /^(read|readv|recvfrom|recvmsg)$/) rd += n
            else if (c ~ /^(write|writev|sendto|sendmsg)$/) wr += n
            else if (c ~ /^epoll_(wait|pwait|pwait2)$/) wt += n
            else if (c == "epoll_ctl") ctl += n
            else { other += n; if (n / r >= 0.01) detail = detail sprintf(" %s %.2f", c, n / r) }
        }
        END { printf "| %s | %.3f | %.3f | %.3f | %.3f | %.3f%s | **%.3f** |\n",
                     name, rd / r, wr / r, wt / r, ctl / r, other / r,
                     detail == "" ? "" : " (" substr(detail, 2) ")", t / r }' "$out/$name"
}

header() {
    echo
    echo "$1"
    echo
    echo "| server | read/recv | write/send | epoll_wait | epoll_ctl | other | total |"
    echo "| --- | ---: | ---: | ---: | ---: | ---: | ---: |"
}

# Starts a server under callgrind; sets `server` (valgrind's pid) and `port`.
start_cg() { # command... (as `start`)
    port=$(free_port)
    if [[ $1 == redis-server ]]; then
        valgrind --tool=callgrind --callgrind-out-file=/dev/null "$@" --port "$port" --save "" \
            --appendonly no >/dev/null 2>"$out/cg" &
    else
        valgrind --tool=callgrind --callgrind-out-file=/dev/null "$@" "127.0.0.1:$port" \
            >/dev/null 2>"$out/cg" &
    fi
    server=$!
    wait_for "$port"
}

# Instructions of one run: the server under callgrind, `load PORT REQUESTS` against it.
instructions() { # requests, load function, command...
    local requests=$1 load=$2
    shift 2
    start_cg "$@"
    "$load" "$port" "$requests"
    kill -TERM "$server"
    wait "$server" 2>/dev/null || true
    grep -o 'Collected : [0-9]*' "$out/cg" | awk '{print $3}'
}

# One row: instructions per request, from a run of REQUESTS and one of 6 × REQUESTS.
per_request() { # name, requests, load function, command...
    local name=$1 requests=$2 load=$3
    shift 3
    local short long
    short=$(instructions "$requests" "$load" "$@")
    long=$(instructions $((6 * requests)) "$load" "$@")
    printf '| %s | %d |\n' "$name" $(((long - short) / (5 * requests)))
}

if $callgrind; then
    for conns in 1 10 100; do
        echo
        echo "echo, 1 KiB round trips, $conns connection(s): user-space instructions per request"
        echo
        echo "| server | instructions |"
        echo "| --- | ---: |"
        eval "load_echo() { echo_client \"\$1\" $conns \$((\$2 / $conns)); }"
        n=$((N / 10))
        SOLO_BACKEND=mio per_request solo "$n" load_echo target/release/examples/echo
        SOLO_BACKEND=polling per_request solo_polling "$n" load_echo target/release/examples/echo
        per_request tokio "$n" load_echo target/release/examples/echo_tokio
    done
    for pipeline in 16 1; do
        echo
        echo "kv, redis-benchmark -t set,get -c 50 -P $pipeline: user-space instructions per request"
        echo
        echo "| server | instructions |"
        echo "| --- | ---: |"
        eval "load_kv() { redis-benchmark -p \"\$1\" -t set,get -n \$((\$2 / 2)) -c 50 -P $pipeline -q >/dev/null; }"
        n=$((N * 2))
        [[ $pipeline == 1 ]] && n=$((N / 2))
        SOLO_SPIN_US=0 SOLO_BACKEND=mio per_request kv "$n" load_kv target/release/examples/kv
        per_request kv_tokio "$n" load_kv target/release/examples/kv_tokio
        per_request redis-server "$n" load_kv redis-server
    done
    exit 0
fi

for conns in 1 10 100; do
    header "echo, 1 KiB round trips, $conns connection(s), $N requests: syscalls per request"
    rounds=$((N / conns))
    for name in solo solo_polling tokio; do
        case $name in
        solo) SOLO_BACKEND=mio start "$name" target/release/examples/echo ;;
        solo_polling) SOLO_BACKEND=polling start "$name" target/release/examples/echo ;;
        tokio) start "$name" target/release/examples/echo_tokio ;;
        esac
        echo_client "$port" "$conns" "$rounds"
        stop "$name" $((conns * rounds))
    done
done

for pipeline in 16 1; do
    n=$KV_N
    [[ $pipeline == 1 ]] && n=$((KV_N / 5))
    header "kv, redis-benchmark -t set,get -n $n -c 50 -P $pipeline: syscalls per request"
    for name in kv kv_polling kv_tokio redis-server; do
        case $name in
        kv) SOLO_SPIN_US=0 SOLO_BACKEND=mio start "$name" target/release/examples/kv ;;
        kv_polling) SOLO_SPIN_US=0 SOLO_BACKEND=polling start "$name" target/release/examples/kv ;;
        kv_tokio) start "$name" target/release/examples/kv_tokio ;;
        redis-server) start "$name" redis-server ;;
        esac
        redis-benchmark -p "$port" -t set,get -n "$n" -c 50 -P "$pipeline" -q >/dev/null
        stop "$name" $((2 * n))
    done
done
