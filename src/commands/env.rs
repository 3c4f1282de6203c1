//! `kata-runtime env` / `kata-env` (spec §4): the effective settings and the host facts, as
//! TOML (default) or JSON (`--json`), in the Go tool's sections, field names, order and
//! layout (format version `1.0.26`). Scripts read it: `kata-collect-data.sh` greps the TOML,
//! test suites run `env --json | jq` (real-peers §7).
//!
//! `env` has no side effects (spec Q28): it never reserves a vsock CID nor loads a module;
//! the only process it starts is `<hypervisor> --version`, bounded by a timeout.

use std::io::Write as _;
use std::path::Path;
use std::time::Duration;

use slog::warn;

use crate::cli::EnvArgs;
use crate::config::{AssetPolicy, Config, HypervisorType};
use crate::context::Context;
use crate::host::{self, cpuinfo, kernel, meminfo, os_release, protection, requirements};
use crate::output::{self, Table, Value};
use crate::paths::{DEV_VHOST_VSOCK, HostRoot, PROC_CPUINFO, PROC_MEMINFO, PROC_VERSION, RUN_VC};
use crate::version::{self, UNKNOWN};

/// `Meta.Version`: the layout version of the Go tool's output.
pub const FORMAT_VERSION: &str = "1.0.26";

/// How long `<hypervisor> --version` may take before it is killed.
pub const VERSION_TIMEOUT: Duration = Duration::from_secs(5);

pub fn run(ctx: &Context, args: &EnvArgs) -> anyhow::Result<()> {
    let cfg = ctx.load_config(AssetPolicy::Require)?;
    let mut warnings = Vec::new();
    let info = collect(ctx, &cfg, &mut warnings);
    for w in &warnings {
        warn!(ctx.log, "{w}");
        eprintln!("kata-runtime: warning: {w}");
    }
    let table = info.to_table();
    let text = if args.json {
        output::to_json(&Value::Table(table))
    } else {
        output::to_toml(&table)
    };
    let mut out = ctx.stdout();
    out.write_all(text.as_bytes())?;
    out.flush()?;
    Ok(())
}

/// Everything `env` shows, in the Go tool's structure.
#[derive(Debug, Clone, PartialEq)]
pub struct EnvInfo {
    pub kernel: KernelInfo,
    pub image_path: String,
    pub initrd_path: String,
    pub hypervisor: HypervisorInfo,
    pub runtime: RuntimeInfo,
    pub host: HostInfo,
    pub agent_debug: bool,
    pub agent_trace: bool,
}

#[derive(Debug, Clone, PartialEq)]
pub struct KernelInfo {
    pub path: String,
    pub parameters: String,
}

#[derive(Debug, Clone, PartialEq)]
pub struct HypervisorInfo {
    pub machine_type: String,
    pub version: String,
    pub path: String,
    pub block_device_driver: String,
    pub entropy_source: String,
    pub shared_fs: String,
    pub virtio_fs_daemon: String,
    pub socket_path: String,
    pub msize_9p: u32,
    pub memory_slots: u32,
    pub pcie_root_port: u32,
    pub hotplug_vfio_on_root_bus: bool,
    pub debug: bool,
}

#[derive(Debug, Clone, PartialEq)]
pub struct RuntimeInfo {
    pub config_path: String,
    pub path: String,
    pub semver: String,
    pub commit: String,
    pub major: u64,
    pub minor: u64,
    pub patch: u64,
    pub debug: bool,
    pub trace: bool,
    pub disable_guest_seccomp: bool,
    pub disable_new_netns: bool,
    pub sandbox_cgroup_only: bool,
}

#[derive(Debug, Clone, PartialEq)]
pub struct HostInfo {
    /// `None` is Go's nil slice: omitted in TOML, `null` in JSON.
    pub available_guest_protections: Option<Vec<String>>,
    pub kernel: String,
    pub architecture: String,
    pub distro_name: String,
    pub distro_version: String,
    pub cpu_vendor: String,
    pub cpu_model: String,
    pub cpus: i64,
    pub memory: meminfo::Memory,
    pub vm_container_capable: bool,
    pub support_vsocks: bool,
}

