//! What a host needs to run Kata Containers (spec §3.4, §3.5): the requirement tables per
//! architecture, CPU vendor and hypervisor, and their evaluation into a [`Report`] with a
//! stable order (spec Q20: kind, then name). Used by `check` and by `env`'s
//! `Host.VMContainerCapable` through [`vm_container_capable`].

use std::process::Command;

use slog::{Logger, error, info, warn};

use crate::config::HypervisorType;
use crate::host::cpuinfo::{self, Vendor};
use crate::host::modules::{self, LoadError, ModuleLoader};
use crate::paths::{DEV_ACRN_VHM, DEV_KVM, DEV_VHOST_VSOCK, HostRoot, PROC_CPUINFO};

/// Names the architecture of the host under `KATA_HOST_ROOT` when it differs from the
/// machine running the binary (an offline image of another architecture, a test fixture).
/// Values are Go's names: `amd64`, `arm64`, `ppc64le`, `s390x`.
pub const HOST_ARCH_ENV: &str = "KATA_HOST_ARCH";

/// The architectures Kata Containers 3.0.0 supports.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Arch {
    Amd64,
    Arm64,
    Ppc64le,
    S390x,
}

impl Arch {
    pub fn as_str(self) -> &'static str {
        match self {
            Arch::Amd64 => "amd64",
            Arch::Arm64 => "arm64",
            Arch::Ppc64le => "ppc64le",
            Arch::S390x => "s390x",
        }
    }

    /// Accepts Go's names and the kernel's (`x86_64`, `aarch64`, `ppc64le`, `s390x`).
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "amd64" | "x86_64" => Some(Arch::Amd64),
            "arm64" | "aarch64" => Some(Arch::Arm64),
            "ppc64le" => Some(Arch::Ppc64le),
            "s390x" => Some(Arch::S390x),
            _ => None,
        }
    }

    /// The architecture this binary runs on.
    pub fn running() -> Result<Self, String> {
        let go = crate::host::go_arch();
        Self::parse(go).ok_or_else(|| {
            format!("architecture {go} is not supported by Kata Containers (supported: amd64, arm64, ppc64le, s390x)")
        })
    }

    /// `KATA_HOST_ARCH` if set, else the running architecture.
    pub fn from_env() -> Result<Self, String> {
        match std::env::var(HOST_ARCH_ENV) {
            Ok(v) if !v.is_empty() => Self::parse(&v).ok_or_else(|| {
                format!("{HOST_ARCH_ENV}=\"{v}\" is not an architecture Kata Containers supports (use amd64, arm64, ppc64le or s390x)")
            }),
            _ => Self::running(),
        }
    }
}

/// What kind of thing a requirement is about; also the sort order of a report.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Kind {
    CpuAttribute,
    CpuFlag,
    Module,
    ModuleParameter,
    Device,
    Smt,
    Asset,
    Kvm,
}

impl Kind {
    pub fn as_str(self) -> &'static str {
        match self {
            Kind::CpuAttribute => "cpu-attribute",
            Kind::CpuFlag => "cpu-flag",
            Kind::Module => "module",
            Kind::ModuleParameter => "module-parameter",
            Kind::Device => "device",
            Kind::Smt => "smt",
            Kind::Asset => "asset",
            Kind::Kvm => "kvm",
        }
    }
}

/// One evaluated requirement.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Requirement {
    pub kind: Kind,
    pub name: String,
    pub description: String,
    /// Required by the tables; optional ones only count with `--strict`.
    pub required: bool,
    pub found: bool,
    /// What was seen (a parameter value, why a probe failed, ...).
    pub detail: Option<String>,
    /// What to do when it is not met.
    pub remedy: Option<String>,
}

/// The evaluated requirements of a host, in stable order.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Report {
    pub strict: bool,
    pub requirements: Vec<Requirement>,
}

impl Report {
    /// True when `r` makes the host not capable.
    pub fn counts(&self, r: &Requirement) -> bool {
        !r.found && (r.required || self.strict)
    }

    /// The requirements that make the host not capable.
    pub fn failures(&self) -> impl Iterator<Item = &Requirement> {
        self.requirements.iter().filter(|r| self.counts(r))
    }

    pub fn capable(&self) -> bool {
        self.failures().next().is_none()
    }

