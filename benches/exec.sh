#!/usr/bin/env bash
# Console throughput of `kata-runtime exec`: EXEC_BENCH_MB (default 100) MB from a fake
# hybrid-vsock guest through the release binary to /dev/null (stdin on a pty), against a
# plain Unix-socket client copying the same bytes; then a one-shot `cat` through a real
# guest-side pty. Usage: benches/exec.sh   (from anywhere; honours CARGO_TARGET_DIR)
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"
target="${CARGO_TARGET_DIR:-$root/target}"
cargo build --release --quiet
KATA_BENCH_BIN="$target/release/kata-runtime" \
    cargo test --quiet --test exec_bench -- --ignored --nocapture --test-threads=1