impl EnvInfo {
    /// The output tree: field names and order of the Go structs (spec §4.2).
    pub fn to_table(&self) -> Table {
        let h = &self.hypervisor;
        let r = &self.runtime;
        let host = &self.host;
        Table::new()
            .with(
                "Kernel",
                Table::new()
                    .with("Path", self.kernel.path.as_str())
                    .with("Parameters", self.kernel.parameters.as_str()),
            )
            .with("Meta", Table::new().with("Version", FORMAT_VERSION))
            .with("Image", Table::new().with("Path", self.image_path.as_str()))
            .with(
                "Initrd",
                Table::new().with("Path", self.initrd_path.as_str()),
            )
            .with(
                "Hypervisor",
                Table::new()
                    .with("MachineType", h.machine_type.as_str())
                    .with("Version", h.version.as_str())
                    .with("Path", h.path.as_str())
                    .with("BlockDeviceDriver", h.block_device_driver.as_str())
                    .with("EntropySource", h.entropy_source.as_str())
                    .with("SharedFS", h.shared_fs.as_str())
                    .with("VirtioFSDaemon", h.virtio_fs_daemon.as_str())
                    .with("SocketPath", h.socket_path.as_str())
                    .with("Msize9p", h.msize_9p)
                    .with("MemorySlots", h.memory_slots)
                    .with("PCIeRootPort", h.pcie_root_port)
                    .with("HotplugVFIOOnRootBus", h.hotplug_vfio_on_root_bus)
                    .with("Debug", h.debug),
            )
            .with(
                "Runtime",
                Table::new()
                    .with("Config", Table::new().with("Path", r.config_path.as_str()))
                    .with("Path", r.path.as_str())
                    // No experimental feature exists in 3.0.0: always Go's nil slice.
                    .with("Experimental", Value::Null)
                    .with(
                        "Version",
                        Table::new().with("OCI", version::OCI_SPEC_VERSION).with(
                            "Version",
                            Table::new()
                                .with("Semver", r.semver.as_str())
                                .with("Commit", r.commit.as_str())
                                .with("Major", r.major)
                                .with("Minor", r.minor)
                                .with("Patch", r.patch),
                        ),
                    )
                    .with("Debug", r.debug)
                    .with("Trace", r.trace)
                    .with("DisableGuestSeccomp", r.disable_guest_seccomp)
                    .with("DisableNewNetNs", r.disable_new_netns)
                    .with("SandboxCgroupOnly", r.sandbox_cgroup_only),
            )
            .with(
                "Host",
                Table::new()
                    .with(
                        "AvailableGuestProtections",
                        match &host.available_guest_protections {
                            Some(list) => {
                                Value::Array(list.iter().map(|p| p.as_str().into()).collect())
                            }
                            None => Value::Null,
                        },
                    )
                    .with("Kernel", host.kernel.as_str())
                    .with("Architecture", host.architecture.as_str())
                    .with(
                        "Distro",
                        Table::new()
                            .with("Name", host.distro_name.as_str())
                            .with("Version", host.distro_version.as_str()),
                    )
                    .with(
                        "CPU",
                        Table::new()
                            .with("Vendor", host.cpu_vendor.as_str())
                            .with("Model", host.cpu_model.as_str())
                            .with("CPUs", host.cpus),
                    )
                    .with(
                        "Memory",
                        Table::new()
                            .with("Total", host.memory.total)
                            .with("Free", host.memory.free)
                            .with("Available", host.memory.available),
                    )
                    .with("VMContainerCapable", host.vm_container_capable)
                    .with("SupportVSocks", host.support_vsocks),
            )
            .with(
                "Agent",
                Table::new()
                    .with("Debug", self.agent_debug)
                    .with("Trace", self.agent_trace),
            )
    }
}

