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

# median_us CMD...: runs CMD $RUNS times (after 3 warm-up runs) and prints the median wall
# time in microseconds. CMD may be a shell function. The clock is bash 5's $EPOCHREALTIME,
# read without starting a process, so the reads cost next to nothing inside the window.
median_us() {
    local i t0 t1 times=()
    for ((i = 0; i < 3; i++)); do "$@" >/dev/null 2>&1 || true; done
    for ((i = 0; i < RUNS; i++)); do
        t0=${EPOCHREALTIME/[.,]/}
        "$@" >/dev/null 2>&1 || true
        t1=${EPOCHREALTIME/[.,]/}
        times+=($((10#$t1 - 10#$t0)))
    done
    printf '%s\n' "${times[@]}" | sort -n | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'
}

# median_pair_us A B: runs the commands (or shell functions) A and B alternately $RUNS times
# each and prints "median_A median_B" in microseconds. Alternating makes both see the same
# background load, so their ratio holds on a busy machine where two separate series drift.
median_pair_us() {
    local i t0 t1 a=() b=()
    for ((i = 0; i < 3; i++)); do "$1" >/dev/null 2>&1 || true; "$2" >/dev/null 2>&1 || true; done
    for ((i = 0; i < RUNS; i++)); do
        t0=${EPOCHREALTIME/[.,]/}
        "$1" >/dev/null 2>&1 || true
        t1=${EPOCHREALTIME/[.,]/}
        a+=($((10#$t1 - 10#$t0)))
        t0=${EPOCHREALTIME/[.,]/}
        "$2" >/dev/null 2>&1 || true
        t1=${EPOCHREALTIME/[.,]/}
        b+=($((10#$t1 - 10#$t0)))
    done
    local med='{x[NR]=$1} END {print x[int((NR+1)/2)]}'
    echo "$(printf '%s\n' "${a[@]}" | sort -n | awk "$med") $(printf '%s\n' "${b[@]}" | sort -n | awk "$med")"
}

# peak_rss_kib CMD...: peak resident set size of one run, in KiB (GNU time's %M; the
# highest of 5 runs, so a page-cache or scheduling accident does not hide a real peak).
peak_rss_kib() {
    local i m max=0
    for ((i = 0; i < 5; i++)); do
        m=$(/usr/bin/time -f '%M' "$@" 2>&1 >/dev/null | tail -n 1)
        if ((m > max)); then max=$m; fi
    done
    echo "$max"
}
