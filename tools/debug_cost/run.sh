#!/usr/bin/env bash
# What debug mode costs, measured against solo with debug mode compiled out.
#
#     bash tools/debug_cost/run.sh
#
# It copies the crate to a temporary folder, builds the copy with debug mode compiled out (the cfg
# `solo_debug_compiled_out`, set by a build script added to the copy), and runs the call_soon
# chain (1,000,000) and spawn (10,000 tasks) workloads on three loops in one process, alternately: the copy, solo with debug
# mode off, solo with debug mode on. Medians of 24 rounds.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
mkdir -p "$work/nodebug" "$work/bench/src"
cp -r "$root/src" "$root/Cargo.toml" "$work/nodebug/"
# The copy shares the original's solo-macros (two crates of one name and version at two paths
# cannot be in one lock file) and is a workspace of its own, without members.
sed -i 's/^version = .*/version = "0.0.0-nodebug"/; /^\[\[/,$d; /^members = /d' "$work/nodebug/Cargo.toml"
sed -i "s|path = \"solo-macros\"|path = \"$root/solo-macros\"|" "$work/nodebug/Cargo.toml"
# The copy gets a build script that sets `solo_debug_compiled_out`: `Inner::debug()`, the one gate
# of every debug hook, then returns `None` at compile time, and the hooks vanish. The source is
# the same; only the cfg differs.
cat > "$work/nodebug/build.rs" <<'RS'
fn main() {
    println!("cargo::rustc-check-cfg=cfg(solo_debug_compiled_out)");
    println!("cargo::rustc-cfg=solo_debug_compiled_out");
}
RS
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
