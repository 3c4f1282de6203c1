//! The VM template of `factory init` with `enable_template` (spec §7.2): a tmpfs at
//! `template_path` holding the guest RAM of a booted VM (`memory`, mapped shared) and its
//! device state (`state`, saved over QMP migration), from which new VMs can start without
//! booting. Mounting sits behind [`Mounter`] so that the bookkeeping is tested without root.

use std::io;
use std::os::unix::fs::{DirBuilderExt as _, OpenOptionsExt as _};
use std::path::{Path, PathBuf};
use std::time::Duration;

use slog::{Logger, info, warn};

use super::qemu::{self, Launch, LaunchError, Memory, STOP_GRACE, VmSpec};
use super::qmp::QmpError;
use crate::errors::os_text;

/// Room for the device state beside the guest RAM on the tmpfs, in MiB (spec §7.2).
pub const fn state_allowance_mib() -> u64 {
    if cfg!(target_arch = "aarch64") {
        300
    } else {
        8
    }
}

/// How long the template VM runs before it is paused (the Go runtime waits for the agent,
/// then 2 s; there is no agent to wait for here).
pub const BOOT_WAIT: Duration = Duration::from_secs(2);
/// How long saving the device state may take.
const SAVE_LIMIT: Duration = Duration::from_secs(60);

/// Mounting and unmounting the template's tmpfs.
pub trait Mounter {
    fn mount_tmpfs(&self, target: &Path, size_mib: u64) -> io::Result<()>;
    /// Detaching unmount (`MNT_DETACH`).
    fn unmount(&self, target: &Path) -> io::Result<()>;
}

/// The real thing: mount(2) and umount2(2).
pub struct SysMounter;

impl Mounter for SysMounter {
    fn mount_tmpfs(&self, target: &Path, size_mib: u64) -> io::Result<()> {
        use nix::mount::{MsFlags, mount};
        // The guest RAM is in there: keep it private (a bare tmpfs root is 1777).
        let data = format!("size={size_mib}M,mode=0700");
        mount(
            Some("tmpfs"),
            target,
            Some("tmpfs"),
            MsFlags::MS_NOSUID | MsFlags::MS_NODEV,
            Some(data.as_str()),
        )
        .map_err(io::Error::from)
    }

    fn unmount(&self, target: &Path) -> io::Result<()> {
        nix::mount::umount2(target, nix::mount::MntFlags::MNT_DETACH).map_err(io::Error::from)
    }
}

