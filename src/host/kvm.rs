//! The root-only create-VM test of `check` (spec §3.6): open the hypervisor device under
//! the host root, create a VM and throw it away; on arm64 also read the IPA size limit. KVM
//! goes through `kvm-ioctls`, ACRN through its own ioctls. The device operations sit behind
//! [`VmDevices`]/[`VmDevice`] so every error path is testable without a hypervisor.

use std::ffi::CString;
use std::fs::File;
use std::io;
use std::os::fd::AsRawFd as _;
use std::os::unix::ffi::OsStrExt as _;
use std::path::Path;

use slog::{Logger, error, info};

use crate::config::HypervisorType;
use crate::errors::{op_path, os_text};
use crate::host::requirements::Arch;
use crate::paths::{DEV_ACRN_VHM, DEV_KVM, HostRoot};

/// `KVM_CAP_ARM_VM_IPA_SIZE`.
pub const KVM_CAP_ARM_VM_IPA_SIZE: u64 = 165;
/// ACRN "get platform info" (the Go tool's `GetMaxSupportedACRNVM`).
pub const ACRN_IOCTL_GET_PLATFORM_INFO: libc::c_ulong = 0x4300_0003;
/// ACRN "create VM".
pub const ACRN_IOCTL_CREATE_VM: libc::c_ulong = 0x4300_0010;
/// ACRN "destroy VM".
pub const ACRN_IOCTL_DESTROY_VM: libc::c_ulong = 0x4300_0011;
/// The UUID of ACRN slot 0, the one the Go runtime always uses (spec Q51).
pub const ACRN_UUID_SLOT0: [u8; 16] = [
    0xa7, 0xad, 0xa5, 0x06, 0x1a, 0xb0, 0x4b, 0x6b, 0xa0, 0xda, 0xe5, 0x13, 0xca, 0x9b, 0x8c, 0x2f,
];

/// What the ACRN service module reports about the platform (256 bytes, kernel layout).
#[repr(C)]
#[derive(Debug, Clone, Copy)]
pub struct AcrnPlatformInfo {
    pub cpu_num: u16,
    pub reserved0: [u8; 126],
    pub max_vcpus_per_vm: u16,
    pub max_kata_containers: u8,
    pub reserved1: [u8; 125],
}

impl Default for AcrnPlatformInfo {
    fn default() -> Self {
        Self {
            cpu_num: 0,
            reserved0: [0; 126],
            max_vcpus_per_vm: 0,
            max_kata_containers: 0,
            reserved1: [0; 125],
        }
    }
}

/// The create-VM request (kernel layout; the kernel writes the VM id back).
#[repr(C)]
#[derive(Debug, Clone, Copy, Default)]
pub struct AcrnCreateVm {
    pub vmid: u16,
    pub reserved0: u16,
    pub vcpu_num: u16,
    pub reserved1: u16,
    pub uuid: [u8; 16],
    pub vm_flag: u64,
    pub req_buf: u64,
    pub reserved2: [u8; 16],
}

const _: () = assert!(std::mem::size_of::<AcrnPlatformInfo>() == 256);
const _: () = assert!(std::mem::size_of::<AcrnCreateVm>() == 56);

/// Which kind of device node to open.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DeviceKind {
    Kvm,
    Acrn,
}

/// Opens hypervisor devices.
pub trait VmDevices {
    /// `path` is where the node is on this machine (already joined with the host root).
    fn open(&self, path: &Path, kind: DeviceKind) -> io::Result<Box<dyn VmDevice>>;
}

/// The operations the test performs on an open device. Every error is an errno.
pub trait VmDevice {
    /// `KVM_CREATE_VM` with type 0, then close the VM again.
    fn kvm_create_vm(&mut self) -> io::Result<()>;
    /// `KVM_CHECK_EXTENSION`.
    fn kvm_check_extension(&mut self, cap: u64) -> io::Result<i32>;
    fn acrn_platform_info(&mut self) -> io::Result<AcrnPlatformInfo>;
    /// Returns the ioctl's return value (non-zero is a failure).
    fn acrn_create_vm(&mut self, req: &mut AcrnCreateVm) -> io::Result<i32>;
    fn acrn_destroy_vm(&mut self) -> io::Result<i32>;
}

/// The real devices.
#[derive(Debug, Default, Clone, Copy)]
pub struct HostDevices;

enum RealDevice {
    Kvm(kvm_ioctls::Kvm),
    Acrn(File),
}

fn errno_of(e: kvm_ioctls::Error) -> io::Error {
    io::Error::from_raw_os_error(e.errno())
}