    /// Adds a requirement evaluated elsewhere (configured assets) and logs it like the
    /// others.
    pub fn push_logged(
        &mut self,
        r: Requirement,
        found_msg: &str,
        missing_msg: &str,
        fields: &[(&'static str, String)],
        log: &Logger,
    ) {
        let counted = self.counts(&r);
        let msg = if r.found { found_msg } else { missing_msg };
        emit(log, r.found, counted, msg, &r, fields);
        self.requirements.push(r);
    }
}

/// A CPU flag or attribute the tables ask for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CpuItem {
    pub name: &'static str,
    pub description: &'static str,
}

/// A module parameter value the tables ask for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ParamItem {
    pub name: &'static str,
    pub expected: &'static str,
    pub required: bool,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ModuleItem {
    pub name: &'static str,
    pub description: &'static str,
    pub required: bool,
    pub params: Vec<ParamItem>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeviceItem {
    pub path: &'static str,
    pub description: &'static str,
    pub required: bool,
}

/// The requirement table for one host and hypervisor.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Table {
    pub cpu_flags: Vec<CpuItem>,
    pub cpu_attributes: Vec<CpuItem>,
    pub modules: Vec<ModuleItem>,
    pub devices: Vec<DeviceItem>,
    /// ppc64le: SMT must be off on POWER8 and older.
    pub smt_rule: bool,
}

/// What the CPU probe found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CpuFacts {
    pub arch: Arch,
    /// The first CPU block of `/proc/cpuinfo`.
    pub block: String,
    /// The flags line (amd64), empty elsewhere.
    pub flags: String,
    pub vendor: Option<Vendor>,
    /// amd64: whether the host is itself a VM; `None` where it cannot be known.
    pub on_vm: Option<bool>,
    /// ppc64le: the POWER generation (0 when unknown).
    pub power_generation: Option<u32>,
}

/// Parses `/proc/cpuinfo` text for `arch` (spec §3.5). Errors are the ones that stop
/// `check`: no CPU block, no flags line on amd64, an unknown x86 vendor.
pub fn cpu_facts(arch: Arch, cpuinfo: &str) -> Result<CpuFacts, String> {
    let block = cpuinfo::first_block(cpuinfo)
        .ok_or("Cannot determine CPU details: /proc/cpuinfo has no CPU block")?
        .to_string();
    let mut facts = CpuFacts {
        arch,
        block,
        flags: String::new(),
        vendor: None,
        on_vm: None,
        power_generation: None,
    };
    match arch {
        Arch::Amd64 => {
            facts.flags = cpuinfo::flags(&facts.block, "flags")
                .filter(|f| !f.is_empty())
                .ok_or("Cannot find CPU flags in the first CPU block of /proc/cpuinfo")?
                .to_string();
            facts.on_vm = Some(
                cpuinfo::running_on_vm(cpuinfo)
                    .ok_or("Couldn't find \"flags\" from \"/proc/cpuinfo\" output")?,
            );
            // spec Q13: Hygon is AMD-like; another vendor is an error naming it.
            facts.vendor = Some(cpuinfo::x86_vendor(cpuinfo)?);
        }
        Arch::Ppc64le => {
            facts.power_generation = Some(cpuinfo::power_generation(cpuinfo).unwrap_or(0));
        }
        Arch::Arm64 | Arch::S390x => {}
    }
    Ok(facts)
}

const KVM: ModuleItem = ModuleItem {
    name: "kvm",
    description: "Kernel-based Virtual Machine",
    required: true,
    params: Vec::new(),
};
const VHOST: ModuleItem = ModuleItem {
    name: "vhost",
    description: "Host kernel accelerator for virtio",
    required: true,
    params: Vec::new(),
};
const VHOST_NET: ModuleItem = ModuleItem {
    name: "vhost_net",
    description: "Host kernel accelerator for virtio network",
    required: true,
    params: Vec::new(),
};
const VHOST_VSOCK: ModuleItem = ModuleItem {
    name: "vhost_vsock",
    description: "Host Support for Linux VM Sockets",
    required: false,
    params: Vec::new(),
};
const LM: CpuItem = CpuItem {
    name: "lm",
    description: "64Bit CPU",
};
const SSE41: CpuItem = CpuItem {
    name: "sse4_1",
    description: "SSE4.1",
};
const INTEL: CpuItem = CpuItem {
    name: "GenuineIntel",
    description: "Intel Architecture CPU",
};

fn optional(m: ModuleItem) -> ModuleItem {
    ModuleItem {
        required: false,
        ..m
    }
}

/// The device nodes a hypervisor needs. `/dev/vhost-vsock` is checked here rather than
/// when loading the configuration (spec Q16), for qemu, the only one using vhost-vsock
/// (the others use hybrid vsock over a Unix socket).
fn devices(hypervisor: HypervisorType) -> Vec<DeviceItem> {
    let mut v = Vec::new();
    if hypervisor.uses_kvm() {
        v.push(DeviceItem {
            path: DEV_KVM,
            description: "KVM device node",
            required: true,
        });
    } else {
        v.push(DeviceItem {
            path: DEV_ACRN_VHM,
            description: "ACRN hypervisor service module device",
            required: true,
        });
    }
    if hypervisor == HypervisorType::Qemu {
        v.push(DeviceItem {
            path: DEV_VHOST_VSOCK,
            description: "vhost-vsock device node (VM sockets for the agent)",
            required: true,
        });
    }
    v
}