/// Gathers every section. Facts that cannot be read become placeholders and a warning in
/// `warnings` instead of failing the whole report.
pub fn collect(ctx: &Context, cfg: &Config, warnings: &mut Vec<String>) -> EnvInfo {
    let h = &cfg.hypervisor;
    let hypervisor_path = display(&h.path);
    let hypervisor = HypervisorInfo {
        machine_type: h.machine_type.clone(),
        version: if h.path.as_os_str().is_empty() {
            UNKNOWN.to_string()
        } else {
            hypervisor_version(&ctx.host.join(&h.path), VERSION_TIMEOUT)
                .unwrap_or_else(|| UNKNOWN.to_string())
        },
        path: hypervisor_path,
        block_device_driver: h.block_device_driver.clone(),
        entropy_source: h.entropy_source.clone(),
        shared_fs: h.shared_fs.clone(),
        virtio_fs_daemon: h.virtio_fs_daemon.clone(),
        socket_path: socket_path(
            nix::unistd::geteuid().is_root(),
            cfg.hypervisor_type,
            &h.path,
        ),
        msize_9p: h.msize_9p,
        memory_slots: h.memory_slots,
        pcie_root_port: h.pcie_root_port,
        hotplug_vfio_on_root_bus: h.hotplug_vfio_on_root_bus,
        debug: h.debug,
    };
    let (semver, major, minor, patch) = semver_parts(version::VERSION);
    let runtime = RuntimeInfo {
        config_path: cfg.path_for_display(),
        // The running executable, as the Go tool's /proc/self/exe: a property of this
        // process, not of the host root.
        path: match std::env::current_exe() {
            Ok(p) => display(&p),
            Err(e) => {
                warnings.push(format!(
                    "cannot find the path of this executable: {}",
                    crate::errors::os_text(&e)
                ));
                UNKNOWN.to_string()
            }
        },
        semver,
        commit: version::commit_or_unknown().to_string(),
        major,
        minor,
        patch,
        debug: cfg.runtime.debug,
        trace: cfg.runtime.tracing,
        disable_guest_seccomp: cfg.runtime.disable_guest_seccomp,
        disable_new_netns: cfg.runtime.disable_new_netns,
        sandbox_cgroup_only: cfg.runtime.sandbox_cgroup_only,
    };
    EnvInfo {
        kernel: KernelInfo {
            path: display(&h.kernel),
            parameters: cfg.kernel_params_string(),
        },
        image_path: display(&h.image),
        initrd_path: display(&h.initrd),
        hypervisor,
        runtime,
        host: host_info(&ctx.host, cfg.hypervisor_type, &ctx.log, warnings),
        agent_debug: cfg.agent.debug,
        agent_trace: cfg.agent.tracing,
    }
}

fn display(p: &Path) -> String {
    p.display().to_string()
}