fn wrong_device() -> io::Error {
    io::Error::from_raw_os_error(libc::ENOTTY)
}

impl VmDevices for HostDevices {
    fn open(&self, path: &Path, kind: DeviceKind) -> io::Result<Box<dyn VmDevice>> {
        match kind {
            DeviceKind::Kvm => {
                let c = CString::new(path.as_os_str().as_bytes())
                    .map_err(|_| io::Error::from_raw_os_error(libc::EINVAL))?;
                // Opens read-write with close-on-exec, as spec §3.6 asks.
                let kvm = kvm_ioctls::Kvm::new_with_path(&c).map_err(errno_of)?;
                Ok(Box::new(RealDevice::Kvm(kvm)))
            }
            DeviceKind::Acrn => {
                let f = std::fs::OpenOptions::new()
                    .read(true)
                    .write(true)
                    .open(path)?;
                Ok(Box::new(RealDevice::Acrn(f)))
            }
        }
    }
}

impl RealDevice {
    fn acrn_fd(&self) -> io::Result<libc::c_int> {
        match self {
            RealDevice::Acrn(f) => Ok(f.as_raw_fd()),
            RealDevice::Kvm(_) => Err(wrong_device()),
        }
    }
}

impl VmDevice for RealDevice {
    fn kvm_create_vm(&mut self) -> io::Result<()> {
        match self {
            // The VM fd is closed when the returned `VmFd` drops.
            RealDevice::Kvm(kvm) => kvm.create_vm_with_type(0).map(drop).map_err(errno_of),
            RealDevice::Acrn(_) => Err(wrong_device()),
        }
    }

    fn kvm_check_extension(&mut self, cap: u64) -> io::Result<i32> {
        match self {
            RealDevice::Kvm(kvm) => {
                let r = kvm.check_extension_raw(cap as _);
                if r < 0 {
                    Err(io::Error::last_os_error())
                } else {
                    Ok(r)
                }
            }
            RealDevice::Acrn(_) => Err(wrong_device()),
        }
    }

    fn acrn_platform_info(&mut self) -> io::Result<AcrnPlatformInfo> {
        let fd = self.acrn_fd()?;
        let mut info = AcrnPlatformInfo::default();
        // SAFETY: `fd` is an open file owned by `self`; the request copies at most
        // `size_of::<AcrnPlatformInfo>()` bytes into `info`, which lives for the whole call.
        let r = unsafe {
            libc::ioctl(
                fd,
                ACRN_IOCTL_GET_PLATFORM_INFO as _,
                &mut info as *mut AcrnPlatformInfo,
            )
        };
        if r < 0 {
            return Err(io::Error::last_os_error());
        }
        Ok(info)
    }

    fn acrn_create_vm(&mut self, req: &mut AcrnCreateVm) -> io::Result<i32> {
        let fd = self.acrn_fd()?;
        // SAFETY: `fd` is an open file owned by `self`; `req` is a live, exclusively borrowed
        // struct with the kernel's layout, which the kernel reads and writes back.
        let r = unsafe { libc::ioctl(fd, ACRN_IOCTL_CREATE_VM as _, req as *mut AcrnCreateVm) };
        if r < 0 {
            return Err(io::Error::last_os_error());
        }
        Ok(r)
    }

    fn acrn_destroy_vm(&mut self) -> io::Result<i32> {
        let fd = self.acrn_fd()?;
        // SAFETY: `fd` is an open file owned by `self`; the request takes no pointer.
        let r = unsafe { libc::ioctl(fd, ACRN_IOCTL_DESTROY_VM as _, 0 as libc::c_ulong) };
        if r < 0 {
            return Err(io::Error::last_os_error());
        }
        Ok(r)
    }
}

/// What a successful test found.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct CreateVmSuccess {
    /// The device used, as the host sees it.
    pub device: String,
    /// arm64: the IPA size limit in bits (0 = the extension is absent).
    pub ipa_limit_bits: Option<i32>,
}

/// The device node the create-VM test uses for a hypervisor.
pub fn device_for(hypervisor: HypervisorType) -> &'static str {
    if hypervisor.uses_kvm() {
        DEV_KVM
    } else {
        DEV_ACRN_VHM
    }
}

/// Runs the create-VM test for `hypervisor` on `arch`. The error says what failed on which
/// device and, where it helps, what to do.
pub fn create_vm_test(
    devices: &dyn VmDevices,
    host: &HostRoot,
    arch: Arch,
    hypervisor: HypervisorType,
    log: &Logger,
) -> Result<CreateVmSuccess, String> {
    // spec Q14: dragonball is a KVM hypervisor like qemu, clh and firecracker.
    if hypervisor.uses_kvm() {
        kvm_test(devices, host, arch, log)
    } else if arch == Arch::Amd64 {
        acrn_test(devices, host, log)
    } else {
        Err(format!(
            "hypervisor {hypervisor} is not supported on {}",
            arch.as_str()
        ))
    }
}

