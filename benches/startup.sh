#!/usr/bin/env bash
# Whole-process start-up benchmark: `kata-runtime --version` against a hello-world Rust
# binary built with the same release profile. Prints medians, the ratio and peak RSS.
# Usage: benches/startup.sh   (RUNS=N to change the number of runs; default 200)
set -euo pipefail
source "$(dirname "$0")/common.sh"
build_binaries
floor=$(median_us "$HELLO")
ver=$(median_us "$KATA" --version)
printf '%-28s %10s %8s %10s\n' command median_us ratio peak_rss_KiB
printf '%-28s %10s %8s %10s\n' "hello-world (floor)" "$floor" "1.00" "$(peak_rss_kib "$HELLO")"
printf '%-28s %10s %8.2f %10s\n' "kata-runtime --version" "$ver" "$(awk -v a="$ver" -v b="$floor" 'BEGIN{print a/b}')" "$(peak_rss_kib "$KATA" --version)"
printf 'binary size (stripped): %s bytes\n' "$(stat -c %s "$KATA")"
