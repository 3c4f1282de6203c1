#!/bin/sh
# Cost of `kata-runtime check --no-network-checks` on a fixture host, against a hello-world
# Rust binary built with the same optimisation. Target (issue 3): no more than about 3x.
#
# Usage: benches/check.sh [RUNS]      (default 300 runs each)
# Uses hyperfine when installed (apt-get install hyperfine), else a shell loop timed with
# `date +%s%N`. Honours CARGO_TARGET_DIR. Runs against a private copy of
# tests/fixtures/hosts/intel-vmx, never the real host.
set -eu
cd "$(dirname "$0")/.."
RUNS=${1:-300}
TARGET=${CARGO_TARGET_DIR:-target}

cargo build --release --quiet --bin kata-runtime
BIN=$TARGET/release/kata-runtime

tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
printf 'fn main() {\n    println!("hello world");\n}\n' >"$tmp/hello.rs"
rustc --edition 2024 -C opt-level=3 -C panic=abort -C strip=symbols -o "$tmp/hello" "$tmp/hello.rs"
cp "$BIN" "$tmp/kata-runtime"
cp -a tests/fixtures/hosts/intel-vmx "$tmp/host"

export KATA_HOST_ROOT="$tmp/host" KATA_HOST_ARCH=amd64
unset KATA_RELEASE_URL KATA_CHECK_NO_NETWORK 2>/dev/null || true
# Sanity: the fixture must pass, or we would time an error path.
"$tmp/kata-runtime" check --no-network-checks 2>/dev/null | grep -qx 'System is capable of running Kata Containers'

if command -v hyperfine >/dev/null 2>&1; then
    hyperfine -N --warmup 20 --runs "$RUNS" --export-json "$tmp/h.json" \
        "$tmp/hello" "$tmp/kata-runtime check --no-network-checks" >/dev/null
    python3 - "$tmp/h.json" <<'PY'
import json, sys
r = json.load(open(sys.argv[1]))["results"]
hello, check = r[0]["mean"], r[1]["mean"]
print(f"hello-world:           {hello*1e6:8.0f} us/run (mean, hyperfine)")
print(f"check -n on intel-vmx: {check*1e6:8.0f} us/run (mean, hyperfine)")
print(f"ratio: {check/hello:.2f}x")
PY
    exit 0
fi

time_runs() {
    start=$(date +%s%N)
    i=0
    while [ "$i" -lt "$RUNS" ]; do
        "$@" >/dev/null 2>&1 || true
        i=$((i + 1))
    done
    end=$(date +%s%N)
    echo $(((end - start) / RUNS / 1000))
}

time_runs "$tmp/hello" >/dev/null # warm the page cache
time_runs "$tmp/kata-runtime" check --no-network-checks >/dev/null
hello=$(time_runs "$tmp/hello")
check=$(time_runs "$tmp/kata-runtime" check --no-network-checks)
echo "hello-world:           $hello us/run (mean of $RUNS, shell loop)"
echo "check -n on intel-vmx: $check us/run (mean of $RUNS, shell loop)"
awk -v c="$check" -v h="$hello" 'BEGIN { printf "ratio: %.2fx\n", c / h }'
