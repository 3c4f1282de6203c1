//! Starting and stopping the configured QEMU for the VM factory: the command line built
//! from `[hypervisor.qemu]`, a per-VM run directory with the QMP socket and QEMU's log,
//! readiness through the QMP handshake, and a stop that never leaves a QEMU behind
//! (SIGTERM, then SIGKILL after a grace period).

use std::ffi::OsString;
use std::os::unix::fs::DirBuilderExt as _;
use std::path::{Path, PathBuf};
use std::process::{ExitStatus, Stdio};
use std::time::Duration;

use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;
use tokio::process::{Child, Command};

use super::qmp::Qmp;
use crate::config::Config;
use crate::errors::os_text;
use crate::paths::{HostRoot, RUN_VC_VM};

/// How long a QEMU may take to open its QMP socket and answer the handshake.
pub const STARTUP_TIMEOUT: Duration = Duration::from_secs(30);
/// How long a QEMU gets to exit after SIGTERM before it is killed.
pub const STOP_GRACE: Duration = Duration::from_secs(3);
/// The most of QEMU's log quoted in an error.
const LOG_QUOTE_LIMIT: usize = 4096;

/// What the factory needs to start the configured QEMU. Paths are where the files are on
/// this machine (already joined with the host root).
#[derive(Debug, Clone, PartialEq)]
pub struct VmSpec {
    pub qemu: PathBuf,
    /// The QEMU binary as configured (host view), for messages.
    pub qemu_shown: PathBuf,
    pub kernel: PathBuf,
    pub initrd: Option<PathBuf>,
    pub image: Option<PathBuf>,
    pub firmware: Option<PathBuf>,
    pub kernel_params: String,
    pub machine_type: String,
    pub machine_accelerators: String,
    pub cpu_features: String,
    pub vcpus: u32,
    pub max_vcpus: u32,
    pub memory_mib: u32,
    pub memory_slots: u32,
    pub max_memory_mib: u64,
    /// The host's run directory for VMs (`/run/vc/vm` under the host root).
    pub run_dir: PathBuf,
}

/// The VM configuration is unusable for a factory (spec §7.2 validation).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SpecError {
    #[error("Missing kernel path")]
    MissingKernel,
    #[error("Missing image and initrd path")]
    MissingImageAndInitrd,
    #[error("Image and initrd path cannot be both set")]
    ImageAndInitrd,
}

impl VmSpec {
    /// The spec of the configured hypervisor, validated as the Go factory validates it.
    pub fn from_config(host: &HostRoot, cfg: &Config) -> Result<VmSpec, SpecError> {
        let h = &cfg.hypervisor;
        let set = |p: &Path| (!p.as_os_str().is_empty()).then(|| host.join(p));
        if h.kernel.as_os_str().is_empty() {
            return Err(SpecError::MissingKernel);
        }
        let initrd = set(&h.initrd);
        let image = set(&h.image);
        match (&initrd, &image) {
            (None, None) => return Err(SpecError::MissingImageAndInitrd),
            (Some(_), Some(_)) => return Err(SpecError::ImageAndInitrd),
            _ => {}
        }
        let vcpus = h.default_vcpus.max(1);
        Ok(VmSpec {
            qemu: host.join(&h.path),
            qemu_shown: h.path.clone(),
            kernel: host.join(&h.kernel),
            initrd,
            image,
            firmware: set(&h.firmware),
            kernel_params: cfg.kernel_params_string(),
            machine_type: h.machine_type.clone(),
            machine_accelerators: h.machine_accelerators.clone(),
            cpu_features: h.cpu_features.clone(),
            vcpus,
            max_vcpus: h.default_max_vcpus.max(vcpus),
            memory_mib: h.memory_mib,
            memory_slots: h.memory_slots,
            max_memory_mib: h.default_max_memory_mib,
            run_dir: host.join(RUN_VC_VM),
        })
    }

    /// The accelerator: an `accel=` item of `machine_accelerators` (e.g. `accel=tcg` on a
    /// host without usable KVM), else `kvm` as the Go runtime always uses.
    pub fn accelerator(&self) -> &str {
        self.machine_accelerators
            .split(',')
            .find_map(|item| item.trim().strip_prefix("accel="))
            .unwrap_or("kvm")
    }
}