/// The `Host` section, read under the host root.
pub fn host_info(
    host: &HostRoot,
    hypervisor: HypervisorType,
    log: &slog::Logger,
    warnings: &mut Vec<String>,
) -> HostInfo {
    // The inspected host's architecture: `KATA_HOST_ARCH` when it names one (a root of
    // another architecture), as `check` and `VMContainerCapable` use it.
    let arch = crate::host::requirements::Arch::from_env()
        .map(|a| a.as_str())
        .unwrap_or_else(|_| crate::host::go_arch());
    let unknown = || UNKNOWN.to_string();

    let kernel = match host::read_host_file_lossy_opt(host, PROC_VERSION) {
        Ok(Some(text)) => kernel::release(&text).unwrap_or_else(|e| {
            warnings.push(format!("cannot tell the host kernel release: {e}"));
            unknown()
        }),
        Ok(None) => {
            warnings.push(format!(
                "cannot tell the host kernel release: {PROC_VERSION} does not exist"
            ));
            unknown()
        }
        Err(e) => {
            warnings.push(format!("cannot tell the host kernel release: {e}"));
            unknown()
        }
    };

    let distro = os_release::read(host, &mut |w| warnings.push(w));

    let cpu_text = match host::read_host_file_lossy_opt(host, PROC_CPUINFO) {
        Ok(Some(t)) => Some(t),
        Ok(None) => {
            warnings.push(format!(
                "cannot tell the CPU vendor and model: {PROC_CPUINFO} does not exist"
            ));
            None
        }
        Err(e) => {
            warnings.push(format!("cannot tell the CPU vendor and model: {e}"));
            None
        }
    };
    let (cpu_vendor, cpu_model) = match cpu_text.as_deref() {
        Some(text) => cpuinfo::vendor_and_model(text, arch).unwrap_or_else(|e| {
            warnings.push(format!("cannot tell the CPU vendor and model: {e}"));
            (unknown(), unknown())
        }),
        None => (unknown(), unknown()),
    };

    // Unreadable procfs gives zeros, as in the Go tool; missing lines are zero too (Q27).
    let memory = match host::read_host_file_lossy_opt(host, PROC_MEMINFO) {
        Ok(Some(text)) => {
            let (m, bad) = meminfo::parse(&text);
            for key in bad {
                warnings.push(format!("cannot parse {key} in {PROC_MEMINFO}; showing 0"));
            }
            m
        }
        Ok(None) => {
            warnings.push(format!(
                "cannot read the host memory: {PROC_MEMINFO} does not exist; showing 0"
            ));
            meminfo::Memory::default()
        }
        Err(e) => {
            warnings.push(format!("cannot read the host memory: {e}; showing 0"));
            meminfo::Memory::default()
        }
    };

    HostInfo {
        available_guest_protections: protection::available(
            host,
            arch,
            cpu_text.as_deref().unwrap_or(""),
        )
        .map(|p| vec![p.as_str().to_string()]),
        kernel,
        architecture: arch.to_string(),
        distro_name: distro.name.unwrap_or_else(unknown),
        distro_version: distro.version.unwrap_or_else(unknown),
        cpu_vendor,
        cpu_model,
        cpus: i64::from(crate::host::usable_cpus()),
        memory,
        vm_container_capable: requirements::vm_container_capable(host, hypervisor, log),
        support_vsocks: host.join(DEV_VHOST_VSOCK).exists(),
    }
}

/// `Runtime.Version.Version`: the last word of the version string if it is strict semver,
/// with its numbers; else `<<unknown>>` and zeros.
pub fn semver_parts(v: &str) -> (String, u64, u64, u64) {
    let word = v.split(' ').next_back().unwrap_or("");
    match semver::Version::parse(word) {
        Ok(s) => (word.to_string(), s.major, s.minor, s.patch),
        Err(_) => (UNKNOWN.to_string(), 0, 0, 0),
    }
}

/// `Hypervisor.SocketPath` as the Go tool shows it, computed without side effects (spec
/// §4.2, Q28: the Go tool reserved a vsock CID just to print the empty qemu value). Without
/// root the Go tool cannot tell, and says `<<unknown>>`.
pub fn socket_path(is_root: bool, hypervisor: HypervisorType, hypervisor_path: &Path) -> String {
    if !is_root {
        return UNKNOWN.to_string();
    }
    match hypervisor {
        HypervisorType::Qemu | HypervisorType::Acrn | HypervisorType::Dragonball => String::new(),
        HypervisorType::Clh => "{ID}/clh.sock".to_string(),
        HypervisorType::Firecracker => {
            let base = hypervisor_path
                .file_name()
                .map(|b| b.to_string_lossy().into_owned())
                .unwrap_or_default();
            format!("{RUN_VC}/{base}/{{ID}}/root/kata.hvsock")
        }
    }
}

