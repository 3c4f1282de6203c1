# Shared helpers for the whole-process benchmarks: build the release binary and a
# hello-world Rust binary with the same profile (the floor), and time commands.
# shellcheck shell=bash

BENCH_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
BENCH_TMP="${BENCH_TMP:-$(mktemp -d)}"
RUNS="${RUNS:-200}"

build_binaries() {
    (cd "$BENCH_ROOT" && cargo build --release --quiet)
    KATA="${CARGO_TARGET_DIR:-$BENCH_ROOT/target}/release/kata-runtime"
    mkdir -p "$BENCH_TMP/hello/src"
    cat >"$BENCH_TMP/hello/Cargo.toml" <<'TOML'
[package]
name = "hello"
version = "0.1.0"
edition = "2024"
[profile.release]
lto = true
codegen-units = 1
panic = "abort"
strip = true
TOML
    echo 'fn main() { println!("hello"); }' >"$BENCH_TMP/hello/src/main.rs"
    (cd "$BENCH_TMP/hello" && CARGO_TARGET_DIR="$BENCH_TMP/hello/target" cargo build --release --quiet)
    HELLO="$BENCH_TMP/hello/target/release/hello"
}

# median_us CMD...: runs CMD $RUNS times and prints the median wall time in microseconds.
median_us() {
    local i t0 t1 times=()
    for ((i = 0; i < RUNS; i++)); do
        t0=$(date +%s%N)
        "$@" >/dev/null 2>&1 || true
        t1=$(date +%s%N)
        times+=($(((t1 - t0) / 1000)))
    done
    printf '%s\n' "${times[@]}" | sort -n | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'
}

# peak_rss_kib CMD...: peak resident set size of one run, in KiB.
peak_rss_kib() {
    /usr/bin/time -f '%M' "$@" 2>&1 >/dev/null | tail -n 1
}