/// Where a VM's memory lives.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Memory {
    /// Ordinary anonymous guest RAM.
    Anonymous,
    /// RAM in a file shared with the host (`share=on`): the VM template's `memory`.
    SharedFile(PathBuf),
}

/// How to start one VM.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Launch {
    pub id: String,
    /// Start with the vCPUs paused (`-S`): a cached base VM costs no guest CPU.
    pub paused: bool,
    pub memory: Memory,
}

/// The files of one VM under the run directory.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VmPaths {
    pub dir: PathBuf,
    pub qmp: PathBuf,
    pub log: PathBuf,
}

impl VmPaths {
    pub fn new(run_dir: &Path, id: &str) -> VmPaths {
        let dir = run_dir.join(id);
        VmPaths {
            qmp: dir.join("qmp.sock"),
            log: dir.join("qemu.log"),
            dir,
        }
    }
}

/// The QEMU command line (without the program) for `launch`.
pub fn qemu_args(spec: &VmSpec, launch: &Launch, paths: &VmPaths) -> Vec<OsString> {
    fn s(x: impl Into<OsString>) -> OsString {
        x.into()
    }
    let accel = spec.accelerator();
    let mut a: Vec<OsString> = vec![
        s("-name"),
        s(format!("sandbox-{}", launch.id)),
        s("-uuid"),
        s(uuid_from_id(&launch.id)),
    ];
    let mut machine = format!("{},accel={accel}", spec.machine_type);
    for item in spec.machine_accelerators.split(',').map(str::trim) {
        if !item.is_empty() && !item.starts_with("accel=") {
            machine.push(',');
            machine.push_str(item);
        }
    }
    // `host` needs KVM; under TCG the richest emulated model stands in for it.
    let mut cpu = if accel == "kvm" { "host" } else { "max" }.to_string();
    for f in spec.cpu_features.split(',').map(str::trim) {
        if !f.is_empty() {
            cpu.push(',');
            cpu.push_str(f);
        }
    }
    let mut mem = format!("{}M", spec.memory_mib);
    if spec.memory_slots > 0 && spec.max_memory_mib > u64::from(spec.memory_mib) {
        mem.push_str(&format!(
            ",slots={},maxmem={}M",
            spec.memory_slots, spec.max_memory_mib
        ));
    }
    a.extend([
        s("-machine"),
        s(machine),
        s("-cpu"),
        s(cpu),
        s("-smp"),
        s(format!(
            "{},cores=1,threads=1,sockets={m},maxcpus={m}",
            spec.vcpus,
            m = spec.max_vcpus
        )),
        s("-m"),
        s(mem),
    ]);
    if let Memory::SharedFile(file) = &launch.memory {
        let mut backend = OsString::from(format!(
            "memory-backend-file,id=dimm1,size={}M,mem-path=",
            spec.memory_mib
        ));
        backend.push(file);
        backend.push(",share=on");
        a.extend([s("-object"), backend, s("-numa"), s("node,memdev=dimm1")]);
    }
    if let Some(fw) = &spec.firmware {
        a.extend([s("-bios"), s(fw)]);
    }
    a.extend([s("-kernel"), s(&spec.kernel)]);
    if let Some(initrd) = &spec.initrd {
        a.extend([s("-initrd"), s(initrd)]);
    }
    let mut append = spec.kernel_params.clone();
    if let Some(image) = &spec.image {
        // The root file system image, read-only, as the first virtio disk.
        let dev = if spec.machine_type == "microvm" {
            "virtio-blk-device"
        } else {
            "virtio-blk-pci"
        };
        let mut drive = OsString::from("file=");
        drive.push(image);
        drive.push(",if=none,id=image0,format=raw,readonly=on");
        a.extend([
            s("-drive"),
            drive,
            s("-device"),
            s(format!("{dev},drive=image0")),
        ]);
        if !append.split_whitespace().any(|p| p.starts_with("root=")) {
            if !append.is_empty() {
                append.push(' ');
            }
            append.push_str("root=/dev/vda1 rootfstype=ext4 ro");
        }
    }
    let mut qmp = OsString::from("unix:");
    qmp.push(&paths.qmp);
    qmp.push(",server=on,wait=off");
    a.extend([s("-append"), s(append), s("-qmp"), qmp]);
    if launch.paused {
        a.push(s("-S"));
    }
    a.extend(
        [
            "-display",
            "none",
            "-vga",
            "none",
            "-no-user-config",
            "-nodefaults",
        ]
        .into_iter()
        .map(s),
    );
    a
}