#[derive(Debug, thiserror::Error)]
pub enum TemplateError {
    /// Go's wording [M].
    #[error("There is already a VM template in {}", .0.display())]
    Exists(PathBuf),
    #[error("creating a VM template needs root: it mounts a tmpfs at {}", .0.display())]
    NotRoot(PathBuf),
    #[error("cannot create the template directory {}: {}", .path.display(), os_text(.source))]
    Dir { path: PathBuf, source: io::Error },
    #[error("cannot mount a tmpfs at {}: {}", .path.display(), os_text(.source))]
    Mount { path: PathBuf, source: io::Error },
    #[error("cannot create {}: {}", .path.display(), os_text(.source))]
    File { path: PathBuf, source: io::Error },
    #[error("cannot boot the template VM: {0}")]
    Boot(#[from] LaunchError),
    #[error("cannot save the template VM: {0}")]
    Save(#[from] QmpError),
    #[error("the template VM {0} while it was being saved")]
    Died(String),
}

/// Where the template lives: `shown` as configured, `real` on this machine.
#[derive(Debug, Clone)]
pub struct TemplatePaths {
    pub shown: PathBuf,
    pub real: PathBuf,
}

impl TemplatePaths {
    pub fn memory(&self) -> PathBuf {
        self.real.join("memory")
    }

    pub fn state(&self) -> PathBuf {
        self.real.join("state")
    }

    /// A template is there when both of its files are.
    pub fn exists(&self) -> bool {
        self.memory().exists() && self.state().exists()
    }
}

/// Creates the template. On failure everything it made is unmounted and removed.
pub async fn create(
    spec: &VmSpec,
    t: &TemplatePaths,
    mounter: &dyn Mounter,
    is_root: bool,
    log: &Logger,
) -> Result<(), TemplateError> {
    if t.exists() {
        return Err(TemplateError::Exists(t.shown.clone()));
    }
    if !is_root {
        return Err(TemplateError::NotRoot(t.shown.clone()));
    }
    let existed = t.real.exists();
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(&t.real)
        .map_err(|source| TemplateError::Dir {
            path: t.shown.clone(),
            source,
        })?;
    let size = u64::from(spec.memory_mib) + state_allowance_mib();
    if let Err(source) = mounter.mount_tmpfs(&t.real, size) {
        if !existed {
            let _ = std::fs::remove_dir(&t.real);
        }
        return Err(TemplateError::Mount {
            path: t.shown.clone(),
            source,
        });
    }
    info!(log, "create vm factory"; "template" => t.shown.display().to_string(), "tmpfs-size-mib" => size);
    let result = fill(spec, t).await;
    if result.is_err() {
        warn!(log, "create vm factory failed");
        if let Err(e) = mounter.unmount(&t.real) {
            warn!(log, "cannot unmount the template"; "path" => t.shown.display().to_string(), "error" => os_text(&e));
        }
        let _ = std::fs::remove_dir_all(&t.real);
    }
    result
}

/// Boots the template VM on the mounted tmpfs, pauses it, saves its device state and stops it.
async fn fill(spec: &VmSpec, t: &TemplatePaths) -> Result<(), TemplateError> {
    let memory = t.memory();
    std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(&memory)
        .map_err(|source| TemplateError::File {
            path: t.shown.join("memory"),
            source,
        })?;
    let launch = Launch {
        id: qemu::new_id(),
        paused: false,
        memory: Memory::SharedFile(memory),
    };
    let (mut vm, mut qmp) = qemu::start(spec, &launch).await?;
    let saved = async {
        tokio::time::sleep(BOOT_WAIT).await;
        if let Ok(Some(st)) = vm.child.try_wait() {
            return Err(TemplateError::Died(format!(
                "exited ({st}){}",
                log_suffix(&qemu::read_log(&vm.paths.log))
            )));
        }
        qmp.stop().await?;
        qmp.save_device_state(&t.state(), SAVE_LIMIT).await?;
        qmp.quit().await?;
        Ok(())
    }
    .await;
    qemu::stop(&mut vm, STOP_GRACE).await;
    saved
}

fn log_suffix(log: &str) -> String {
    if log.is_empty() {
        String::new()
    } else {
        format!(": {log}")
    }
}

/// Unmounts and removes the template if there is one. Returns whether one was found.
pub fn destroy(t: &TemplatePaths, mounter: &dyn Mounter, log: &Logger) -> io::Result<bool> {
    if !t.exists() {
        return Ok(false);
    }
    if let Err(e) = mounter.unmount(&t.real) {
        // As the Go tool: an unmount failure is only logged; removing still runs.
        warn!(log, "cannot unmount the VM template"; "path" => t.shown.display().to_string(), "error" => os_text(&e));
    }
    std::fs::remove_dir_all(&t.real)?;
    Ok(true)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::cell::RefCell;

    /// Records calls; can refuse to mount.
    struct Fake {
        calls: RefCell<Vec<String>>,
        fail_mount: bool,
    }

    impl Mounter for Fake {
        fn mount_tmpfs(&self, target: &Path, size: u64) -> io::Result<()> {
            self.calls
                .borrow_mut()
                .push(format!("mount {} {size}", target.display()));
            if self.fail_mount {
                Err(io::Error::from_raw_os_error(libc::EPERM))
            } else {
                Ok(())
            }
        }
        fn unmount(&self, target: &Path) -> io::Result<()> {
            self.calls
                .borrow_mut()
                .push(format!("umount {}", target.display()));
            Ok(())
        }
    }

    fn spec(dir: &Path) -> VmSpec {
        VmSpec {
            qemu: dir.join("no-such-qemu"),
            qemu_shown: "/no-such-qemu".into(),
            kernel: "/k".into(),
            initrd: Some("/i".into()),
            image: None,
            firmware: None,
            kernel_params: String::new(),
            machine_type: "q35".into(),
            machine_accelerators: String::new(),
            cpu_features: String::new(),
            vcpus: 1,
            max_vcpus: 1,
            memory_mib: 256,
            memory_slots: 0,
            max_memory_mib: 0,
            run_dir: dir.join("run"),
        }
    }

    fn rt() -> tokio::runtime::Runtime {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap()
    }

    fn log() -> Logger {
        Logger::root(slog::Discard, slog::o!())
    }

    #[test]
    fn failed_boot_unmounts_and_removes_what_it_made() {
        let dir = tempfile::tempdir().unwrap();
        let t = TemplatePaths {
            shown: "/run/vc/vm/template".into(),
            real: dir.path().join("tpl"),
        };
        let fake = Fake {
            calls: RefCell::new(Vec::new()),
            fail_mount: false,
        };
        let e = rt()
            .block_on(create(&spec(dir.path()), &t, &fake, true, &log()))
            .unwrap_err();
        assert!(e.to_string().starts_with("cannot boot the template VM: cannot start QEMU /no-such-qemu: no such file or directory"), "{e}");
        let real = t.real.display();
        assert_eq!(
            *fake.calls.borrow(),
            vec![format!("mount {real} 264"), format!("umount {real}")]
        );
        assert!(!t.real.exists());
    }

    #[test]
    fn refusals_come_before_any_side_effect() {
        let dir = tempfile::tempdir().unwrap();
        let t = TemplatePaths {
            shown: "/tpl".into(),
            real: dir.path().join("tpl"),
        };
        let fake = Fake {
            calls: RefCell::new(Vec::new()),
            fail_mount: true,
        };
        let e = rt()
            .block_on(create(&spec(dir.path()), &t, &fake, false, &log()))
            .unwrap_err();
        assert_eq!(
            e.to_string(),
            "creating a VM template needs root: it mounts a tmpfs at /tpl"
        );
        assert!(fake.calls.borrow().is_empty());
        let e = rt()
            .block_on(create(&spec(dir.path()), &t, &fake, true, &log()))
            .unwrap_err();
        assert_eq!(
            e.to_string(),
            "cannot mount a tmpfs at /tpl: operation not permitted"
        );
        assert!(!t.real.exists(), "the directory it created is removed");

        std::fs::create_dir_all(&t.real).unwrap();
        std::fs::write(t.memory(), "").unwrap();
        std::fs::write(t.state(), "").unwrap();
        let e = rt()
            .block_on(create(&spec(dir.path()), &t, &fake, true, &log()))
            .unwrap_err();
        assert_eq!(e.to_string(), "There is already a VM template in /tpl");
        assert!(destroy(&t, &fake, &log()).unwrap());
        assert!(!t.real.exists());
        assert!(!destroy(&t, &fake, &log()).unwrap());
    }
}
