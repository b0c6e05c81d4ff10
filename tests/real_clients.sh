#!/usr/bin/env bash
# The example servers under clients that nobody here wrote: redis-cli and redis-benchmark against
# examples/kv.rs, curl and wrk against examples/hello_http.rs, curl over TLS (HTTP/2 and HTTP/1.1)
# against examples/https.rs. Run by .ci/run; by hand:
#
#     bash tests/real_clients.sh
#
# Installs Debian's redis-tools, wrk and curl when they are missing (needs apt-get and root).
# Every check prints what it expected and what it got, and the first failure fails the script.
set -euo pipefail
cd "$(dirname "$0")/.."

if ! command -v redis-cli >/dev/null || ! command -v redis-benchmark >/dev/null ||
    ! command -v wrk >/dev/null || ! command -v curl >/dev/null; then
    echo "== installing redis-tools, wrk, curl"
    sudo=""
    if [[ $(id -u) -ne 0 ]]; then sudo=sudo; fi
    for attempt in 1 2 3; do # a mirror's bad moment should not fail the run
        if $sudo apt-get update -qq &&
            $sudo env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq redis-tools wrk curl >/dev/null; then
            break
        fi
        [[ $attempt == 3 ]] && { echo "could not install redis-tools, wrk, curl" >&2; exit 1; }
        sleep 10
    done
fi

cargo build --release --quiet --features hyper --example kv --example hello_http --example https

pids=()
trap 'kill "${pids[@]}" 2>/dev/null || true' EXIT

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
    return 1
}

fail=0
expect() { # description, expected, actual
    if [[ "$2" == "$3" ]]; then
        echo "ok   $1"
    else
        echo "FAIL $1: expected [$2], got [$3]"
        fail=1
    fi
}

# The same checks on each backend, and sharded over two loops in both ways of sharing the port
# (keys of the other shard are forwarded; MSET, MGET, EXISTS and DEL fan out): any difference
# between them is a bug.
for setup in "mio" "polling" "mio --shards 2 --share reuseport" "mio --shards 2 --share acceptor"; do
    read -r backend shard_args <<<"$setup"
    echo "== kv under redis-cli and redis-benchmark, on the $backend backend ${shard_args:+($shard_args)}"
    port=$(free_port)
    # shellcheck disable=SC2086 # shard_args is a list of words
    SOLO_BACKEND=$backend target/release/examples/kv "127.0.0.1:$port" $shard_args >/dev/null &
    pids+=($!)
    wait_for "$port"
    cli() { redis-cli -p "$port" "$@"; }
    expect "PING" "PONG" "$(cli ping)"
    expect "SET" "OK" "$(cli set greeting hello)"
    expect "GET" "hello" "$(cli get greeting)"
    expect "SET EX" "OK" "$(cli set short lived EX 100)"
    expect "GET after SET EX" "lived" "$(cli get short)"
    expect "INCR" "1" "$(cli incr counter)"
    expect "INCR again" "2" "$(cli incr counter)"
    expect "MSET" "OK" "$(cli mset a 1 b 2)"
    expect "MGET" "$(printf '1\n2\n')" "$(cli mget a b missing | head -2)"
    expect "EXISTS" "2" "$(cli exists a b missing)"
    expect "DEL" "1" "$(cli del a missing)"
    expect "ECHO" "hi there" "$(cli echo 'hi there')"
    expect "unknown command" "ERR unknown command 'nope', with args beginning with: 'x'" "$(cli nope x)"
    expect "INCR of a non-number" "ERR value is not an integer or out of range" "$(cli incr greeting)"
    expect "CONFIG GET proto-max-bulk-len" "$(printf 'proto-max-bulk-len\n536870912')" \
        "$(cli config get proto-max-bulk-len)"

    bench=$(redis-benchmark -p "$port" -t set,get,ping -n 200000 -c 50 -P 16 -q 2>&1)
    echo "$bench" | tr '\r' '\n' | grep 'requests per second' || true
    expect "redis-benchmark: four tests finished (PING twice, SET, GET)" "4" \
        "$(echo "$bench" | tr '\r' '\n' | grep -c 'requests per second' || true)"
    expect "redis-benchmark: no errors or warnings" "0" \
        "$(echo "$bench" | grep -ciE 'error|warning' || true)"
    expect "kv still answers after the benchmark" "PONG" "$(cli ping)"
done

echo "== hello_http under curl and wrk"
port=$(free_port)
target/release/examples/hello_http "127.0.0.1:$port" >/dev/null &
pids+=($!)
wait_for "$port"
expect "curl" "Hello, World!" "$(curl -sf "http://127.0.0.1:$port/")"
load=$(wrk -t1 -c50 -d5s "http://127.0.0.1:$port/")
echo "$load" | grep -E 'Requests/sec|requests in'
expect "wrk: no socket errors" "0" "$(echo "$load" | grep -c 'Socket errors' || true)"
expect "wrk: no non-2xx responses" "0" "$(echo "$load" | grep -c 'Non-2xx' || true)"
expect "wrk: requests were served" "yes" \
    "$(echo "$load" | awk '/requests in/ { print ($1 > 1000) ? "yes" : "no" }')"
expect "hello_http still answers after wrk" "Hello, World!" "$(curl -sf "http://127.0.0.1:$port/")"

echo "== https under curl: HTTP/2 and HTTP/1.1 over TLS, chosen by ALPN"
port=$(free_port)
target/release/examples/https "127.0.0.1:$port" >/dev/null &
pids+=($!)
wait_for "$port"
url="https://127.0.0.1:$port/"
# -k: the certificate is self-signed, generated when the server started.
expect "curl --http2" "Hello, HTTP/2.0!" "$(curl -sfk --http2 "$url")"
expect "curl --http2: the protocol curl used" "2" "$(curl -sfk --http2 -o /dev/null -w '%{http_version}' "$url")"
expect "curl --http1.1" "Hello, HTTP/1.1!" "$(curl -sfk --http1.1 "$url")"
expect "curl --http1.1: the protocol curl used" "1.1" "$(curl -sfk --http1.1 -o /dev/null -w '%{http_version}' "$url")"
body=$(mktemp)
head -c 1000000 /dev/urandom >"$body"
for proto in --http2 --http1.1; do
    expect "curl $proto: a 1 MB body echoed intact" "$(sha256sum <"$body")" \
        "$(curl -sfk "$proto" --data-binary "@$body" "$url" | sha256sum)"
done
rm -f "$body"
expect "curl without -k refuses the self-signed certificate" "60" \
    "$(curl -s --http2 -o /dev/null "$url"; echo $?)"
expect "plain HTTP to the TLS port gets no HTTP answer" "" \
    "$(curl -s --max-time 5 "http://127.0.0.1:$port/" 2>/dev/null | head -c 5 | grep HTTP || true)"
expect "https still answers after the bad clients" "Hello, HTTP/2.0!" "$(curl -sfk --http2 "$url")"

exit "$fail"