fn kvm_test(
    devices: &dyn VmDevices,
    host: &HostRoot,
    arch: Arch,
    log: &Logger,
) -> Result<CreateVmSuccess, String> {
    let node = host.join(DEV_KVM);
    let mut dev = devices
        .open(&node, DeviceKind::Kvm)
        .map_err(|e| op_path("open", Path::new(DEV_KVM), &e))?;
    info!(log, "device available"; "check-type" => "full", "device" => DEV_KVM);
    if let Err(e) = dev.kvm_create_vm() {
        drop(dev);
        if e.raw_os_error() == Some(libc::EBUSY) {
            error!(log, "cannot create VM"; "device" => DEV_KVM, "reason" => "another hypervisor running");
            return Err(format!(
                "cannot create a virtual machine with {DEV_KVM}: {} (another hypervisor is running; stop it and try again)",
                os_text(&e)
            ));
        }
        return Err(format!(
            "cannot create a virtual machine with {DEV_KVM}: {}",
            os_text(&e)
        ));
    }
    drop(dev);
    info!(log, "feature available"; "check-type" => "full", "feature" => "create-vm");
    let mut ipa = None;
    if arch == Arch::Arm64 {
        let mut dev = devices
            .open(&node, DeviceKind::Kvm)
            .map_err(|e| op_path("open", Path::new(DEV_KVM), &e))?;
        match dev.kvm_check_extension(KVM_CAP_ARM_VM_IPA_SIZE) {
            Err(e) => {
                error!(log, "kvm extension is not supported"; "extension" => "KVM_CAP_ARM_VM_IPA_SIZE", "error" => os_text(&e));
                return Err(format!(
                    "KVM_CHECK_EXTENSION(KVM_CAP_ARM_VM_IPA_SIZE) on {DEV_KVM} failed: {}",
                    os_text(&e)
                ));
            }
            Ok(bits) => {
                info!(log, "kvm extension is supported"; "extension" => "KVM_CAP_ARM_VM_IPA_SIZE");
                // 0 means the kernel has no configurable IPA size: not an error.
                info!(log, "IPA limit size: {} bits.", bits);
                ipa = Some(bits);
            }
        }
    }
    Ok(CreateVmSuccess {
        device: DEV_KVM.to_string(),
        ipa_limit_bits: ipa,
    })
}

fn acrn_test(
    devices: &dyn VmDevices,
    host: &HostRoot,
    log: &Logger,
) -> Result<CreateVmSuccess, String> {
    let mut dev = devices
        .open(&host.join(DEV_ACRN_VHM), DeviceKind::Acrn)
        .map_err(|e| op_path("open", Path::new(DEV_ACRN_VHM), &e))?;
    info!(log, "device available"; "check-type" => "full", "device" => DEV_ACRN_VHM);
    let platform = dev.acrn_platform_info().map_err(|e| {
        format!(
            "IOCTL GetMaxSupportedACRNVM failed on {DEV_ACRN_VHM}: {}",
            os_text(&e)
        )
    })?;
    if platform.max_kata_containers == 0 {
        return Err(format!(
            "Invalid UUID: Max VMs reached ({DEV_ACRN_VHM} allows no Kata Containers VM)"
        ));
    }
    let mut req = AcrnCreateVm {
        vcpu_num: 1,
        uuid: ACRN_UUID_SLOT0,
        ..Default::default()
    };
    match dev.acrn_create_vm(&mut req) {
        Ok(0) => {}
        Ok(ret) => {
            info!(log, "Create VM Error"; "ret" => ret, "errno" => 0);
            return Err(format!(
                "cannot create an ACRN VM with {DEV_ACRN_VHM}: ioctl returned {ret}"
            ));
        }
        Err(e) => {
            info!(log, "Create VM Error"; "ret" => -1, "errno" => e.raw_os_error().unwrap_or(0));
            return Err(format!(
                "cannot create an ACRN VM with {DEV_ACRN_VHM}: {}",
                os_text(&e)
            ));
        }
    }
    match dev.acrn_destroy_vm() {
        Ok(0) => {}
        Ok(ret) => {
            info!(log, "Destroy VM Error"; "ret" => ret, "errno" => 0);
            return Err(format!(
                "cannot destroy the test ACRN VM with {DEV_ACRN_VHM}: ioctl returned {ret}"
            ));
        }
        Err(e) => {
            info!(log, "Destroy VM Error"; "ret" => -1, "errno" => e.raw_os_error().unwrap_or(0));
            return Err(format!(
                "cannot destroy the test ACRN VM with {DEV_ACRN_VHM}: {}",
                os_text(&e)
            ));
        }
    }
    info!(log, "feature available"; "check-type" => "full", "feature" => "create-vm");
    Ok(CreateVmSuccess {
        device: DEV_ACRN_VHM.to_string(),
        ipa_limit_bits: None,
    })
}