/// A UUID-shaped rendering of a 32-hex-digit VM id.
pub(crate) fn uuid_from_id(id: &str) -> String {
    if id.len() == 32 && id.bytes().all(|b| b.is_ascii_hexdigit()) {
        format!(
            "{}-{}-{}-{}-{}",
            &id[..8],
            &id[8..12],
            &id[12..16],
            &id[16..20],
            &id[20..]
        )
    } else {
        "00000000-0000-0000-0000-000000000000".to_string()
    }
}

/// A fresh random VM id (32 hex digits).
pub fn new_id() -> String {
    let mut buf = [0u8; 16];
    // SAFETY: `buf` is a valid writable buffer of `buf.len()` bytes for the whole call.
    let n = unsafe { libc::getrandom(buf.as_mut_ptr().cast(), buf.len(), 0) };
    if n != buf.len() as isize {
        // Unreachable on Linux ≥ 3.17; fall back to something unique enough in-process.
        let t = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap_or_default()
            .as_nanos();
        buf = (t ^ (u128::from(std::process::id()) << 64)).to_le_bytes();
    }
    buf.iter().map(|b| format!("{b:02x}")).collect()
}

#[derive(Debug, thiserror::Error)]
pub enum LaunchError {
    #[error("cannot create the VM directory {}: {}", .path.display(), os_text(.source))]
    Dir {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("cannot start QEMU {}: {}", .qemu.display(), os_text(.source))]
    Spawn {
        qemu: PathBuf,
        source: std::io::Error,
    },
    #[error("QEMU {} {status} before it was ready{}", .qemu.display(), quote_log(.log))]
    Exited {
        qemu: PathBuf,
        status: String,
        log: String,
    },
    #[error("QEMU {} (pid {pid}) did not answer on its QMP socket {} within {}s{}; it was killed", .qemu.display(), .qmp.display(), .after.as_secs(), quote_log(.log))]
    NotReady {
        qemu: PathBuf,
        pid: u32,
        qmp: PathBuf,
        after: Duration,
        log: String,
    },
}

fn quote_log(log: &str) -> String {
    let log = log.trim();
    if log.is_empty() {
        String::new()
    } else {
        format!(": {log}")
    }
}

/// A QEMU the factory started and still owns.
#[derive(Debug)]
pub struct RunningVm {
    pub id: String,
    pub pid: u32,
    pub paths: VmPaths,
    pub child: Child,
    pub cpu: u32,
    pub memory_mib: u32,
}

