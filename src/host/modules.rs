//! Kernel modules for `check` and `env` (spec §3.5): presence under `sys/module/<name>`,
//! parameter values under `sys/module/<name>/parameters/<p>`, and loading a missing module
//! with `modprobe` behind [`ModuleLoader`] so tests never touch the running kernel.

use std::path::{Path, PathBuf};
use std::process::Command;

use crate::paths::{HostRoot, SYS_MODULE};

/// The host path of a module's directory.
pub fn module_dir(name: &str) -> PathBuf {
    Path::new(SYS_MODULE).join(name)
}

/// The host path of one module parameter.
pub fn parameter_path(module: &str, parameter: &str) -> PathBuf {
    module_dir(module).join("parameters").join(parameter)
}

/// A module counts as present when the kernel lists it under `sys/module` (loaded, or
/// built in with parameters).
pub fn module_present(host: &HostRoot, name: &str) -> bool {
    host.join(module_dir(name)).exists()
}

/// The value of a parameter file as the kernel prints it, without the trailing newline.
pub fn parameter_value(text: &str) -> &str {
    text.trim_end_matches(['\n', '\r'])
}

/// Reads a module parameter. The error names the host path.
pub fn read_parameter(host: &HostRoot, module: &str, parameter: &str) -> Result<String, String> {
    let path = parameter_path(module, parameter);
    std::fs::read_to_string(host.join(&path))
        .map(|t| parameter_value(&t).to_string())
        .map_err(|e| crate::errors::op_path("open", &path, &e))
}

/// Why a module could not be loaded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LoadError {
    /// There is no `modprobe` on `PATH`.
    NoModprobe,
    /// `modprobe` ran and failed.
    Failed { error: String, output: String },
}

/// Loads kernel modules. The real one runs `modprobe`; tests use a recording fake.
pub trait ModuleLoader {
    fn load(&self, module: &str) -> Result<(), LoadError>;
}

/// Runs `modprobe <module>` from `PATH`.
#[derive(Debug, Default, Clone, Copy)]
pub struct Modprobe;

impl Modprobe {
    /// The `modprobe` executable on `PATH` (plus the sbin directories, which a non-login
    /// root shell may lack), if any.
    pub fn find() -> Option<PathBuf> {
        let path = std::env::var_os("PATH").unwrap_or_default();
        std::env::split_paths(&path)
            .chain(["/usr/sbin", "/sbin"].map(PathBuf::from))
            .map(|d| d.join("modprobe"))
            .find(|p| is_executable(p))
    }
}

fn is_executable(p: &Path) -> bool {
    use std::os::unix::fs::PermissionsExt as _;
    std::fs::metadata(p).is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
}

impl ModuleLoader for Modprobe {
    fn load(&self, module: &str) -> Result<(), LoadError> {
        let exe = Self::find().ok_or(LoadError::NoModprobe)?;
        let out = Command::new(&exe)
            .arg(module)
            .output()
            .map_err(|e| LoadError::Failed {
                error: crate::errors::op_path("exec", &exe, &e),
                output: String::new(),
            })?;
        if out.status.success() {
            return Ok(());
        }
        let mut output = String::from_utf8_lossy(&out.stdout).into_owned();
        output.push_str(&String::from_utf8_lossy(&out.stderr));
        Err(LoadError::Failed {
            error: out.status.to_string(),
            output: output.trim_end().to_string(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn presence_and_parameters_read_under_the_root() {
        let dir = tempfile::tempdir().unwrap();
        let host = HostRoot::new(dir.path());
        std::fs::create_dir_all(dir.path().join("sys/module/kvm_intel/parameters")).unwrap();
        std::fs::write(
            dir.path()
                .join("sys/module/kvm_intel/parameters/unrestricted_guest"),
            "Y\n",
        )
        .unwrap();
        assert!(module_present(&host, "kvm_intel"));
        assert!(!module_present(&host, "vhost"));
        assert_eq!(
            read_parameter(&host, "kvm_intel", "unrestricted_guest").unwrap(),
            "Y"
        );
        assert_eq!(
            read_parameter(&host, "kvm_intel", "nested").unwrap_err(),
            "open /sys/module/kvm_intel/parameters/nested: no such file or directory"
        );
    }

    #[test]
    fn parameter_value_strips_line_endings_only() {
        assert_eq!(parameter_value("Y\n"), "Y");
        assert_eq!(parameter_value("1\r\n"), "1");
        assert_eq!(parameter_value(" N \n"), " N ");
    }

    proptest! {
        #[test]
        fn parameter_value_never_ends_with_a_line_break(s in ".*") {
            let v = parameter_value(&s);
            prop_assert!(!v.ends_with('\n') && !v.ends_with('\r'));
            prop_assert!(s.starts_with(v));
        }
    }
}
