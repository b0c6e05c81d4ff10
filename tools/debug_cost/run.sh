#!/usr/bin/env bash
# What debug mode costs, measured against solo with debug mode compiled out.
#
#     bash tools/debug_cost/run.sh
#
# It copies the crate to a temporary folder, removes debug mode from the copy's hot paths (every
# `self.debug` test becomes a constant), and runs the call_soon chain (1,000,000) and spawn
# (10,000 tasks) workloads on three loops in one process, alternately: the copy, solo with debug
# mode off, solo with debug mode on. Medians of 24 rounds.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
mkdir -p "$work/nodebug" "$work/bench/src"
cp -r "$root/src" "$root/Cargo.toml" "$work/nodebug/"
sed -i 's/^version = .*/version = "0.0.0-nodebug"/; /^\[\[/,$d' "$work/nodebug/Cargo.toml"
python3 - "$work/nodebug/src/event_loop.rs" <<'PY'
import sys
p = sys.argv[1]
s = open(p).read()
s = s.replace("if let Some(d) = &self.debug {", "if let Some(d) = None::<&Box<Debug>> {")
s = s.replace("self.debug.is_some()", "false").replace("self.debug.is_none()", "true")
open(p, "w").write(s)
PY
cat > "$work/bench/Cargo.toml" <<TOML
[package]
name = "debug-cost"
version = "0.1.0"
edition = "2021"
[dependencies]
nodebug = { package = "solo", path = "$work/nodebug" }
solo = { path = "$root" }
TOML
cp "$here/main.rs" "$work/bench/src/main.rs"
cd "$work/bench"
CARGO_TARGET_DIR="$root/target/debug-cost" cargo run -q --release