/// The table for a host (spec §3.4), with the quirks fixed: Q12 (`unrestricted_guest` is
/// required on bare metal), Q13 (Hygon), Q14 (dragonball is KVM), Q15 (the hypervisor
/// matters on AMD too: ACRN is Intel-only).
pub fn table(facts: &CpuFacts, hypervisor: HypervisorType) -> Result<Table, String> {
    let mut t = Table {
        devices: devices(hypervisor),
        ..Default::default()
    };
    match facts.arch {
        Arch::Amd64 => {
            let vendor = facts
                .vendor
                .ok_or("the CPU vendor of this amd64 host is unknown")?;
            if hypervisor == HypervisorType::Acrn {
                // ACRN runs on Intel only, whatever CPU this host has: the attribute fails
                // on AMD and Hygon with a clear name instead of a KVM table (Q15).
                t.cpu_flags = vec![LM, SSE41];
                t.cpu_attributes = vec![INTEL];
                t.modules = vec![
                    ModuleItem {
                        name: "vhm_dev",
                        description: "Intel ACRN",
                        required: false,
                        params: Vec::new(),
                    },
                    optional(VHOST),
                    optional(VHOST_NET),
                ];
                return Ok(t);
            }
            let virt = CpuItem {
                name: if vendor.is_amd_like() { "svm" } else { "vmx" },
                description: "Virtualization support",
            };
            t.cpu_flags = vec![virt, LM, SSE41];
            let vendor_module = match vendor {
                Vendor::Intel => {
                    t.cpu_attributes = vec![INTEL];
                    ModuleItem {
                        name: "kvm_intel",
                        description: "Intel KVM",
                        required: true,
                        // Q12: checked on bare metal; inside a VM the outer hypervisor
                        // decides, so it is only advisory (counts with --strict).
                        params: vec![ParamItem {
                            name: "unrestricted_guest",
                            expected: "Y",
                            required: facts.on_vm == Some(false),
                        }],
                    }
                }
                Vendor::Amd | Vendor::Hygon => {
                    t.cpu_attributes = vec![CpuItem {
                        name: vendor.vendor_id(),
                        description: if vendor == Vendor::Hygon {
                            "Hygon Architecture CPU"
                        } else {
                            "AMD Architecture CPU"
                        },
                    }];
                    ModuleItem {
                        name: "kvm_amd",
                        description: "AMD KVM",
                        required: true,
                        params: Vec::new(),
                    }
                }
            };
            t.modules = vec![KVM, vendor_module, VHOST, VHOST_NET, VHOST_VSOCK];
        }
        other => {
            if hypervisor == HypervisorType::Acrn {
                return Err(format!(
                    "hypervisor acrn is not supported on {} (ACRN runs on Intel amd64 hosts only); choose another hypervisor in the configuration",
                    other.as_str()
                ));
            }
            t.modules = match other {
                Arch::Arm64 => vec![KVM, VHOST, VHOST_NET, VHOST_VSOCK],
                Arch::Ppc64le => vec![
                    KVM,
                    ModuleItem {
                        name: "kvm_hv",
                        description: "Kernel-based Virtual Machine hardware virtualization",
                        required: true,
                        params: Vec::new(),
                    },
                    VHOST_VSOCK,
                ],
                _ => vec![KVM, VHOST_VSOCK],
            };
            t.smt_rule = other == Arch::Ppc64le && facts.power_generation.unwrap_or(0) <= 8;
        }
    }
    Ok(t)
}

/// Whether and how a missing module may be loaded.
pub enum ModuleLoading<'a> {
    /// Never (env, `vm_container_capable`): report only, no side effect (spec Q19/Q28).
    Never,
    /// Not root: say so, as the Go tool does.
    NotRoot,
    /// Root, but the host root is not `/`: modprobe would change this machine's kernel,
    /// not the inspected host's, so it is not run.
    ForeignRoot,
    /// Root on the real host: try this loader.
    Load(&'a dyn ModuleLoader),
}

/// Asks the POWER firmware whether SMT is on (`ppc64_cpu --smt`).
pub trait SmtQuery {
    /// The command's output, or why it could not run.
    fn smt_status(&self) -> Result<String, String>;
}

/// Runs `ppc64_cpu --smt` with `LANG=C` only, as the Go tool does.
#[derive(Debug, Default, Clone, Copy)]
pub struct Ppc64Cpu;

impl SmtQuery for Ppc64Cpu {
    fn smt_status(&self) -> Result<String, String> {
        let out = Command::new("ppc64_cpu")
            .arg("--smt")
            .env_clear()
            .env("LANG", "C")
            .env("PATH", "/usr/sbin:/usr/bin:/sbin:/bin")
            .output()
            .map_err(|e| format!("cannot run ppc64_cpu: {}", crate::errors::os_text(&e)))?;
        if !out.status.success() {
            return Err(format!(
                "ppc64_cpu --smt failed ({}): {}",
                out.status,
                String::from_utf8_lossy(&out.stderr).trim()
            ));
        }
        Ok(String::from_utf8_lossy(&out.stdout).trim().to_string())
    }
}