#[cfg(test)]
mod tests {
    use std::cell::RefCell;
    use std::rc::Rc;

    use super::*;

    /// A scripted device that records every call.
    #[derive(Clone, Default)]
    struct Fake {
        open_errno: Option<i32>,
        create_errno: Option<i32>,
        ext: Option<Result<i32, i32>>,
        platform: Option<Result<u8, i32>>,
        acrn_create: Option<Result<i32, i32>>,
        acrn_destroy: Option<Result<i32, i32>>,
        calls: Rc<RefCell<Vec<String>>>,
    }

    impl VmDevices for Fake {
        fn open(&self, path: &Path, kind: DeviceKind) -> io::Result<Box<dyn VmDevice>> {
            self.calls
                .borrow_mut()
                .push(format!("open {} {kind:?}", path.display()));
            match self.open_errno {
                Some(e) => Err(io::Error::from_raw_os_error(e)),
                None => Ok(Box::new(self.clone())),
            }
        }
    }

    fn res(r: Option<Result<i32, i32>>) -> io::Result<i32> {
        match r.unwrap_or(Ok(0)) {
            Ok(v) => Ok(v),
            Err(e) => Err(io::Error::from_raw_os_error(e)),
        }
    }

    impl VmDevice for Fake {
        fn kvm_create_vm(&mut self) -> io::Result<()> {
            self.calls.borrow_mut().push("create_vm".into());
            match self.create_errno {
                Some(e) => Err(io::Error::from_raw_os_error(e)),
                None => Ok(()),
            }
        }
        fn kvm_check_extension(&mut self, cap: u64) -> io::Result<i32> {
            self.calls
                .borrow_mut()
                .push(format!("check_extension {cap}"));
            res(self.ext)
        }
        fn acrn_platform_info(&mut self) -> io::Result<AcrnPlatformInfo> {
            self.calls.borrow_mut().push("platform_info".into());
            match self.platform.unwrap_or(Ok(1)) {
                Ok(n) => Ok(AcrnPlatformInfo {
                    max_kata_containers: n,
                    ..Default::default()
                }),
                Err(e) => Err(io::Error::from_raw_os_error(e)),
            }
        }
        fn acrn_create_vm(&mut self, req: &mut AcrnCreateVm) -> io::Result<i32> {
            self.calls
                .borrow_mut()
                .push(format!("acrn_create uuid0={:02x}", req.uuid[0]));
            res(self.acrn_create)
        }
        fn acrn_destroy_vm(&mut self) -> io::Result<i32> {
            self.calls.borrow_mut().push("acrn_destroy".into());
            res(self.acrn_destroy)
        }
    }

    fn log() -> Logger {
        Logger::root(slog::Discard, slog::o!())
    }

    fn run(f: &Fake, arch: Arch, hv: HypervisorType) -> Result<CreateVmSuccess, String> {
        create_vm_test(f, &HostRoot::new("/fake"), arch, hv, &log())
    }

    #[test]
    fn kvm_success_opens_the_node_under_the_root_and_creates_a_vm() {
        let f = Fake::default();
        let ok = run(&f, Arch::Amd64, HypervisorType::Qemu).unwrap();
        assert_eq!(ok.device, "/dev/kvm");
        assert_eq!(ok.ipa_limit_bits, None);
        assert_eq!(*f.calls.borrow(), ["open /fake/dev/kvm Kvm", "create_vm"]);
    }

    #[test]
    fn dragonball_uses_kvm() {
        let f = Fake::default();
        assert!(run(&f, Arch::Amd64, HypervisorType::Dragonball).is_ok());
        assert_eq!(f.calls.borrow()[1], "create_vm");
    }

    #[test]
    fn kvm_open_failure_names_the_device() {
        let f = Fake {
            open_errno: Some(libc::ENOENT),
            ..Default::default()
        };
        assert_eq!(
            run(&f, Arch::Amd64, HypervisorType::Clh).unwrap_err(),
            "open /dev/kvm: no such file or directory"
        );
    }

