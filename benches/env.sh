#!/usr/bin/env bash
# Whole-process benchmark of `kata-runtime env --json` against a hello-world Rust binary built
# with the same release profile (the floor). The fake host is the intel-vmx test fixture with
# the shipped qemu configuration; the hypervisor is a stand-in that exits at once (the
# hello-world binary itself), so the ratio shows env's own cost plus one process start.
# A second line uses the dragonball configuration, which has no hypervisor binary to ask:
# env's cost with no child process at all.
# Usage: benches/env.sh   (RUNS=N to change the number of runs; default 200)
set -euo pipefail
source "$(dirname "$0")/common.sh"
build_binaries
# The target dir may be shared with other checkouts: keep this build's binary.
cp "$KATA" "$BENCH_TMP/kata-runtime"
KATA="$BENCH_TMP/kata-runtime"

SHARED="$BENCH_ROOT/../shared/configs/kata-3.0.0"
[ -d "$SHARED" ] || SHARED="$BENCH_ROOT/../../shared/configs/kata-3.0.0"

# make_root DIR CONFIG: the fixture host with CONFIG installed and stand-in assets.
make_root() {
    local root=$1 config=$2
    mkdir -p "$root"
    cp -r "$BENCH_ROOT/tests/fixtures/env/hosts/intel-vmx/." "$root/"
    mkdir -p "$root/etc/kata-containers" "$root/opt/kata/bin" "$root/opt/kata/libexec" \
        "$root/opt/kata/share/kata-containers"
    sed -e 's#"/usr/bin/#"/opt/kata/bin/#g' \
        -e 's#"/usr/share/kata-containers/#"/opt/kata/share/kata-containers/#g' \
        -e 's#"/usr/libexec/#"/opt/kata/libexec/#g' \
        "$SHARED/configuration-$config.toml" >"$root/etc/kata-containers/configuration.toml"
    echo kernel >"$root/opt/kata/share/kata-containers/vmlinux.container"
    echo image >"$root/opt/kata/share/kata-containers/kata-containers.img"
    cp "$HELLO" "$root/opt/kata/bin/qemu-system-x86_64"
    cp "$HELLO" "$root/opt/kata/libexec/virtiofsd"
}

make_root "$BENCH_TMP/qemu-root" qemu
make_root "$BENCH_TMP/dragonball-root" dragonball
KATA_HOST_ROOT="$BENCH_TMP/qemu-root" "$KATA" env --json >/dev/null  # fail early if broken

floor=$(median_us "$HELLO")
qemu=$(KATA_HOST_ROOT="$BENCH_TMP/qemu-root" median_us "$KATA" env --json)
db=$(KATA_HOST_ROOT="$BENCH_TMP/dragonball-root" median_us "$KATA" env --json)
toml=$(KATA_HOST_ROOT="$BENCH_TMP/qemu-root" median_us "$KATA" env)
ratio() { awk -v a="$1" -v b="$floor" 'BEGIN{printf "%.2f", a/b}'; }
printf '%-44s %10s %8s %10s\n' command median_us ratio peak_rss_KiB
printf '%-44s %10s %8s %10s\n' "hello-world (floor)" "$floor" "1.00" "$(peak_rss_kib "$HELLO")"
printf '%-44s %10s %8s %10s\n' "env --json (qemu, stand-in hypervisor)" "$qemu" "$(ratio "$qemu")" \
    "$(KATA_HOST_ROOT="$BENCH_TMP/qemu-root" peak_rss_kib "$KATA" env --json)"
printf '%-44s %10s %8s %10s\n' "env (TOML, qemu, stand-in hypervisor)" "$toml" "$(ratio "$toml")" \
    "$(KATA_HOST_ROOT="$BENCH_TMP/qemu-root" peak_rss_kib "$KATA" env)"
printf '%-44s %10s %8s %10s\n' "env --json (dragonball, no child process)" "$db" "$(ratio "$db")" \
    "$(KATA_HOST_ROOT="$BENCH_TMP/dragonball-root" peak_rss_kib "$KATA" env --json)"
