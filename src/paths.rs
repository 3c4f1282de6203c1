//! Every host path the tool reads or writes, and the one host root they resolve under.
//!
//! The root is `/` unless the environment variable `KATA_HOST_ROOT` names another
//! directory: a node agent running in a container with the host mounted at `/host` sets
//! `KATA_HOST_ROOT=/host`, and the tests point it at fake hosts in temp dirs. Paths are
//! always *shown* as the host sees them; only file-system access goes through [`HostRoot`].

use std::ffi::OsStr;
use std::io;
use std::path::{Component, Path, PathBuf};

/// Environment variable naming the host root.
pub const HOST_ROOT_ENV: &str = "KATA_HOST_ROOT";

/// First configuration file searched (spec §2.1).
pub const SYSCONF_CONFIG: &str = "/etc/kata-containers/configuration.toml";
/// Second configuration file searched (spec §2.1).
pub const DEFAULT_CONFIG: &str = "/usr/share/defaults/kata-containers/configuration.toml";

pub const PROC_CPUINFO: &str = "/proc/cpuinfo";
pub const PROC_VERSION: &str = "/proc/version";
pub const PROC_MEMINFO: &str = "/proc/meminfo";
pub const ETC_OS_RELEASE: &str = "/etc/os-release";
pub const USR_LIB_OS_RELEASE: &str = "/usr/lib/os-release";
pub const SYS_MODULE: &str = "/sys/module";
pub const SYS_FIRMWARE_TDX: &str = "/sys/firmware/tdx";
/// The TDX module directory the Go 3.0.0 runtime tests for guest protection (spec §4.2).
pub const SYS_FIRMWARE_TDX_SEAM: &str = "/sys/firmware/tdx_seam";
/// The host kernel command line (s390x Secure Execution: `prot_virt=`).
pub const PROC_CMDLINE: &str = "/proc/cmdline";
pub const SYS_KVM_AMD_SEV: &str = "/sys/module/kvm_amd/parameters/sev";
pub const SYS_KVM_INTEL_TDX: &str = "/sys/module/kvm_intel/parameters/tdx";
pub const SYS_FIRMWARE_ULTRAVISOR: &str = "/sys/firmware/ultravisor";
pub const PROC_DEVICE_TREE_IBM_SECURE: &str = "/proc/device-tree/ibm,secure-memory";
pub const DEV_KVM: &str = "/dev/kvm";
pub const DEV_VHOST_VSOCK: &str = "/dev/vhost-vsock";
pub const DEV_ACRN_HSM: &str = "/dev/acrn_hsm";
/// Root of the Go runtime's VM state; `env` shows firecracker's jailed socket under it.
pub const RUN_VC: &str = "/run/vc";
/// The ACRN service module device the 3.0.0 runtime uses (spec §3.6).
pub const DEV_ACRN_VHM: &str = "/dev/acrn_vhm";
/// Go shim (containerd-shim-kata-v2) sandbox state: `<dir>/<id>/shim-monitor.sock`.
pub const RUN_VC_SBS: &str = "/run/vc/sbs";
/// runtime-rs shim sandbox state: `<dir>/<id>/shim-monitor.sock`.
pub const RUN_KATA: &str = "/run/kata";
/// Direct-assigned volume records shared with the shim (spec §6.4).
pub const DIRECT_VOLUMES: &str = "/run/kata-containers/shared/direct-volumes";
/// Run directories of VMs started by `factory` (`<dir>/<id>/qmp.sock`, as the Go runtime).
pub const RUN_VC_VM: &str = "/run/vc/vm";
/// Name of the shim-management socket inside a sandbox directory.
pub const SHIM_MONITOR_SOCKET: &str = "shim-monitor.sock";

/// The directory every host path resolves under.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HostRoot {
    root: PathBuf,
}

impl Default for HostRoot {
    fn default() -> Self {
        Self::new("/")
    }
}