/// Starts QEMU and waits until its QMP handshake succeeds. On failure nothing is left
/// running and the VM directory is removed.
pub async fn start(spec: &VmSpec, launch: &Launch) -> Result<(RunningVm, Qmp), LaunchError> {
    let paths = VmPaths::new(&spec.run_dir, &launch.id);
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o750)
        .create(&paths.dir)
        .map_err(|source| LaunchError::Dir {
            path: paths.dir.clone(),
            source,
        })?;
    let cleanup = |paths: &VmPaths| {
        let _ = std::fs::remove_dir_all(&paths.dir);
    };
    let log = std::fs::File::create(&paths.log).map_err(|source| LaunchError::Dir {
        path: paths.log.clone(),
        source,
    })?;
    let mut cmd = Command::new(&spec.qemu);
    cmd.args(qemu_args(spec, launch, &paths))
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::from(log))
        // A QEMU handed over to a client must outlive the factory; stops are explicit.
        .kill_on_drop(false);
    // Spawned in place, not on a blocking thread: with no await between spawn and the
    // guard below, cancelling this future can never leave a QEMU without an owner.
    let child = match cmd.spawn() {
        Ok(c) => c,
        Err(source) => {
            cleanup(&paths);
            return Err(LaunchError::Spawn {
                qemu: spec.qemu_shown.clone(),
                source,
            });
        }
    };
    // If this future is dropped half-way (shutdown), the QEMU must not outlive it.
    let mut guard = Starting {
        child: Some(child),
        dir: paths.dir.clone(),
    };
    let pid = guard.child().id().unwrap_or(0);
    let deadline = tokio::time::Instant::now() + STARTUP_TIMEOUT;
    let mut pause = Duration::from_millis(2);
    loop {
        if let Ok(Some(status)) = guard.child().try_wait() {
            let log = read_log(&paths.log);
            return Err(LaunchError::Exited {
                qemu: spec.qemu_shown.clone(),
                status: describe_exit(status),
                log,
            });
        }
        if paths.qmp.exists() {
            // Not listening yet, or QEMU died mid-handshake: look again.
            if let Ok(Ok(qmp)) = tokio::time::timeout_at(deadline, Qmp::connect(&paths.qmp)).await {
                let vm = RunningVm {
                    id: launch.id.clone(),
                    pid,
                    child: guard.release(),
                    paths,
                    cpu: spec.vcpus,
                    memory_mib: spec.memory_mib,
                };
                return Ok((vm, qmp));
            }
        }
        if tokio::time::Instant::now() >= deadline {
            terminate(guard.child(), Duration::ZERO).await;
            let log = read_log(&paths.log);
            return Err(LaunchError::NotReady {
                qemu: spec.qemu_shown.clone(),
                pid,
                qmp: paths.qmp.clone(),
                after: STARTUP_TIMEOUT,
                log,
            });
        }
        tokio::time::sleep(pause).await;
        pause = (pause * 2).min(Duration::from_millis(50));
    }
}

/// A QEMU being started: killed and its directory removed unless [`Starting::release`]d.
struct Starting {
    child: Option<Child>,
    dir: PathBuf,
}

impl Starting {
    fn child(&mut self) -> &mut Child {
        self.child.as_mut().expect("present until released")
    }

    fn release(&mut self) -> Child {
        self.child.take().expect("released once")
    }
}

impl Drop for Starting {
    fn drop(&mut self) {
        if let Some(c) = self.child.as_mut() {
            // SIGKILL; tokio reaps the dropped child in the background.
            let _ = c.start_kill();
            let _ = std::fs::remove_dir_all(&self.dir);
        }
    }
}

/// Stops a QEMU we own: SIGTERM, then SIGKILL when it has not exited after `grace`.
/// Always reaps it. Returns how it ended.
pub async fn terminate(child: &mut Child, grace: Duration) -> Option<ExitStatus> {
    if let Ok(Some(st)) = child.try_wait() {
        return Some(st);
    }
    if !grace.is_zero()
        && let Some(pid) = child.id()
    {
        let _ = kill(Pid::from_raw(pid as i32), Signal::SIGTERM);
        if let Ok(Ok(st)) = tokio::time::timeout(grace, child.wait()).await {
            return Some(st);
        }
    }
    let _ = child.start_kill();
    child.wait().await.ok()
}

/// Stops a VM and removes its run directory.
pub async fn stop(vm: &mut RunningVm, grace: Duration) {
    terminate(&mut vm.child, grace).await;
    let _ = std::fs::remove_dir_all(&vm.paths.dir);
}

/// QEMU's log, trimmed to what fits in an error message.
pub fn read_log(path: &Path) -> String {
    let text = std::fs::read(path).unwrap_or_default();
    let text = String::from_utf8_lossy(&text);
    let text = text.trim();
    if text.len() > LOG_QUOTE_LIMIT {
        let mut cut = text.len() - LOG_QUOTE_LIMIT;
        while !text.is_char_boundary(cut) {
            cut += 1;
        }
        format!("...{}", &text[cut..])
    } else {
        text.to_string()
    }
}