/// How to evaluate.
pub struct Options<'a> {
    /// `--strict`: optional requirements and unexpected parameter values count (Q18).
    pub strict: bool,
    pub loading: ModuleLoading<'a>,
    /// `None` when SMT cannot be queried (another host root).
    pub smt: Option<&'a dyn SmtQuery>,
}

fn emit(
    log: &Logger,
    found: bool,
    counted: bool,
    msg: &str,
    r: &Requirement,
    extra: &[(&'static str, String)],
) {
    let kv = Fields {
        r,
        extra: extra.to_vec(),
    };
    if found {
        info!(log, "{}", msg; kv);
    } else if counted {
        error!(log, "{}", msg; kv);
    } else {
        warn!(log, "{}", msg; kv);
    }
}

/// The fields of a requirement's log record: `name`, `description`, `type` plus extras.
struct Fields<'a> {
    r: &'a Requirement,
    extra: Vec<(&'static str, String)>,
}

impl slog::KV for Fields<'_> {
    fn serialize(&self, _rec: &slog::Record, s: &mut dyn slog::Serializer) -> slog::Result {
        // The Go tool's `type` values: flag, attribute, module.
        let ty = match self.r.kind {
            Kind::CpuFlag => "flag",
            Kind::CpuAttribute => "attribute",
            k => k.as_str(),
        };
        s.emit_str("type", ty)?;
        s.emit_str("name", &self.r.name)?;
        s.emit_str("description", &self.r.description)?;
        for (k, v) in &self.extra {
            s.emit_str(k, v)?;
        }
        Ok(())
    }
}

struct Eval<'a> {
    host: &'a HostRoot,
    opts: &'a Options<'a>,
    log: &'a Logger,
    report: Report,
}

