#!/usr/bin/env bash
# Shim-client benchmarks (issue 5):
#  1. `direct-volume add` + `remove` cycle against two runs of a hello-world Rust binary
#     (the floor for two process starts), median over RUNS cycles;
#  2. `metrics` on a 50 MiB body from a stand-in shim: wall time, throughput, peak RSS;
#     `curl --unix-socket` on the same body as a reference client when curl is installed.
# Usage: benches/shim.sh   (RUNS=N, default 200; METRICS_MB=N, default 50)
set -euo pipefail
source "$(dirname "$0")/common.sh"
build_binaries
METRICS_MB="${METRICS_MB:-50}"

root="$BENCH_TMP/host"
mkdir -p "$root"
export KATA_HOST_ROOT="$root"

cycle() {
    "$KATA" direct-volume add --volume-path /var/lib/kubelet/pods/p/volumes/kubernetes.io~csi/pvc-1/mount \
        --mount-info '{"volume-type":"block","device":"/dev/sdb","fstype":"ext4","options":["rw"]}'
    "$KATA" direct-volume remove --volume-path /var/lib/kubelet/pods/p/volumes/kubernetes.io~csi/pvc-1/mount
}
hello_twice() { "$HELLO"; "$HELLO"; }

cycle # check it works before timing it
floor=$(median_us hello_twice)
dv=$(median_us cycle)
printf '%-34s %10s %8s\n' command median_us ratio
printf '%-34s %10s %8s\n' "hello-world x2 (floor)" "$floor" "1.00"
printf '%-34s %10s %8.2f\n' "direct-volume add + remove" "$dv" "$(awk -v a="$dv" -v b="$floor" 'BEGIN{print a/b}')"

# metrics on a large body
sock_dir="$root/run/vc/sbs/bench"
mkdir -p "$sock_dir"
size=$((METRICS_MB * 1024 * 1024))
python3 "$(dirname "$0")/fake_shim.py" "$sock_dir/shim-monitor.sock" "$size" >"$BENCH_TMP/shim.log" 2>&1 &
shim_pid=$!
trap 'kill "$shim_pid" 2>/dev/null || true' EXIT
for _ in $(seq 100); do grep -q ready "$BENCH_TMP/shim.log" 2>/dev/null && break; sleep 0.05; done

out_bytes=$("$KATA" metrics bench | wc -c)
[ "$out_bytes" -eq $((size + 1)) ] || { echo "metrics wrote $out_bytes bytes, expected $((size + 1))" >&2; exit 1; }
RUNS_M="${RUNS_M:-10}"
m=$(RUNS="$RUNS_M" median_us "$KATA" metrics bench)
rss=$(/usr/bin/time -f '%M' "$KATA" metrics bench 2>&1 >/dev/null | tail -n 1)
printf '\nmetrics, %s MiB body, median of %s runs (stdout to /dev/null):\n' "$METRICS_MB" "$RUNS_M"
printf '  kata-runtime metrics: %s us, %s MiB/s, peak RSS %s KiB\n' "$m" \
    "$(awk -v us="$m" -v mb="$METRICS_MB" 'BEGIN{printf "%.0f", mb / (us / 1e6)}')" "$rss"
# Through a pipe, as a scraper would read it.
p=$(RUNS="$RUNS_M" median_us sh -c "\"$KATA\" metrics bench | cat >/dev/null")
printf '  kata-runtime metrics | cat: %s us, %s MiB/s\n' "$p" \
    "$(awk -v us="$p" -v mb="$METRICS_MB" 'BEGIN{printf "%.0f", mb / (us / 1e6)}')"
if command -v curl >/dev/null; then
    c=$(RUNS="$RUNS_M" median_us curl -s --unix-socket "$sock_dir/shim-monitor.sock" -o /dev/null http://shim/metrics)
    crss=$(/usr/bin/time -f '%M' curl -s --unix-socket "$sock_dir/shim-monitor.sock" -o /dev/null http://shim/metrics 2>&1 | tail -n 1)
    printf '  curl (reference):     %s us, %s MiB/s, peak RSS %s KiB\n' "$c" \
        "$(awk -v us="$c" -v mb="$METRICS_MB" 'BEGIN{printf "%.0f", mb / (us / 1e6)}')" "$crss"
fi
