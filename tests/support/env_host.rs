//! Fake hosts for the `env` tests: a fixture root from `tests/fixtures/env/hosts/<name>/`
//! copied into a temp dir, plus a shipped Kata 3.0.0 configuration whose asset paths are
//! rewritten to stand-in files under `/opt/kata` (hypervisor stand-ins are shell scripts that
//! print a version line), and helpers to run the real binary against it.

#![allow(dead_code)]

use std::fs;
use std::os::unix::fs::PermissionsExt as _;
use std::path::{Path, PathBuf};
use std::process::Output;

pub const HOSTS: &[&str] = &[
    "intel-vmx",
    "amd-vm-nosvm",
    "amd-sev-oldkernel",
    "intel-tdx",
];
pub const CONFIGS: &[&str] = &["qemu", "clh", "fc", "acrn", "dragonball"];

/// Where the shipped configuration lands in the fake root (the search path links to it).
pub const INSTALLED_CONFIG_DIR: &str = "/opt/kata/share/defaults/kata-containers";

pub fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/env")
}

/// A shipped Kata 3.0.0 configuration file. The files sit in `../shared/configs/kata-3.0.0`
/// beside the repository (one level further up from a worktree under `wt/`).
pub fn shipped_config(name: &str) -> String {
    let manifest = Path::new(env!("CARGO_MANIFEST_DIR"));
    let file = format!("configuration-{name}.toml");
    let candidates = [
        manifest.join("../shared/configs/kata-3.0.0").join(&file),
        manifest.join("../../shared/configs/kata-3.0.0").join(&file),
    ];
    let p = candidates
        .iter()
        .find(|p| p.exists())
        .unwrap_or_else(|| panic!("{file} not found at {candidates:?}"));
    fs::read_to_string(p).unwrap_or_else(|e| panic!("{}: {e}", p.display()))
}

pub struct FakeHost {
    pub dir: tempfile::TempDir,
}

impl FakeHost {
    /// An empty root.
    pub fn empty() -> Self {
        Self {
            dir: tempfile::tempdir().unwrap(),
        }
    }

    /// A copy of the fixture host `name`.
    pub fn fixture(name: &str) -> Self {
        let h = Self::empty();
        copy_tree(&fixtures().join("hosts").join(name), h.root());
        h
    }

    pub fn root(&self) -> &Path {
        self.dir.path()
    }

    /// The on-disk location of host path `p`.
    pub fn path(&self, p: &str) -> PathBuf {
        self.root().join(p.trim_start_matches('/'))
    }

    pub fn write(&self, p: &str, text: &str) {
        let path = self.path(p);
        fs::create_dir_all(path.parent().unwrap()).unwrap();
        fs::write(path, text).unwrap();
    }

    pub fn script(&self, p: &str, body: &str) {
        self.write(p, &format!("#!/bin/sh\n{body}\n"));
        fs::set_permissions(self.path(p), fs::Permissions::from_mode(0o755)).unwrap();
    }

    pub fn symlink(&self, target: &str, link: &str) {
        let path = self.path(link);
        fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::os::unix::fs::symlink(target, path).unwrap();
    }

    /// Installs the shipped `configuration-<name>.toml` with its assets rewritten to stand-ins,
    /// linked from `/etc/kata-containers/configuration.toml` as a packaged install does.
    pub fn install_config(&self, name: &str) {
        let text = rewrite_assets(&shipped_config(name));
        let installed = format!("{INSTALLED_CONFIG_DIR}/configuration-{name}.toml");
        self.write(&installed, &text);
        self.symlink(&installed, "/etc/kata-containers/configuration.toml");
        self.install_assets();
    }

    /// The stand-in files every rewritten configuration names.
    pub fn install_assets(&self) {
        let share = "/opt/kata/share/kata-containers";
        self.write(&format!("{share}/vmlinux-5.19.2-96"), "kernel stand-in\n");
        self.symlink("vmlinux-5.19.2-96", &format!("{share}/vmlinux.container"));
        self.write(
            &format!("{share}/kata-ubuntu-latest.image"),
            "image stand-in\n",
        );
        self.symlink(
            "kata-ubuntu-latest.image",
            &format!("{share}/kata-containers.img"),
        );
        self.script("/opt/kata/libexec/virtiofsd", "echo virtiofsd 1.6.1");
        self.script(
            "/opt/kata/bin/qemu-system-x86_64",
            "echo 'QEMU emulator version 6.2.0 (kata-static)'\necho 'Copyright (c) 2003-2021 Fabrice Bellard and the QEMU Project developers'",
        );
        self.script(
            "/opt/kata/bin/cloud-hypervisor",
            "echo 'cloud-hypervisor v26.0'",
        );
        self.script(
            "/opt/kata/bin/firecracker",
            "echo 'Firecracker v1.1.0'\necho\necho 'Supported snapshot data format versions: v1.0.0'",
        );
        self.script("/opt/kata/bin/jailer", "echo 'Jailer v1.1.0'");
        // ACRN's device model does not know --version: exit non-zero, as for B.3.
        self.script(
            "/opt/kata/bin/acrn-dm",
            "echo 'acrn-dm: unrecognized option --version' >&2; exit 1",
        );
        self.script("/opt/kata/bin/acrnctl", "exit 0");
    }

