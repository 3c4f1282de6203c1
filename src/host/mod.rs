//! Host probes: pure parsers over the text of procfs/sysfs/etc files, and thin readers that
//! fetch those files under the host root. Shared by `check` and `env`.

pub mod cpuinfo;
pub mod kvm;
pub mod modules;
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