fn describe_exit(st: ExitStatus) -> String {
    use std::os::unix::process::ExitStatusExt as _;
    match (st.code(), st.signal()) {
        (Some(c), _) => format!("exited with status {c}"),
        (None, Some(s)) => match Signal::try_from(s) {
            Ok(sig) => format!("was killed by {sig}"),
            Err(_) => format!("was killed by signal {s}"),
        },
        _ => "exited".to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec() -> VmSpec {
        VmSpec {
            qemu: "/usr/bin/qemu-system-x86_64".into(),
            qemu_shown: "/usr/bin/qemu-system-x86_64".into(),
            kernel: "/k".into(),
            initrd: Some("/i".into()),
            image: None,
            firmware: None,
            kernel_params: "console=hvc0 foo=bar".into(),
            machine_type: "q35".into(),
            machine_accelerators: String::new(),
            cpu_features: "pmu=off".into(),
            vcpus: 1,
            max_vcpus: 4,
            memory_mib: 256,
            memory_slots: 10,
            max_memory_mib: 4096,
            run_dir: "/run/vc/vm".into(),
        }
    }

    fn joined(args: &[OsString]) -> String {
        args.iter()
            .map(|a| a.to_string_lossy().into_owned())
            .collect::<Vec<_>>()
            .join(" ")
    }

    const ID: &str = "0123456789abcdef0123456789abcdef";

    #[test]
    fn paused_base_vm_command_line() {
        let s = spec();
        let l = Launch {
            id: ID.into(),
            paused: true,
            memory: Memory::Anonymous,
        };
        let p = VmPaths::new(&s.run_dir, ID);
        assert_eq!(
            joined(&qemu_args(&s, &l, &p)),
            format!(
                "-name sandbox-{ID} -uuid 01234567-89ab-cdef-0123-456789abcdef \
                 -machine q35,accel=kvm -cpu host,pmu=off \
                 -smp 1,cores=1,threads=1,sockets=4,maxcpus=4 -m 256M,slots=10,maxmem=4096M \
                 -kernel /k -initrd /i -append console=hvc0 foo=bar \
                 -qmp unix:/run/vc/vm/{ID}/qmp.sock,server=on,wait=off -S \
                 -display none -vga none -no-user-config -nodefaults"
            )
        );
    }

    #[test]
    fn tcg_accelerator_image_and_shared_memory() {
        let mut s = spec();
        s.machine_accelerators = "accel=tcg,kernel_irqchip=on".into();
        s.initrd = None;
        s.image = Some("/img".into());
        s.memory_slots = 0;
        let l = Launch {
            id: "x".into(),
            paused: false,
            memory: Memory::SharedFile("/t/memory".into()),
        };
        let p = VmPaths::new(&s.run_dir, "x");
        let line = joined(&qemu_args(&s, &l, &p));
        assert!(
            line.contains("-machine q35,accel=tcg,kernel_irqchip=on -cpu max,pmu=off"),
            "{line}"
        );
        assert!(line.contains("-m 256M -object memory-backend-file,id=dimm1,size=256M,mem-path=/t/memory,share=on -numa node,memdev=dimm1"), "{line}");
        assert!(line.contains("-drive file=/img,if=none,id=image0,format=raw,readonly=on -device virtio-blk-pci,drive=image0"), "{line}");
        assert!(
            line.contains("-append console=hvc0 foo=bar root=/dev/vda1 rootfstype=ext4 ro"),
            "{line}"
        );
        assert!(!line.contains(" -S "), "{line}");
    }

    #[test]
    fn ids_are_unique_hex() {
        let a = new_id();
        let b = new_id();
        assert_eq!(a.len(), 32);
        assert!(a.bytes().all(|c| c.is_ascii_hexdigit()));
        assert_ne!(a, b);
    }

    /// A process that ignores SIGTERM (a hung QEMU) is killed once the grace period ends.
    #[test]
    fn terminate_kills_what_ignores_sigterm() {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        rt.block_on(async {
            let mut child = Command::new("/bin/sh")
                .args(["-c", "trap '' TERM; echo up; while :; do sleep 1; done"])
                .stdout(Stdio::piped())
                .spawn()
                .unwrap();
            // Wait until the trap is installed.
            let mut out = child.stdout.take().unwrap();
            let mut buf = [0u8; 3];
            tokio::io::AsyncReadExt::read_exact(&mut out, &mut buf)
                .await
                .unwrap();
            let t0 = std::time::Instant::now();
            let st = terminate(&mut child, Duration::from_millis(300))
                .await
                .unwrap();
            use std::os::unix::process::ExitStatusExt as _;
            assert_eq!(st.signal(), Some(libc::SIGKILL));
            assert!(t0.elapsed() >= Duration::from_millis(300));
            assert_eq!(describe_exit(st), "was killed by SIGKILL");
        });
    }
}
