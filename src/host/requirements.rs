//! Whether the host can run Kata VMs: the CPU flags and kernel modules of spec §3.4, probed
//! read-only (never `modprobe`: spec Q19/Q28). Shared by `check` and `env`
//! (`Host.VMContainerCapable`).
//!
//! This is the minimal form `env` needs; `check` owns the full requirement tables.

use slog::{Logger, error, info};

use crate::config::HypervisorType;
use crate::host::cpuinfo::{self, Vendor};
use crate::paths::{HostRoot, PROC_CPUINFO, SYS_MODULE};

/// True when every required CPU flag is present and every required module is loaded.
/// Missing items are logged as errors (as `check` logs them); unreadable `/proc/cpuinfo` or an
/// unknown CPU vendor make the answer false.
pub fn vm_container_capable(host: &HostRoot, hypervisor: HypervisorType, log: &Logger) -> bool {
    let modules: &[&str] = match std::env::consts::ARCH {
        "x86_64" => return x86_capable(host, hypervisor, log),
        "aarch64" => &["kvm", "vhost", "vhost_net"],
        "powerpc64" => &["kvm", "kvm_hv"],
        "s390x" => &["kvm"],
        other => {
            error!(log, "unsupported architecture"; "arch" => other);
            return false;
        }
    };
    modules_loaded(host, modules, log)
}

fn x86_capable(host: &HostRoot, hypervisor: HypervisorType, log: &Logger) -> bool {
    let text = match super::read_host_file(host, PROC_CPUINFO) {
        Ok(t) => t,
        Err(e) => {
            error!(log, "cannot read CPU details"; "error" => e);
            return false;
        }
    };
    let vendor = match cpuinfo::x86_vendor(&text) {
        Ok(v) => v,
        Err(e) => {
            error!(log, "{e}");
            return false;
        }
    };
    let Some(block) = cpuinfo::first_block(&text) else {
        error!(log, "Cannot determine CPU details"; "file" => PROC_CPUINFO);
        return false;
    };
    let cpu_flags = cpuinfo::flags(block, "flags").unwrap_or("");
    let (virt, kvm_vendor) = match vendor {
        Vendor::Intel => ("vmx", "kvm_intel"),
        Vendor::Amd | Vendor::Hygon => ("svm", "kvm_amd"),
    };
    // ACRN on Intel needs no VMX flag and no KVM modules (spec §3.4).
    let acrn_on_intel = vendor == Vendor::Intel && hypervisor == HypervisorType::Acrn;
    let (flags, modules): (&[&str], &[&str]) = if acrn_on_intel {
        (&["lm", "sse4_1"], &[])
    } else {
        (
            &[virt, "lm", "sse4_1"],
            &["kvm", kvm_vendor, "vhost", "vhost_net"],
        )
    };
    let mut ok = true;
    for f in flags {
        if cpuinfo::contains_word(cpu_flags, f) {
            info!(log, "CPU property found"; "type" => "flag", "name" => *f);
        } else {
            error!(log, "CPU property not found"; "type" => "flag", "name" => *f);
            ok = false;
        }
    }
    if !cpuinfo::contains_word(block, vendor.vendor_id()) {
        error!(log, "CPU property not found"; "type" => "attribute", "name" => vendor.vendor_id());
        ok = false;
    }
    modules_loaded(host, modules, log) && ok
}

/// Every module in `names` has a `/sys/module/<name>` directory.
fn modules_loaded(host: &HostRoot, names: &[&str], log: &Logger) -> bool {
    let mut ok = true;
    for name in names {
        if host.join(SYS_MODULE).join(name).exists() {
            info!(log, "kernel property found"; "type" => "module", "name" => *name);
        } else {
            error!(log, "kernel property {} not found", name; "type" => "module", "name" => *name);
            ok = false;
        }
    }
    ok
}

#[cfg(all(test, target_arch = "x86_64"))]
mod tests {
    use super::*;

    fn host(cpuinfo: &str, modules: &[&str]) -> (tempfile::TempDir, HostRoot) {
        let d = tempfile::tempdir().unwrap();
        let h = HostRoot::new(d.path());
        std::fs::create_dir_all(h.join("/proc")).unwrap();
        std::fs::write(h.join(PROC_CPUINFO), cpuinfo).unwrap();
        for m in modules {
            std::fs::create_dir_all(h.join(SYS_MODULE).join(m)).unwrap();
        }
        (d, h)
    }

    fn log() -> Logger {
        Logger::root(slog::Discard, slog::o!())
    }

    const INTEL: &str = "vendor_id\t: GenuineIntel\nflags\t\t: fpu vmx lm sse4_1\n\n";
    const AMD_VM: &str = "vendor_id\t: AuthenticAMD\nflags\t\t: fpu lm sse4_1 hypervisor\n\n";

    #[test]
    fn intel_with_all_modules_is_capable() {
        let (_d, h) = host(INTEL, &["kvm", "kvm_intel", "vhost", "vhost_net"]);
        assert!(vm_container_capable(&h, HypervisorType::Qemu, &log()));
        let (_d, h) = host(INTEL, &["kvm", "kvm_intel", "vhost"]);
        assert!(!vm_container_capable(&h, HypervisorType::Qemu, &log()));
    }

    #[test]
    fn amd_vm_without_svm_is_not() {
        let (_d, h) = host(AMD_VM, &["kvm", "kvm_amd", "vhost", "vhost_net"]);
        assert!(!vm_container_capable(&h, HypervisorType::Clh, &log()));
    }

    #[test]
    fn unreadable_or_unknown_cpu_is_not() {
        let (_d, h) = host("", &[]);
        assert!(!vm_container_capable(&h, HypervisorType::Qemu, &log()));
        let (_d, h) = host("vendor_id : CentaurHauls\nflags : vmx\n", &[]);
        assert!(!vm_container_capable(&h, HypervisorType::Qemu, &log()));
    }
}