impl Eval<'_> {
    fn add(
        &mut self,
        r: Requirement,
        found_msg: &str,
        missing_msg: &str,
        extra: &[(&'static str, String)],
    ) {
        let counted = self.report.counts(&r);
        let msg = if r.found { found_msg } else { missing_msg };
        emit(self.log, r.found, counted, msg, &r, extra);
        self.report.requirements.push(r);
    }

    fn cpu(
        &mut self,
        kind: Kind,
        items: &[CpuItem],
        haystack: &str,
        remedy: impl Fn(&str) -> String,
    ) {
        let mut items = items.to_vec();
        items.sort_by_key(|i| i.name);
        for item in items {
            let found = cpuinfo::contains_word(haystack, item.name);
            let r = Requirement {
                kind,
                name: item.name.to_string(),
                description: item.description.to_string(),
                required: true,
                found,
                detail: None,
                remedy: (!found).then(|| remedy(item.name)),
            };
            self.add(r, "CPU property found", "CPU property not found", &[]);
        }
    }

    fn module_present(&mut self, name: &str) -> (bool, Option<String>) {
        if modules::module_present(self.host, name) {
            return (true, None);
        }
        match &self.opts.loading {
            ModuleLoading::Never => (false, Some(format!("/sys/module/{name} does not exist"))),
            ModuleLoading::NotRoot => {
                error!(self.log, "Module is not loaded and it can not be inserted. Please consider running with sudo or as root"; "module" => name);
                (
                    false,
                    Some(format!(
                        "/sys/module/{name} does not exist; not root, so not loaded"
                    )),
                )
            }
            ModuleLoading::ForeignRoot => {
                info!(self.log, "Module is not loaded; not running modprobe because the host root is not /"; "module" => name, "host_root" => self.host.root().display().to_string());
                (
                    false,
                    Some(format!(
                        "/sys/module/{name} does not exist; modprobe not run for host root {}",
                        self.host.root().display()
                    )),
                )
            }
            ModuleLoading::Load(loader) => {
                warn!(self.log, "Module is not loaded; loading it with modprobe"; "module" => name);
                match loader.load(name) {
                    Ok(()) => {
                        info!(self.log, "Module loaded with modprobe"; "module" => name);
                        (true, Some("loaded by this check with modprobe".to_string()))
                    }
                    Err(LoadError::NoModprobe) => {
                        warn!(self.log, "Module is not loaded and modprobe was not found on PATH"; "module" => name);
                        (
                            false,
                            Some(format!(
                                "/sys/module/{name} does not exist; modprobe not found"
                            )),
                        )
                    }
                    Err(LoadError::Failed { error, output }) => {
                        warn!(self.log, "modprobe insert module failed"; "module" => name, "error" => &error, "output" => &output);
                        (
                            false,
                            Some(format!("modprobe {name} failed: {error}: {output}")),
                        )
                    }
                }
            }
        }
    }

    fn modules(&mut self, items: &[ModuleItem]) -> Vec<(ModuleItem, bool)> {
        let mut items = items.to_vec();
        items.sort_by_key(|m| m.name);
        let mut present = Vec::new();
        for m in items {
            let (found, detail) = self.module_present(m.name);
            let r = Requirement {
                kind: Kind::Module,
                name: m.name.to_string(),
                description: m.description.to_string(),
                required: m.required,
                found,
                detail,
                remedy: (!found).then(|| {
                    format!("load it as root with `modprobe {}` (install the kernel's extra modules package if modprobe cannot find it)", m.name)
                }),
            };
            let missing = format!("kernel property {} not found", m.name);
            self.add(r, "kernel property found", &missing, &[]);
            present.push((m, found));
        }
        present
    }

    fn params(&mut self, modules: &[(ModuleItem, bool)]) {
        let mut params: Vec<(&ModuleItem, bool, &ParamItem)> = modules
            .iter()
            .flat_map(|(m, present)| m.params.iter().map(move |p| (m, *present, p)))
            .collect();
        params.sort_by(|a, b| (a.0.name, a.2.name).cmp(&(b.0.name, b.2.name)));
        for (m, present, p) in params {
            let name = format!("{}.{}", m.name, p.name);
            let description = format!("{} parameter {} = {}", m.name, p.name, p.expected);
            let remedy = format!(
                "reload {m} with {p}={e} (as root: `modprobe -r {m} && modprobe {m} {p}={e}`)",
                m = m.name,
                p = p.name,
                e = p.expected
            );
            let mut extra = vec![
                ("parameter", p.name.to_string()),
                ("expected", p.expected.to_string()),
            ];
            let (found, detail) = if !present {
                (false, format!("module {} is not loaded", m.name))
            } else {
                match modules::read_parameter(self.host, m.name, p.name) {
                    Ok(v) => {
                        extra.push(("value", v.clone()));
                        (v == p.expected, format!("value {v}"))
                    }
                    Err(e) => (false, e),
                }
            };
            let r = Requirement {
                kind: Kind::ModuleParameter,
                name,
                description,
                required: p.required,
                found,
                detail: Some(detail),
                remedy: (!found).then_some(remedy),
            };
            // spec Q17: one record per parameter, never "correct" after a mismatch.
            self.add(
                r,
                "Kernel property value correct",
                "kernel module parameter has unexpected value",
                &extra,
            );
        }
    }

    fn devices(&mut self, items: &[DeviceItem]) {
        let mut items = items.to_vec();
        items.sort_by_key(|d| d.path);
        for d in items {
            let found = self.host.join(d.path).exists();
            let remedy = match d.path {
                DEV_KVM => {
                    "load kvm and kvm_intel or kvm_amd (and enable virtualization in the firmware) so that /dev/kvm appears"
                }
                DEV_VHOST_VSOCK => {
                    "load vhost_vsock (`modprobe vhost_vsock` as root) so that /dev/vhost-vsock appears"
                }
                _ => "boot the host under the ACRN hypervisor with its service module",
            };
            let r = Requirement {
                kind: Kind::Device,
                name: d.path.to_string(),
                description: d.description.to_string(),
                required: d.required,
                found,
                detail: None,
                remedy: (!found).then(|| remedy.to_string()),
            };
            self.add(r, "device found", "device not found", &[]);
        }
    }

    fn smt(&mut self, generation: u32) {
        // `known`: a definite answer. Without one (no ppc64_cpu, another host root) the
        // requirement is advisory and counts only with --strict; the Go tool took a missing
        // ppc64_cpu as "off" (spec Q49).
        let (found, known, detail) = match self.opts.smt {
            None => (
                false,
                false,
                "cannot query SMT for another host root".to_string(),
            ),
            Some(q) => match q.smt_status() {
                Ok(out) if out == "SMT is off" => (true, true, out),
                Ok(out) => (false, true, out),
                Err(e) => {
                    warn!(self.log, "ppc64_cpu isn't installed, can't detect SMT"; "error" => &e);
                    (false, false, e)
                }
            },
        };
        let r = Requirement {
            kind: Kind::Smt,
            name: "smt".to_string(),
            description: format!("SMT must be off on POWER{generation} and older POWER8 hosts"),
            required: known,
            found,
            detail: Some(detail),
            remedy: (!found).then(|| "turn SMT off as root with `ppc64_cpu --smt=off`".to_string()),
        };
        self.add(
            r,
            "SMT is off",
            "SMT is not Off. System is not capable of running Kata Containers",
            &[],
        );
    }
}

/// Evaluates `table` against the host, logging one record per requirement in report order
/// (kind, then name; spec Q20).
pub fn evaluate(
    host: &HostRoot,
    facts: &CpuFacts,
    table: &Table,
    opts: &Options<'_>,
    log: &Logger,
) -> Report {
    let mut ev = Eval {
        host,
        opts,
        log,
        report: Report {
            strict: opts.strict,
            requirements: Vec::new(),
        },
    };
    if facts.arch != Arch::Amd64 {
        info!(log, "Unable to know if the system is running inside a VM");
    }
    ev.cpu(
        Kind::CpuAttribute,
        &table.cpu_attributes,
        &facts.block,
        |name| format!("this hypervisor needs a CPU whose vendor is {name}"),
    );
    ev.cpu(Kind::CpuFlag, &table.cpu_flags, &facts.flags, |name| match name {
        "vmx" | "svm" => "enable hardware virtualization (VT-x / AMD-V) in the firmware settings; inside a VM, enable nested virtualization on the outer host".to_string(),
        other => format!("this CPU lacks {other}; Kata Containers needs it"),
    });
    let mods = ev.modules(&table.modules);
    ev.params(&mods);
    ev.devices(&table.devices);
    if table.smt_rule {
        ev.smt(facts.power_generation.unwrap_or(0));
    }
    ev.report
}

/// Probes the CPU of the host for `arch`.
pub fn probe_cpu(host: &HostRoot, arch: Arch) -> Result<CpuFacts, String> {
    let text = crate::host::read_host_file(host, PROC_CPUINFO)?;
    cpu_facts(arch, &text)
}

/// Whether the host can run Kata Containers VMs with `hypervisor` (`env`'s
/// `Host.VMContainerCapable`): the same probes and tables as `check`, without network,
/// configuration assets or the create-VM test, and with no side effect at all (no modprobe,
/// spec Q19/Q28). The architecture is `KATA_HOST_ARCH` or the running one.
pub fn vm_container_capable(host: &HostRoot, hypervisor: HypervisorType, log: &Logger) -> bool {
    let result = Arch::from_env().and_then(|arch| {
        let facts = probe_cpu(host, arch)?;
        let table = table(&facts, hypervisor)?;
        let smt = Ppc64Cpu;
        let opts = Options {
            strict: false,
            loading: ModuleLoading::Never,
            smt: host.is_real_root().then_some(&smt as &dyn SmtQuery),
        };
        Ok(evaluate(host, &facts, &table, &opts, log).capable())
    });
    match result {
        Ok(c) => c,
        Err(e) => {
            warn!(log, "cannot tell whether this host can run Kata Containers"; "error" => e);
            false
        }
    }
}

#[cfg(test)]
mod tests {
    use std::cell::RefCell;

    use super::*;

    const INTEL_BM: &str = "processor\t: 0\nvendor_id\t: GenuineIntel\nmodel name\t: Intel(R) Xeon(R) Gold 6230 CPU @ 2.10GHz\nflags\t\t: fpu vme lm vmx sse4_1 sse4_2\n\n";
    const INTEL_VM: &str = "processor\t: 0\nvendor_id\t: GenuineIntel\nflags\t\t: fpu vme lm vmx sse4_1 hypervisor\n\n";
    const AMD: &str = "processor\t: 0\nvendor_id\t: AuthenticAMD\nflags\t\t: fpu lm svm sse4_1\n\n";
    const HYGON: &str =
        "processor\t: 0\nvendor_id\t: HygonGenuine\nflags\t\t: fpu lm svm sse4_1\n\n";

    fn log() -> Logger {
        Logger::root(slog::Discard, slog::o!())
    }

    fn names(t: &Table) -> Vec<&str> {
        t.modules.iter().map(|m| m.name).collect()
    }

    #[test]
    fn intel_kvm_table_requires_unrestricted_guest_on_bare_metal_only() {
        let bm = cpu_facts(Arch::Amd64, INTEL_BM).unwrap();
        assert_eq!(bm.on_vm, Some(false));
        let t = table(&bm, HypervisorType::Qemu).unwrap();
        assert_eq!(
            names(&t),
            ["kvm", "kvm_intel", "vhost", "vhost_net", "vhost_vsock"]
        );
        assert_eq!(t.cpu_flags[0].name, "vmx");
        assert!(t.modules[1].params[0].required);
        let vm = cpu_facts(Arch::Amd64, INTEL_VM).unwrap();
        let t = table(&vm, HypervisorType::Qemu).unwrap();
        assert!(!t.modules[1].params[0].required);
    }

    #[test]
    fn amd_and_hygon_use_svm_and_kvm_amd() {
        for (text, attr) in [(AMD, "AuthenticAMD"), (HYGON, "HygonGenuine")] {
            let f = cpu_facts(Arch::Amd64, text).unwrap();
            let t = table(&f, HypervisorType::Clh).unwrap();
            assert_eq!(t.cpu_flags[0].name, "svm");
            assert_eq!(t.cpu_attributes[0].name, attr);
            assert_eq!(t.modules[1].name, "kvm_amd");
            // clh needs no vhost-vsock node (hybrid vsock).
            assert_eq!(t.devices.len(), 1);
        }
    }

    #[test]
    fn acrn_is_intel_only_even_on_amd() {
        let f = cpu_facts(Arch::Amd64, AMD).unwrap();
        let t = table(&f, HypervisorType::Acrn).unwrap();
        assert_eq!(t.cpu_attributes[0].name, "GenuineIntel");
        assert!(t.modules.iter().all(|m| !m.required));
        assert_eq!(t.devices[0].path, "/dev/acrn_vhm");
        let arm = cpu_facts(Arch::Arm64, "processor : 0\nFeatures : fp asimd\n").unwrap();
        assert!(
            table(&arm, HypervisorType::Acrn)
                .unwrap_err()
                .contains("not supported on arm64")
        );
    }

    #[test]
    fn cpu_fact_errors() {
        assert!(
            cpu_facts(Arch::Amd64, "\n\n")
                .unwrap_err()
                .starts_with("Cannot determine CPU details")
        );
        assert!(
            cpu_facts(Arch::Amd64, "vendor_id : GenuineIntel\n")
                .unwrap_err()
                .contains("Cannot find CPU flags")
        );
        let e = cpu_facts(Arch::Amd64, "vendor_id : CentaurHauls\nflags : lm vmx\n").unwrap_err();
        assert!(e.contains("\"CentaurHauls\""), "{e}");
    }

    #[test]
    fn ppc64le_smt_rule_by_generation() {
        let p8 = cpu_facts(
            Arch::Ppc64le,
            "processor : 0\ncpu : POWER8E (raw), altivec supported\n",
        )
        .unwrap();
        assert!(table(&p8, HypervisorType::Qemu).unwrap().smt_rule);
        let p10 = cpu_facts(
            Arch::Ppc64le,
            "processor : 0\ncpu : POWER10 (architected)\n",
        )
        .unwrap();
        assert!(!table(&p10, HypervisorType::Qemu).unwrap().smt_rule);
        let s390 = cpu_facts(Arch::S390x, "vendor_id : IBM/S390\n").unwrap();
        assert_eq!(
            names(&table(&s390, HypervisorType::Qemu).unwrap()),
            ["kvm", "vhost_vsock"]
        );
    }

    struct Recorder(RefCell<Vec<String>>, bool);
    impl ModuleLoader for Recorder {
        fn load(&self, module: &str) -> Result<(), LoadError> {
            self.0.borrow_mut().push(module.to_string());
            if self.1 {
                Ok(())
            } else {
                Err(LoadError::Failed {
                    error: "exit status: 1".into(),
                    output: format!("modprobe: FATAL: Module {module} not found"),
                })
            }
        }
    }

    struct Smt(Result<&'static str, &'static str>);
    impl SmtQuery for Smt {
        fn smt_status(&self) -> Result<String, String> {
            self.0.map(String::from).map_err(String::from)
        }
    }

    fn fake_host(modules: &[&str]) -> tempfile::TempDir {
        let dir = tempfile::tempdir().unwrap();
        for m in modules {
            std::fs::create_dir_all(dir.path().join("sys/module").join(m)).unwrap();
        }
        std::fs::create_dir_all(dir.path().join("dev")).unwrap();
        dir
    }

    #[test]
    fn evaluation_order_is_sorted_and_strict_counts_optional() {
        let dir = fake_host(&["kvm", "kvm_intel", "vhost", "vhost_net"]);
        std::fs::create_dir_all(dir.path().join("sys/module/kvm_intel/parameters")).unwrap();
        std::fs::write(
            dir.path()
                .join("sys/module/kvm_intel/parameters/unrestricted_guest"),
            "Y\n",
        )
        .unwrap();
        std::fs::write(dir.path().join("dev/kvm"), "").unwrap();
        std::fs::write(dir.path().join("dev/vhost-vsock"), "").unwrap();
        let host = HostRoot::new(dir.path());
        let f = cpu_facts(Arch::Amd64, INTEL_BM).unwrap();
        let t = table(&f, HypervisorType::Qemu).unwrap();
        let opts = Options {
            strict: false,
            loading: ModuleLoading::Never,
            smt: None,
        };
        let r = evaluate(&host, &f, &t, &opts, &log());
        let order: Vec<String> = r
            .requirements
            .iter()
            .map(|r| format!("{}:{}", r.kind.as_str(), r.name))
            .collect();
        assert_eq!(
            order,
            [
                "cpu-attribute:GenuineIntel",
                "cpu-flag:lm",
                "cpu-flag:sse4_1",
                "cpu-flag:vmx",
                "module:kvm",
                "module:kvm_intel",
                "module:vhost",
                "module:vhost_net",
                "module:vhost_vsock",
                "module-parameter:kvm_intel.unrestricted_guest",
                "device:/dev/kvm",
                "device:/dev/vhost-vsock",
            ]
        );
        assert!(r.capable());
        let strict = Options {
            strict: true,
            ..opts
        };
        let r = evaluate(&host, &f, &t, &strict, &log());
        assert!(!r.capable());
        assert_eq!(
            r.failures().map(|r| r.name.as_str()).collect::<Vec<_>>(),
            ["vhost_vsock"]
        );
    }

    #[test]
    fn unexpected_parameter_value_fails_on_bare_metal_and_only_strict_in_a_vm() {
        let dir = fake_host(&["kvm", "kvm_intel", "vhost", "vhost_net", "vhost_vsock"]);
        std::fs::create_dir_all(dir.path().join("sys/module/kvm_intel/parameters")).unwrap();
        std::fs::write(
            dir.path()
                .join("sys/module/kvm_intel/parameters/unrestricted_guest"),
            "N\n",
        )
        .unwrap();
        std::fs::write(dir.path().join("dev/kvm"), "").unwrap();
        std::fs::write(dir.path().join("dev/vhost-vsock"), "").unwrap();
        let host = HostRoot::new(dir.path());
        let opts = |strict| Options {
            strict,
            loading: ModuleLoading::Never,
            smt: None,
        };
        let bm = cpu_facts(Arch::Amd64, INTEL_BM).unwrap();
        let r = evaluate(
            &host,
            &bm,
            &table(&bm, HypervisorType::Qemu).unwrap(),
            &opts(false),
            &log(),
        );
        let fails: Vec<_> = r.failures().collect();
        assert_eq!(fails.len(), 1);
        assert_eq!(fails[0].detail.as_deref(), Some("value N"));
        let vm = cpu_facts(Arch::Amd64, INTEL_VM).unwrap();
        let t = table(&vm, HypervisorType::Qemu).unwrap();
        assert!(evaluate(&host, &vm, &t, &opts(false), &log()).capable());
        assert!(!evaluate(&host, &vm, &t, &opts(true), &log()).capable());
    }

    #[test]
    fn modprobe_is_used_only_when_asked() {
        let dir = fake_host(&["kvm"]);
        std::fs::write(dir.path().join("dev/kvm"), "").unwrap();
        let host = HostRoot::new(dir.path());
        let f = cpu_facts(Arch::Arm64, "processor : 0\nFeatures : fp asimd\n").unwrap();
        let t = table(&f, HypervisorType::Clh).unwrap();
        let ok = Recorder(RefCell::new(Vec::new()), true);
        let r = evaluate(
            &host,
            &f,
            &t,
            &Options {
                strict: false,
                loading: ModuleLoading::Load(&ok),
                smt: None,
            },
            &log(),
        );
        assert_eq!(*ok.0.borrow(), ["vhost", "vhost_net", "vhost_vsock"]);
        assert!(r.capable());
        let bad = Recorder(RefCell::new(Vec::new()), false);
        let r = evaluate(
            &host,
            &f,
            &t,
            &Options {
                strict: false,
                loading: ModuleLoading::Load(&bad),
                smt: None,
            },
            &log(),
        );
        assert!(!r.capable());
        assert!(r.requirements.iter().any(|r| {
            r.detail
                .as_deref()
                .is_some_and(|d| d.contains("FATAL: Module vhost not found"))
        }));
        for loading in [
            ModuleLoading::Never,
            ModuleLoading::NotRoot,
            ModuleLoading::ForeignRoot,
        ] {
            let r = evaluate(
                &host,
                &f,
                &t,
                &Options {
                    strict: false,
                    loading,
                    smt: None,
                },
                &log(),
            );
            assert_eq!(r.failures().count(), 2, "vhost and vhost_net");
        }
    }

    #[test]
    fn smt_rule_outcomes() {
        let dir = fake_host(&["kvm", "kvm_hv"]);
        std::fs::write(dir.path().join("dev/kvm"), "").unwrap();
        let host = HostRoot::new(dir.path());
        let f = cpu_facts(Arch::Ppc64le, "processor : 0\ncpu : POWER8 (raw)\n").unwrap();
        let t = table(&f, HypervisorType::Clh).unwrap();
        let run = |q: Option<&dyn SmtQuery>, strict| {
            evaluate(
                &host,
                &f,
                &t,
                &Options {
                    strict,
                    loading: ModuleLoading::Never,
                    smt: q,
                },
                &log(),
            )
            .capable()
        };
        assert!(run(Some(&Smt(Ok("SMT is off"))), false));
        assert!(!run(Some(&Smt(Ok("SMT=8"))), false));
        assert!(run(
            Some(&Smt(Err("cannot run ppc64_cpu: no such file or directory"))),
            false
        ));
        assert!(!run(
            Some(&Smt(Err("cannot run ppc64_cpu: no such file or directory"))),
            true
        ));
        assert!(run(None, false));
    }

    #[test]
    fn vm_container_capable_is_false_without_cpuinfo() {
        let dir = fake_host(&[]);
        assert!(!vm_container_capable(
            &HostRoot::new(dir.path()),
            HypervisorType::Qemu,
            &log()
        ));
    }
}
