//! A fake host for the `factory` tests: a host root in a temp dir with a tiny bootable
//! kernel, an initrd, a `qemu` launcher script and a configuration, plus helpers to run
//! `kata-runtime factory …` against it and to watch the processes it starts.

#![allow(dead_code)]

use std::io::Read as _;
use std::os::unix::fs::PermissionsExt as _;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

/// The binary under test. `KATA_RUNTIME_TEST_BIN` may name a copy of it, for machines
/// where several checkouts share one target directory and rebuild it under running tests.
pub fn bin() -> PathBuf {
    std::env::var_os("KATA_RUNTIME_TEST_BIN")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_BIN_EXE_kata-runtime")))
}
pub const REAL_QEMU: &str = "/usr/bin/qemu-system-x86_64";
/// The socket path as configured (host view).
pub const ENDPOINT: &str = "/run/kata/cache.sock";
pub const TEMPLATE: &str = "/run/vc/vm/template";

/// A flat multiboot kernel: the header asks to be loaded at 1 MiB and entered right after
/// the 32-byte header, where the code is `cli; hlt; jmp $-2` — a guest that idles forever.
/// QEMU's `-kernel` loads multiboot images itself, so nothing else is needed to "boot".
pub fn multiboot_kernel() -> Vec<u8> {
    const MAGIC: u32 = 0x1BAD_B002;
    const FLAGS: u32 = 1 << 16; // the load addresses below are valid
    const BASE: u32 = 0x0010_0000;
    let checksum = 0u32.wrapping_sub(MAGIC.wrapping_add(FLAGS));
    let mut k = Vec::new();
    for word in [MAGIC, FLAGS, checksum, BASE, BASE, 0, 0, BASE + 32] {
        k.extend_from_slice(&word.to_le_bytes());
    }
    k.extend_from_slice(&[0xFA, 0xF4, 0xEB, 0xFD]);
    k
}

pub fn have_qemu() -> bool {
    Path::new(REAL_QEMU).exists()
}

/// `kvm` when QEMU can really use /dev/kvm here, else `tcg`. Opening /dev/kvm is not
/// enough (nested setups may refuse vCPU setup), so a paused QEMU is started for a moment.
pub fn accelerator() -> &'static str {
    static ACCEL: OnceLock<&'static str> = OnceLock::new();
    ACCEL.get_or_init(|| {
        if std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .open("/dev/kvm")
            .is_err()
        {
            return "tcg";
        }
        let dir = tempfile::tempdir().unwrap();
        let kernel = dir.path().join("k");
        std::fs::write(&kernel, multiboot_kernel()).unwrap();
        let mut child = Command::new(REAL_QEMU)
            .args([
                "-machine",
                "q35,accel=kvm",
                "-cpu",
                "host",
                "-m",
                "64M",
                "-S",
            ])
            .args([
                "-display",
                "none",
                "-vga",
                "none",
                "-nodefaults",
                "-no-user-config",
            ])
            .arg("-kernel")
            .arg(&kernel)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        std::thread::sleep(Duration::from_millis(1500));
        let alive = child.try_wait().unwrap().is_none();
        let _ = child.kill();
        let _ = child.wait();
        if alive { "kvm" } else { "tcg" }
    })
}

pub struct Host {
    pub dir: tempfile::TempDir,
}

impl Host {
    /// A host whose `qemu` runs the real QEMU.
    pub fn new() -> Host {
        let h = Host::bare();
        h.qemu_script(&format!("exec {REAL_QEMU} \"$@\""));
        h
    }

    /// A host with kernel and initrd but no `qemu` yet.
    pub fn bare() -> Host {
        let dir = tempfile::Builder::new().prefix("kf").tempdir().unwrap();
        let h = Host { dir };
        std::fs::create_dir_all(h.path("/opt")).unwrap();
        std::fs::create_dir_all(h.path("/etc/kata-containers")).unwrap();
        std::fs::write(h.path("/opt/kernel"), multiboot_kernel()).unwrap();
        std::fs::write(h.path("/opt/initrd"), vec![0x5a; 4096]).unwrap();
        h
    }

    pub fn root(&self) -> &Path {
        self.dir.path()
    }

    /// Where the host path `p` is in the fake root.
    pub fn path(&self, p: &str) -> PathBuf {
        self.root().join(p.trim_start_matches('/'))
    }