impl HostRoot {
    pub fn new(root: impl Into<PathBuf>) -> Self {
        Self { root: root.into() }
    }

    /// The root named by `KATA_HOST_ROOT`, or `/`.
    pub fn from_env() -> Self {
        match std::env::var_os(HOST_ROOT_ENV) {
            Some(v) if !v.is_empty() => Self::new(PathBuf::from(v)),
            _ => Self::default(),
        }
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    pub fn is_real_root(&self) -> bool {
        self.root == Path::new("/")
    }

    /// Where the host path `p` is on this machine. Relative paths are taken as given.
    pub fn join(&self, p: impl AsRef<Path>) -> PathBuf {
        let p = p.as_ref();
        if self.is_real_root() || !p.is_absolute() {
            return p.to_path_buf();
        }
        let rel: PathBuf = p
            .components()
            .filter(|c| !matches!(c, Component::RootDir | Component::Prefix(_)))
            .collect();
        self.root.join(rel)
    }

    /// Makes the host path `p` absolute and resolves every symlink in it, the way the Go tool
    /// resolves configured paths, but without leaving the host root: an absolute link target
    /// is taken as a host path. The result is a host path (not prefixed with the root).
    pub fn canonicalize(&self, p: impl AsRef<Path>) -> io::Result<PathBuf> {
        let p = p.as_ref();
        let abs = if p.is_absolute() {
            p.to_path_buf()
        } else {
            std::env::current_dir()?.join(p)
        };
        if self.is_real_root() {
            return std::fs::canonicalize(abs);
        }
        let mut out = PathBuf::from("/");
        let mut pending: Vec<std::ffi::OsString> = components_rev(&abs);
        let mut links = 0;
        while let Some(part) = pending.pop() {
            if part == OsStr::new("..") {
                out.pop();
                continue;
            }
            if part == OsStr::new(".") || part.is_empty() {
                continue;
            }
            let candidate = out.join(&part);
            let meta = std::fs::symlink_metadata(self.join(&candidate))?;
            if meta.file_type().is_symlink() {
                links += 1;
                if links > 40 {
                    return Err(io::Error::from_raw_os_error(libc::ELOOP));
                }
                let target = std::fs::read_link(self.join(&candidate))?;
                if target.is_absolute() {
                    out = PathBuf::from("/");
                }
                pending.extend(components_rev(&target));
            } else {
                out = candidate;
            }
        }
        Ok(out)
    }
}

fn components_rev(p: &Path) -> Vec<std::ffi::OsString> {
    let mut v: Vec<std::ffi::OsString> = p
        .components()
        .filter_map(|c| match c {
            Component::Normal(s) => Some(s.to_os_string()),
            Component::ParentDir => Some("..".into()),
            _ => None,
        })
        .collect();
    v.reverse();
    v
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn join_reroots_absolute_paths() {
        let r = HostRoot::new("/host");
        assert_eq!(r.join("/proc/cpuinfo"), PathBuf::from("/host/proc/cpuinfo"));
        assert_eq!(
            HostRoot::default().join("/proc/cpuinfo"),
            PathBuf::from("/proc/cpuinfo")
        );
    }

    #[test]
    fn canonicalize_keeps_absolute_links_inside_the_root() {
        let dir = tempfile::tempdir().unwrap();
        let root = HostRoot::new(dir.path());
        std::fs::create_dir_all(dir.path().join("usr/share/kata")).unwrap();
        std::fs::write(dir.path().join("usr/share/kata/real.toml"), "").unwrap();
        std::fs::create_dir_all(dir.path().join("etc/kata")).unwrap();
        std::os::unix::fs::symlink(
            "/usr/share/kata/real.toml",
            dir.path().join("etc/kata/c.toml"),
        )
        .unwrap();
        assert_eq!(
            root.canonicalize("/etc/kata/c.toml").unwrap(),
            PathBuf::from("/usr/share/kata/real.toml")
        );
        assert!(root.canonicalize("/etc/kata/missing.toml").is_err());
    }
}
