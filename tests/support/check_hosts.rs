//! Helpers for the `check` binary tests: copy a fixture host root into a temp dir (so a
//! test may change it), run the real binary against it, and pick apart its stderr.

#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::Output;

pub const CAPABLE: &str = "System is capable of running Kata Containers";
pub const NOT_CAPABLE: &str = "ERROR: System is not capable of running Kata Containers";

pub fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/hosts")
        .join(name)
}

/// Copies `src` into `dst` keeping symlinks as symlinks.
pub fn copy_tree(src: &Path, dst: &Path) {
    std::fs::create_dir_all(dst).unwrap();
    for entry in std::fs::read_dir(src).unwrap() {
        let entry = entry.unwrap();
        let meta = std::fs::symlink_metadata(entry.path()).unwrap();
        let to = dst.join(entry.file_name());
        if meta.file_type().is_symlink() {
            std::os::unix::fs::symlink(std::fs::read_link(entry.path()).unwrap(), &to).unwrap();
        } else if meta.is_dir() {
            copy_tree(&entry.path(), &to);
        } else {
            std::fs::copy(entry.path(), &to).unwrap();
        }
    }
}

/// A private copy of a fixture host.
pub struct Host {
    pub dir: tempfile::TempDir,
    pub arch: &'static str,
}

impl Host {
    pub fn new(name: &str) -> Self {
        let dir = tempfile::tempdir().unwrap();
        copy_tree(&fixture(name), dir.path());
        let arch = if name.starts_with("arm64") {
            "arm64"
        } else {
            "amd64"
        };
        Host { dir, arch }
    }

    pub fn root(&self) -> &Path {
        self.dir.path()
    }

    pub fn path(&self, rel: &str) -> PathBuf {
        self.dir.path().join(rel)
    }

    /// The real binary with this host as `KATA_HOST_ROOT`, no network, no inherited
    /// variables that change `check`.
    pub fn cmd(&self) -> assert_cmd::Command {
        let mut c = assert_cmd::Command::new(env!("CARGO_BIN_EXE_kata-runtime"));
        c.env("KATA_HOST_ROOT", self.root())
            .env("KATA_HOST_ARCH", self.arch)
            .env_remove("KATA_CHECK_NO_NETWORK")
            .env_remove("KATA_RELEASE_URL")
            .env_remove("KATA_RELEASE_TIMEOUT");
        // The release tests talk to a loopback server: no proxy in between.
        for v in [
            "http_proxy",
            "HTTP_PROXY",
            "https_proxy",
            "HTTPS_PROXY",
            "all_proxy",
            "ALL_PROXY",
        ] {
            c.env_remove(v);
        }
        c
    }

    pub fn check(&self, extra: &[&str]) -> Output {
        let mut args = vec!["check", "--no-network-checks"];
        args.extend_from_slice(extra);
        self.cmd().args(&args).output().unwrap()
    }

    pub fn check_json(&self, extra: &[&str]) -> (Output, serde_json::Value) {
        let mut args = vec!["--json"];
        args.extend_from_slice(extra);
        let out = self.check(&args);
        let doc: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
            panic!(
                "stdout is not one JSON document ({e}):\n{}",
                String::from_utf8_lossy(&out.stdout)
            )
        });
        (out, doc)
    }
}

pub fn is_root() -> bool {
    // SAFETY: geteuid has no preconditions and cannot fail.
    unsafe { libc::geteuid() == 0 }
}

pub fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

/// The logrus lines of stderr with their volatile `time=` and `pid=` fields removed.
pub fn log_lines(stderr: &[u8]) -> Vec<String> {
    text(stderr)
        .lines()
        .filter(|l| l.starts_with("time="))
        .map(|l| {
            l.split(' ')
                .filter(|w| !w.starts_with("time=") && !w.starts_with("pid="))
                .collect::<Vec<_>>()
                .join(" ")
        })
        .collect()
}

/// True when some stderr log line has every one of `parts`.
pub fn has_line(stderr: &[u8], parts: &[&str]) -> bool {
    log_lines(stderr)
        .iter()
        .any(|l| parts.iter().all(|p| l.contains(p)))
}

/// Asserts the Go tool's failure shape: log lines, then exactly one plain verdict line last.
pub fn assert_not_capable(out: &Output) {
    assert_eq!(out.status.code(), Some(1), "stderr:\n{}", text(&out.stderr));
    let err = text(&out.stderr);
    let plain: Vec<&str> = err.lines().filter(|l| !l.starts_with("time=")).collect();
    assert_eq!(plain, [NOT_CAPABLE], "stderr:\n{err}");
    assert_eq!(err.lines().last(), Some(NOT_CAPABLE));
    assert!(has_line(
        &out.stderr,
        &["level=error", &format!("msg=\"{NOT_CAPABLE}\"")]
    ));
}

pub fn assert_capable(out: &Output) {
    assert_eq!(out.status.code(), Some(0), "stderr:\n{}", text(&out.stderr));
    assert_eq!(text(&out.stdout), format!("{CAPABLE}\n"));
    assert!(
        !text(&out.stderr).contains("level=error"),
        "stderr:\n{}",
        text(&out.stderr)
    );
}

/// The requirements of a `--json` document as `kind:name` strings, in document order.
pub fn requirement_ids(doc: &serde_json::Value) -> Vec<String> {
    doc["requirements"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| {
            format!(
                "{}:{}",
                r["kind"].as_str().unwrap(),
                r["name"].as_str().unwrap()
            )
        })
        .collect()
}

/// The `kind:name` of the requirements that fail.
pub fn failing_ids(doc: &serde_json::Value) -> Vec<String> {
    doc["requirements"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|r| r["fails"] == true)
        .map(|r| {
            format!(
                "{}:{}",
                r["kind"].as_str().unwrap(),
                r["name"].as_str().unwrap()
            )
        })
        .collect()
}
