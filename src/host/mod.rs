//! Host probes: pure parsers over the text of procfs/sysfs/etc files, and thin readers that
//! fetch those files under the host root. Shared by `check` and `env`.

pub mod cpuinfo;
pub mod kernel;
pub mod meminfo;
pub mod os_release;
pub mod protection;
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