    /// Runs `kata-runtime ARGS` with this root.
    pub fn run(&self, args: &[&str]) -> Output {
        std::process::Command::new(env!("CARGO_BIN_EXE_kata-runtime"))
            .args(args)
            .env("KATA_HOST_ROOT", self.root())
            .output()
            .unwrap()
    }

    /// Runs `kata-runtime ARGS`, requires success and returns stdout.
    pub fn stdout(&self, args: &[&str]) -> String {
        let out = self.run(args);
        assert!(
            out.status.success(),
            "{args:?} failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).unwrap()
    }
}

/// `/usr/...` asset paths of a shipped configuration → `/opt/kata/...` stand-ins.
pub fn rewrite_assets(text: &str) -> String {
    text.replace("\"/usr/bin/", "\"/opt/kata/bin/")
        .replace(
            "\"/usr/share/kata-containers/",
            "\"/opt/kata/share/kata-containers/",
        )
        .replace("\"/usr/libexec/", "\"/opt/kata/libexec/")
}

pub fn copy_tree(from: &Path, to: &Path) {
    fs::create_dir_all(to).unwrap();
    for entry in fs::read_dir(from).unwrap_or_else(|e| panic!("{}: {e}", from.display())) {
        let entry = entry.unwrap();
        let dest = to.join(entry.file_name());
        if entry.file_type().unwrap().is_dir() {
            copy_tree(&entry.path(), &dest);
        } else {
            fs::copy(entry.path(), &dest).unwrap();
        }
    }
}

/// The path the binary reports as `Runtime.Path`.
pub fn binary_path() -> String {
    fs::canonicalize(env!("CARGO_BIN_EXE_kata-runtime"))
        .unwrap()
        .display()
        .to_string()
}

pub fn is_root() -> bool {
    // SAFETY: geteuid has no preconditions and cannot fail.
    unsafe { libc::geteuid() == 0 }
}

/// Replaces the values that depend on the build and the machine running the tests with
/// `@NAME@` markers, in either format: `Runtime.Path` (the binary), `Commit`, `CPUs`,
/// `SocketPath` (depends on the effective uid) and `VMContainerCapable` (owned by the
/// `check` probes, tested on its own).
pub fn redact(text: &str) -> String {
    let exe = binary_path();
    let mut out = String::new();
    for line in text.lines() {
        let line = line.replace(&format!("\"{exe}\""), "\"@RUNTIME_PATH@\"");
        let mut replaced = None;
        for key in ["Commit", "CPUs", "SocketPath", "VMContainerCapable"] {
            let marker = format!("\"@{}@\"", key.to_uppercase());
            let indent: String = line.chars().take_while(|c| *c == ' ').collect();
            let rest = &line[indent.len()..];
            if rest.starts_with(&format!("{key} = ")) {
                replaced = Some(format!("{indent}{key} = {marker}"));
            } else if rest.starts_with(&format!("\"{key}\": ")) {
                let comma = if rest.ends_with(',') { "," } else { "" };
                replaced = Some(format!("{indent}\"{key}\": {marker}{comma}"));
            }
        }
        out.push_str(replaced.as_deref().unwrap_or(&line));
        out.push('\n');
    }
    out
}

/// Compares `actual` with the snapshot file, or writes it when `KATA_UPDATE_SNAPSHOTS=1`.
pub fn assert_snapshot(name: &str, actual: &str) {
    let path = fixtures().join("snapshots").join(name);
    if std::env::var_os("KATA_UPDATE_SNAPSHOTS").is_some_and(|v| v == "1") {
        fs::create_dir_all(path.parent().unwrap()).unwrap();
        fs::write(&path, actual).unwrap();
        return;
    }
    let expected = fs::read_to_string(&path).unwrap_or_else(|e| {
        panic!(
            "{}: {e} (run with KATA_UPDATE_SNAPSHOTS=1 to create it)",
            path.display()
        )
    });
    if expected != actual {
        let diff: Vec<String> = expected
            .lines()
            .zip(actual.lines())
            .enumerate()
            .filter(|(_, (e, a))| e != a)
            .take(10)
            .map(|(i, (e, a))| format!("line {}:\n  expected: {e}\n  actual:   {a}", i + 1))
            .collect();
        panic!(
            "{} differs from the output ({} vs {} lines):\n{}",
            path.display(),
            expected.lines().count(),
            actual.lines().count(),
            diff.join("\n")
        );
    }
}