/// Runs `<path> --version` and returns its standard output, trimmed. `None` when it cannot
/// start, exits non-zero or is still running after `timeout` (it is then killed). Plain
/// threads, no async runtime: `env` must start fast.
pub fn hypervisor_version(path: &Path, timeout: Duration) -> Option<String> {
    use std::io::Read as _;
    let deadline = std::time::Instant::now() + timeout;
    let mut child = std::process::Command::new(path)
        .arg("--version")
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .spawn()
        .ok()?;
    let mut stdout = child.stdout.take()?;
    let pid = child.id();
    let (tx, rx) = std::sync::mpsc::channel();
    // The thread owns the child: it reads the output, reaps the process and reports both.
    std::thread::spawn(move || {
        let mut buf = Vec::new();
        let _ = stdout.read_to_end(&mut buf);
        let status = child.wait();
        let _ = tx.send((buf, status));
    });
    match rx.recv_timeout(deadline.saturating_duration_since(std::time::Instant::now())) {
        Ok((out, Ok(status))) if status.success() => {
            Some(String::from_utf8_lossy(&out).trim().to_string())
        }
        Ok(_) => None,
        Err(_) => {
            // Still running (not yet reaped, so the pid is still its own): stop it.
            if let Ok(pid) = i32::try_from(pid) {
                let _ = nix::sys::signal::kill(
                    nix::unistd::Pid::from_raw(pid),
                    nix::sys::signal::Signal::SIGKILL,
                );
            }
            None
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt as _;

    fn script(dir: &Path, name: &str, body: &str) -> std::path::PathBuf {
        let p = dir.join(name);
        std::fs::write(&p, format!("#!/bin/sh\n{body}\n")).unwrap();
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o755)).unwrap();
        p
    }

    #[test]
    fn version_is_trimmed_stdout_or_none() {
        let d = tempfile::tempdir().unwrap();
        let ok = script(
            d.path(),
            "ok",
            "echo '  QEMU emulator version 6.2.0'; echo line2; echo err >&2",
        );
        assert_eq!(
            hypervisor_version(&ok, VERSION_TIMEOUT).as_deref(),
            Some("QEMU emulator version 6.2.0\nline2")
        );
        let bad = script(d.path(), "bad", "echo v1; exit 3");
        assert_eq!(hypervisor_version(&bad, VERSION_TIMEOUT), None);
        assert_eq!(
            hypervisor_version(&d.path().join("missing"), VERSION_TIMEOUT),
            None
        );
    }

    #[test]
    fn a_hanging_hypervisor_is_killed_at_the_timeout() {
        let d = tempfile::tempdir().unwrap();
        let pidfile = d.path().join("pid");
        let hang = script(
            d.path(),
            "hang",
            &format!("echo $$ > {}; exec sleep 30", pidfile.display()),
        );
        let t0 = std::time::Instant::now();
        assert_eq!(hypervisor_version(&hang, Duration::from_millis(300)), None);
        assert!(t0.elapsed() < Duration::from_secs(10));
        // The child was killed, not left behind.
        let pid: i32 = std::fs::read_to_string(&pidfile)
            .unwrap()
            .trim()
            .parse()
            .unwrap();
        let deadline = std::time::Instant::now() + Duration::from_secs(5);
        loop {
            let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
            // Gone, or a zombie waiting for the reaper.
            let state = stat.rsplit(") ").next().and_then(|s| s.chars().next());
            if stat.is_empty() || state == Some('Z') {
                break;
            }
            assert!(
                std::time::Instant::now() < deadline,
                "child {pid} still running: {stat}"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    #[test]
    fn socket_paths_per_hypervisor() {
        let fc = Path::new("/opt/kata/bin/firecracker");
        assert_eq!(socket_path(false, HypervisorType::Clh, fc), "<<unknown>>");
        assert_eq!(socket_path(true, HypervisorType::Qemu, fc), "");
        assert_eq!(socket_path(true, HypervisorType::Acrn, fc), "");
        assert_eq!(
            socket_path(true, HypervisorType::Dragonball, Path::new("")),
            ""
        );
        assert_eq!(socket_path(true, HypervisorType::Clh, fc), "{ID}/clh.sock");
        assert_eq!(
            socket_path(true, HypervisorType::Firecracker, fc),
            "/run/vc/firecracker/{ID}/root/kata.hvsock"
        );
    }

    #[test]
    fn semver_of_the_version_string() {
        assert_eq!(semver_parts("3.0.0"), ("3.0.0".to_string(), 3, 0, 0));
        assert_eq!(
            semver_parts("kata 3.1.0-rc0"),
            ("3.1.0-rc0".to_string(), 3, 1, 0)
        );
        assert_eq!(semver_parts("3.0"), (UNKNOWN.to_string(), 0, 0, 0));
        assert_eq!(semver_parts(""), (UNKNOWN.to_string(), 0, 0, 0));
    }
}
