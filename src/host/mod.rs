//! Host probes: pure parsers over the text of procfs/sysfs/etc files, and thin readers that
//! fetch those files under the host root. Shared by `check` and `env`.

pub mod cpuinfo;
pub mod kernel;
pub mod kvm;
pub mod meminfo;
pub mod modules;
pub mod os_release;
pub mod protection;
pub mod release;
pub mod requirements;

use std::io;
use std::path::Path;

use crate::paths::HostRoot;

/// Reads a host file under the root; the error names the host path (`open /proc/x: ...`).
pub fn read_host_file(host: &HostRoot, path: &str) -> Result<String, String> {
    std::fs::read_to_string(host.join(path))
        .map_err(|e| crate::errors::op_path("open", Path::new(path), &e))
}

/// Like [`read_host_file`], but a missing file is `Ok(None)`.
pub fn read_host_file_opt(host: &HostRoot, path: &str) -> Result<Option<String>, String> {
    match std::fs::read_to_string(host.join(path)) {
        Ok(s) => Ok(Some(s)),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(crate::errors::op_path("open", Path::new(path), &e)),
    }
}

/// Like [`read_host_file_opt`], for files that are only displayed: bytes that are not UTF-8
/// become U+FFFD instead of failing the read.
pub fn read_host_file_lossy_opt(host: &HostRoot, path: &str) -> Result<Option<String>, String> {
    match std::fs::read(host.join(path)) {
        Ok(b) => Ok(Some(match String::from_utf8(b) {
            Ok(s) => s,
            Err(e) => String::from_utf8_lossy(e.as_bytes()).into_owned(),
        })),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(crate::errors::op_path("open", Path::new(path), &e)),
    }
}

/// The Go name (GOARCH) of this build's architecture: `amd64`, `arm64`, `ppc64le`, `s390x`.
pub fn go_arch() -> &'static str {
    match std::env::consts::ARCH {
        "x86_64" => "amd64",
        "aarch64" => "arm64",
        "powerpc64" => "ppc64le",
        "x86" => "386",
        other => other,
    }
}

/// CPUs this process may run on, as Go's `runtime.NumCPU` counts them (the affinity mask).
pub fn usable_cpus() -> u32 {
    nix::sched::sched_getaffinity(nix::unistd::Pid::from_raw(0))
        .map(|set| {
            (0..nix::sched::CpuSet::count())
                .filter(|&i| set.is_set(i).unwrap_or(false))
                .count() as u32
        })
        .ok()
        .filter(|&n| n > 0)
        .unwrap_or(1)
}

/// Total host memory in MiB (sysinfo, as the Go tool reads it).
pub fn host_memory_mib() -> u64 {
    nix::sys::sysinfo::sysinfo()
        .map(|i| i.ram_total() / (1024 * 1024))
        .unwrap_or(0)
}