    #[test]
    fn kvm_busy_says_another_hypervisor_runs() {
        let f = Fake {
            create_errno: Some(libc::EBUSY),
            ..Default::default()
        };
        let e = run(&f, Arch::Amd64, HypervisorType::Qemu).unwrap_err();
        assert!(e.contains("device or resource busy"), "{e}");
        assert!(e.contains("another hypervisor is running"), "{e}");
        let f = Fake {
            create_errno: Some(libc::ENOTTY),
            ..Default::default()
        };
        assert_eq!(
            run(&f, Arch::Amd64, HypervisorType::Qemu).unwrap_err(),
            "cannot create a virtual machine with /dev/kvm: inappropriate ioctl for device"
        );
    }

    #[test]
    fn arm64_reads_the_ipa_limit() {
        let f = Fake {
            ext: Some(Ok(40)),
            ..Default::default()
        };
        let ok = run(&f, Arch::Arm64, HypervisorType::Qemu).unwrap();
        assert_eq!(ok.ipa_limit_bits, Some(40));
        assert_eq!(
            *f.calls.borrow(),
            [
                "open /fake/dev/kvm Kvm",
                "create_vm",
                "open /fake/dev/kvm Kvm",
                "check_extension 165"
            ]
        );
        let zero = Fake {
            ext: Some(Ok(0)),
            ..Default::default()
        };
        assert_eq!(
            run(&zero, Arch::Arm64, HypervisorType::Qemu)
                .unwrap()
                .ipa_limit_bits,
            Some(0)
        );
        let bad = Fake {
            ext: Some(Err(libc::EINVAL)),
            ..Default::default()
        };
        assert!(
            run(&bad, Arch::Arm64, HypervisorType::Qemu)
                .unwrap_err()
                .contains("KVM_CAP_ARM_VM_IPA_SIZE")
        );
    }

    #[test]
    fn acrn_success_creates_and_destroys_slot0() {
        let f = Fake::default();
        let ok = run(&f, Arch::Amd64, HypervisorType::Acrn).unwrap();
        assert_eq!(ok.device, "/dev/acrn_vhm");
        assert_eq!(
            *f.calls.borrow(),
            [
                "open /fake/dev/acrn_vhm Acrn",
                "platform_info",
                "acrn_create uuid0=a7",
                "acrn_destroy"
            ]
        );
    }

    #[test]
    fn acrn_error_paths() {
        let f = Fake {
            platform: Some(Err(libc::ENOTTY)),
            ..Default::default()
        };
        assert!(
            run(&f, Arch::Amd64, HypervisorType::Acrn)
                .unwrap_err()
                .starts_with("IOCTL GetMaxSupportedACRNVM failed")
        );
        let f = Fake {
            platform: Some(Ok(0)),
            ..Default::default()
        };
        assert!(
            run(&f, Arch::Amd64, HypervisorType::Acrn)
                .unwrap_err()
                .starts_with("Invalid UUID: Max VMs reached")
        );
        let f = Fake {
            acrn_create: Some(Ok(-5)),
            ..Default::default()
        };
        assert!(
            run(&f, Arch::Amd64, HypervisorType::Acrn)
                .unwrap_err()
                .contains("ioctl returned -5")
        );
        let f = Fake {
            acrn_destroy: Some(Err(libc::EPERM)),
            ..Default::default()
        };
        assert!(
            run(&f, Arch::Amd64, HypervisorType::Acrn)
                .unwrap_err()
                .contains("destroy the test ACRN VM with /dev/acrn_vhm: operation not permitted")
        );
        assert!(
            run(&Fake::default(), Arch::Arm64, HypervisorType::Acrn)
                .unwrap_err()
                .contains("not supported on arm64")
        );
    }

    #[test]
    fn real_devices_report_errno_for_a_regular_file() {
        // Not a KVM node: the open works, the ioctl fails with ENOTTY. No real /dev involved.
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(dir.path().join("dev")).unwrap();
        std::fs::write(dir.path().join("dev/kvm"), "").unwrap();
        let e = create_vm_test(
            &HostDevices,
            &HostRoot::new(dir.path()),
            Arch::Amd64,
            HypervisorType::Qemu,
            &log(),
        )
        .unwrap_err();
        assert!(e.contains("inappropriate ioctl for device"), "{e}");
        let e = create_vm_test(
            &HostDevices,
            &HostRoot::new(dir.path()),
            Arch::Amd64,
            HypervisorType::Acrn,
            &log(),
        )
        .unwrap_err();
        assert_eq!(e, "open /dev/acrn_vhm: no such file or directory");
    }
}