    /// `/opt/qemu`: a shell script with `body`.
    pub fn qemu_script(&self, body: &str) {
        let p = self.path("/opt/qemu");
        std::fs::write(&p, format!("#!/bin/sh\n{body}\n")).unwrap();
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o755)).unwrap();
    }

    /// Writes the configuration with this `[factory]` body.
    pub fn config(&self, factory: &str) {
        let text = format!(
            r#"[hypervisor.qemu]
path = "/opt/qemu"
kernel = "/opt/kernel"
initrd = "/opt/initrd"
machine_type = "q35"
machine_accelerators = "accel={accel}"
kernel_params = "console=ttyS0"
default_memory = 256
default_vcpus = 1
default_maxvcpus = 1
shared_fs = "virtio-9p"

[factory]
vm_cache_endpoint = "{ENDPOINT}"
template_path = "{TEMPLATE}"
{factory}
"#,
            accel = if have_qemu() { accelerator() } else { "tcg" }
        );
        std::fs::write(self.path("/etc/kata-containers/configuration.toml"), text).unwrap();
    }

    pub fn cmd(&self, args: &[&str]) -> Command {
        let mut c = Command::new(bin());
        c.env("KATA_HOST_ROOT", self.root())
            .args(["--log", &self.path("/kata.log").to_string_lossy()])
            .args(args)
            .stdin(Stdio::null());
        c
    }

    pub fn run(&self, args: &[&str]) -> Output {
        self.cmd(args).output().unwrap()
    }

    /// Starts `factory init` in the background.
    pub fn spawn_init(&self) -> Server {
        let child = self
            .cmd(&["factory", "init"])
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        Server { child: Some(child) }
    }

    pub fn endpoint(&self) -> PathBuf {
        self.path(ENDPOINT)
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(self.path("/kata.log")).unwrap_or_default()
    }

    /// The VM directories under `/run/vc/vm` (not the template).
    pub fn vm_dirs(&self) -> Vec<PathBuf> {
        match std::fs::read_dir(self.path("/run/vc/vm")) {
            Ok(rd) => rd
                .flatten()
                .map(|e| e.path())
                .filter(|p| p.file_name().is_some_and(|n| n != "template"))
                .collect(),
            Err(_) => Vec::new(),
        }
    }
}

/// A background `factory init`; on drop it is stopped (SIGTERM, then SIGKILL).
pub struct Server {
    pub child: Option<Child>,
}

impl Server {
    pub fn pid(&self) -> u32 {
        self.child.as_ref().unwrap().id()
    }

    /// Waits for the server to exit; returns its exit code, stdout and stderr.
    pub fn wait(&mut self, limit: Duration) -> (Option<i32>, String, String) {
        let mut child = self.child.take().unwrap();
        let t0 = Instant::now();
        loop {
            if let Some(st) = child.try_wait().unwrap() {
                let mut out = String::new();
                let mut err = String::new();
                child
                    .stdout
                    .take()
                    .unwrap()
                    .read_to_string(&mut out)
                    .unwrap();
                child
                    .stderr
                    .take()
                    .unwrap()
                    .read_to_string(&mut err)
                    .unwrap();
                return (st.code(), out, err);
            }
            if t0.elapsed() > limit {
                let _ = child.kill();
                let _ = child.wait();
                panic!("factory init did not exit within {limit:?}");
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    pub fn sigkill(&mut self) {
        let mut child = self.child.take().unwrap();
        child.kill().unwrap();
        child.wait().unwrap();
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = nix::sys::signal::kill(
                nix::unistd::Pid::from_raw(c.id() as i32),
                nix::sys::signal::Signal::SIGTERM,
            );
            let t0 = Instant::now();
            while t0.elapsed() < Duration::from_secs(10) {
                if c.try_wait().ok().flatten().is_some() {
                    return;
                }
                std::thread::sleep(Duration::from_millis(20));
            }
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

/// Whether `pid` is a live process (a zombie is not).
pub fn alive(pid: i64) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Ok(s) => match s.rfind(')') {
            Some(i) => !matches!(s[i + 1..].trim_start().chars().next(), Some('Z' | 'X')),
            None => false,
        },
        Err(_) => false,
    }
}

/// Polls `f` until it is true or `limit` passes.
pub fn wait_until(limit: Duration, mut f: impl FnMut() -> bool) -> bool {
    let t0 = Instant::now();
    while t0.elapsed() < limit {
        if f() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(25));
    }
    f()
}

pub fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

pub fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}
