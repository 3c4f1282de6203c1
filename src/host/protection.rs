//! Guest protections (confidential computing) the host offers, for `env`'s
//! `Host.AvailableGuestProtections` (spec §4.2): TDX or SEV on amd64, PEF on ppc64le, Secure
//! Execution on s390x. Read-only probes of sysfs, procfs and `/proc/cpuinfo`.

use crate::host::cpuinfo;
use crate::paths::{
    HostRoot, PROC_CMDLINE, SYS_FIRMWARE_TDX_SEAM, SYS_FIRMWARE_ULTRAVISOR, SYS_KVM_AMD_SEV,
};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Protection {
    Tdx,
    Sev,
    Pef,
    Se,
}

impl Protection {
    /// The name `env` prints.
    pub fn as_str(self) -> &'static str {
        match self {
            Protection::Tdx => "tdx",
            Protection::Sev => "sev",
            Protection::Pef => "pef",
            Protection::Se => "se",
        }
    }
}

/// The protection this host offers on `arch` (GOARCH name), if any. `cpuinfo` is the text of
/// `/proc/cpuinfo` (empty when unreadable). Errors reading the probes count as "none", as in
/// the Go tool.
pub fn available(host: &HostRoot, arch: &str, cpuinfo: &str) -> Option<Protection> {
    match arch {
        "amd64" => {
            let tdx_flag = cpuinfo::first_block(cpuinfo)
                .and_then(|b| cpuinfo::flags(b, "flags"))
                .is_some_and(|f| f.split_whitespace().any(|w| w == "tdx"));
            if tdx_flag || host.join(SYS_FIRMWARE_TDX_SEAM).is_dir() {
                return Some(Protection::Tdx);
            }
            let sev = std::fs::read(host.join(SYS_KVM_AMD_SEV)).unwrap_or_default();
            matches!(sev.first(), Some(b'1' | b'Y')).then_some(Protection::Sev)
        }
        "ppc64le" => host
            .join(SYS_FIRMWARE_ULTRAVISOR)
            .is_dir()
            .then_some(Protection::Pef),
        "s390x" => {
            let facility = cpuinfo::first_block(cpuinfo)
                .and_then(|b| cpuinfo::field(b, "facilities"))
                .is_some_and(|f| f.split_whitespace().any(|w| w == "158"));
            if !facility {
                return None;
            }
            let cmdline = std::fs::read_to_string(host.join(PROC_CMDLINE)).unwrap_or_default();
            prot_virt_enabled(&cmdline).then_some(Protection::Se)
        }
        _ => None,
    }
}

/// s390x: `prot_virt=1|on|y|yes` on the kernel command line (the last one counts).
pub fn prot_virt_enabled(cmdline: &str) -> bool {
    cmdline
        .split_whitespace()
        .filter_map(|w| w.strip_prefix("prot_virt="))
        .next_back()
        .is_some_and(|v| matches!(v.to_ascii_lowercase().as_str(), "1" | "on" | "y" | "yes"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn root() -> (tempfile::TempDir, HostRoot) {
        let d = tempfile::tempdir().unwrap();
        let h = HostRoot::new(d.path());
        (d, h)
    }

    fn write(h: &HostRoot, p: &str, text: &str) {
        let p = h.join(p);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(p, text).unwrap();
    }

    #[test]
    fn amd64_tdx_then_sev() {
        let (_d, h) = root();
        assert_eq!(available(&h, "amd64", "flags : vmx lm\n"), None);
        assert_eq!(
            available(&h, "amd64", "flags : vmx tdx lm\n"),
            Some(Protection::Tdx)
        );
        write(&h, SYS_KVM_AMD_SEV, "N\n");
        assert_eq!(available(&h, "amd64", "flags : svm\n"), None);
        write(&h, SYS_KVM_AMD_SEV, "Y\n");
        assert_eq!(
            available(&h, "amd64", "flags : svm\n"),
            Some(Protection::Sev)
        );
        write(&h, SYS_KVM_AMD_SEV, "1\n");
        assert_eq!(available(&h, "amd64", ""), Some(Protection::Sev));
        std::fs::create_dir_all(h.join(SYS_FIRMWARE_TDX_SEAM)).unwrap();
        assert_eq!(available(&h, "amd64", ""), Some(Protection::Tdx));
    }

    #[test]
    fn ppc64le_pef_and_arm64_none() {
        let (_d, h) = root();
        assert_eq!(available(&h, "ppc64le", ""), None);
        std::fs::create_dir_all(h.join(SYS_FIRMWARE_ULTRAVISOR)).unwrap();
        assert_eq!(available(&h, "ppc64le", ""), Some(Protection::Pef));
        assert_eq!(available(&h, "arm64", ""), None);
    }

    #[test]
    fn s390x_needs_facility_158_and_prot_virt() {
        let (_d, h) = root();
        let cpu = "vendor_id : IBM/S390\nfacilities : 0 1 2 158 159\n";
        assert_eq!(available(&h, "s390x", cpu), None);
        write(&h, PROC_CMDLINE, "root=/dev/dasda1 prot_virt=On\n");
        assert_eq!(available(&h, "s390x", cpu), Some(Protection::Se));
        assert_eq!(
            available(
                &h,
                "s390x",
                "vendor_id : IBM/S390\nfacilities : 0 1 2 1580\n"
            ),
            None
        );
        assert!(!prot_virt_enabled("prot_virt=1 prot_virt=0"));
        assert!(prot_virt_enabled("prot_virt=yes"));
        assert!(!prot_virt_enabled("xprot_virt=1"));
    }
}
