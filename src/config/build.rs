//! Turns the decoded file into the effective configuration: hypervisor table choice
//! (§2.5, Q7/Q8 made deterministic), per-type construction (§2.6), agent, runtime and
//! factory settings, kernel parameters (§2.9) and the memory/image checks (§2.10).

use std::io;
use std::path::{Path, PathBuf};

use super::kernel_params::{self, KernelParam, parse_kernel_params};
use super::load::{AssetPolicy, LoadError};
use super::raw::{RawAgent, RawFile, RawHypervisor};
use super::{
    AgentConfig, Config, ConfigSource, DEFAULT_TEMPLATE_PATH, DEFAULT_VM_CACHE_ENDPOINT,
    FactoryConfig, HypervisorConfig, HypervisorType, LoadNote, MissingAsset, NoteLevel,
    RuntimeConfig,
};
use crate::errors::os_text;
use crate::host::{host_memory_mib, usable_cpus};
use crate::paths::HostRoot;

pub const DEFAULT_HYPERVISOR_PATH: &str = "/usr/bin/qemu-system-x86_64";
pub const DEFAULT_JAILER_PATH: &str = "/usr/bin/jailer";
pub const DEFAULT_CTL_PATH: &str = "/usr/bin/acrnctl";
pub const DEFAULT_KERNEL: &str = "/usr/share/kata-containers/vmlinuz.container";
pub const DEFAULT_IMAGE: &str = "/usr/share/kata-containers/kata-containers.img";
pub const DEFAULT_INITRD: &str = "/usr/share/kata-containers/kata-containers-initrd.img";
pub const DEFAULT_MACHINE_TYPE: &str = "q35";
pub const DEFAULT_MEMORY_MIB: u32 = 2048;
pub const MIN_MEMORY_MIB: u32 = 256;
pub const DEFAULT_MEMORY_SLOTS: u32 = 10;
pub const DEFAULT_BRIDGES: u32 = 1;
pub const MAX_BRIDGES: u32 = 5;
pub const DEFAULT_BLOCK_DRIVER: &str = "virtio-scsi";
pub const DEFAULT_BLOCK_AIO: &str = "io_uring";
pub const DEFAULT_SHARED_FS: &str = "virtio-fs";
pub const DEFAULT_VIRTIO_FS_CACHE: &str = "none";
pub const DEFAULT_MSIZE_9P: u32 = 8192;
pub const DEFAULT_ENTROPY_SOURCE: &str = "/dev/urandom";
pub const DEFAULT_VHOST_USER_STORE: &str = "/var/run/kata-containers/vhost-user/";
pub const DEFAULT_INTERNETWORKING_MODEL: &str = "tcfilter";
pub const DEFAULT_VFIO_MODE: &str = "guest-kernel";

const BLOCK_DRIVERS: &[&str] = &[
    "virtio-scsi",
    "virtio-blk",
    "virtio-mmio",
    "nvdimm",
    "virtio-blk-ccw",
];
const BLOCK_AIOS: &[&str] = &["io_uring", "native", "threads"];
const SHARED_FSES: &[&str] = &["virtio-9p", "virtio-fs", "virtio-fs-nydus"];
const NET_MODELS: &[&str] = &["default", "macvtap", "tcfilter", "none"];
const VFIO_MODES: &[&str] = &["vfio", "guest-kernel"];

/// The most vCPUs a guest can have on this architecture (spec §0.2).
pub fn arch_max_vcpus() -> u32 {
    match std::env::consts::ARCH {
        "aarch64" => 123,
        "powerpc64" => 128,
        "s390x" => 248,
        _ => 240,
    }
}

struct Ctx<'a> {
    host: &'a HostRoot,
    file: &'a str,
    policy: AssetPolicy,
    missing: Vec<MissingAsset>,
    notes: Vec<LoadNote>,
}

impl Ctx<'_> {
    fn err(&self, msg: impl std::fmt::Display) -> LoadError {
        LoadError::in_file(self.file, msg)
    }

    fn note(&mut self, level: NoteLevel, message: impl Into<String>) {
        self.notes.push(LoadNote {
            level,
            message: message.into(),
        });
    }

    /// Resolves a configured asset path (absolute, symlinks resolved, must exist). Under
    /// [`AssetPolicy::Report`] a missing asset is recorded and the path kept as configured.
    fn resolve(&mut self, key: &str, configured: &str) -> Result<PathBuf, LoadError> {
        match self.host.canonicalize(configured) {
            Ok(p) => Ok(p),
            Err(e) => {
                let reason = if e.kind() == io::ErrorKind::NotFound {
                    "does not exist".to_string()
                } else {
                    os_text(&e)
                };
                match self.policy {
                    AssetPolicy::Require => {
                        Err(self.err(format!("{key}: file {configured} {reason}")))
                    }
                    AssetPolicy::Report => {
                        self.missing.push(MissingAsset {
                            key: key.to_string(),
                            path: PathBuf::from(configured),
                            reason,
                        });
                        Ok(PathBuf::from(configured))
                    }
                }
            }
        }
    }

    fn resolve_opt(&mut self, key: &str, configured: &str) -> Result<PathBuf, LoadError> {
        if configured.is_empty() {
            Ok(PathBuf::new())
        } else {
            self.resolve(key, configured)
        }
    }
}

pub(super) fn build(
    host: &HostRoot,
    source: ConfigSource,
    file: &str,
    raw: RawFile,
    policy: AssetPolicy,
    notes: Vec<LoadNote>,
) -> Result<Config, LoadError> {
    let mut cx = Ctx {
        host,
        file,
        policy,
        missing: Vec::new(),
        notes,
    };
    let runtime = build_runtime(&mut cx, &raw)?;

    // spec Q7: an unknown table name or several hypervisor tables is an error, not a coin toss.
    let unknown: Vec<&String> = raw
        .hypervisor
        .keys()
        .filter(|n| HypervisorType::from_table(n).is_none())
        .collect();
    if !unknown.is_empty() {
        return Err(cx.err(format!(
            "unknown hypervisor table{} {}: use one of [hypervisor.qemu], [hypervisor.clh], [hypervisor.firecracker], [hypervisor.acrn], [hypervisor.dragonball]",
            if unknown.len() > 1 { "s" } else { "" },
            list_tables("hypervisor", unknown.iter().map(|s| s.as_str()))
        )));
    }
    if raw.hypervisor.len() > 1 {
        return Err(cx.err(format!(
            "more than one hypervisor table ({}): keep exactly one",
            list_tables("hypervisor", raw.hypervisor.keys().map(|s| s.as_str()))
        )));
    }
    // spec Q8: likewise for agent tables.
    if raw.agent.len() > 1 {
        return Err(cx.err(format!(
            "more than one agent table ({}): keep exactly one",
            list_tables("agent", raw.agent.keys().map(|s| s.as_str()))
        )));
    }

    let (hypervisor_type, mut hypervisor) = match raw.hypervisor.iter().next() {
        Some((name, h)) => {
            let t = HypervisorType::from_table(name).expect("checked above");
            (t, build_hypervisor(&mut cx, t, h)?)
        }
        None => (HypervisorType::Qemu, fallback_hypervisor()),
    };

    let agent = match raw.agent.iter().next() {
        Some((name, a)) => build_agent(name, a),
        None => AgentConfig::default(),
    };

    let factory = FactoryConfig {
        enable_template: raw.factory.enable_template,
        template_path: if raw.factory.template_path.is_empty() {
            DEFAULT_TEMPLATE_PATH.into()
        } else {
            raw.factory.template_path.clone().into()
        },
        vm_cache_number: raw.factory.vm_cache_number,
        vm_cache_endpoint: if raw.factory.vm_cache_endpoint.is_empty() {
            DEFAULT_VM_CACHE_ENDPOINT.into()
        } else {
            raw.factory.vm_cache_endpoint.clone().into()
        },
    };

    let kernel_params = build_kernel_params(&hypervisor, &agent);
    // Keep the user's own list on the hypervisor too: `factory` passes it to QEMU.
    hypervisor.kernel_params = kernel_params.clone();

    if runtime.disable_new_netns && runtime.internetworking_model != "none" {
        return Err(cx.err("config disable_new_netns only works with 'none' internetworking_model"));
    }
    check_memory_and_images(&mut cx, &hypervisor)?;
    if factory.enable_template && hypervisor.initrd.as_os_str().is_empty() {
        return Err(cx.err("Factory option enable_template requires an initrd image"));
    }
    if factory.vm_cache_number > 0 && hypervisor_type != HypervisorType::Qemu {
        return Err(cx.err("VM cache just support qemu"));
    }

    Ok(Config {
        source,
        hypervisor_type,
        hypervisor,
        agent,
        runtime,
        factory,
        kernel_params,
        missing_assets: cx.missing,
        notes: cx.notes,
    })
}

fn list_tables<'a>(section: &str, names: impl Iterator<Item = &'a str>) -> String {
    names
        .map(|n| format!("[{section}.{n}]"))
        .collect::<Vec<_>>()
        .join(", ")
}

fn build_runtime(cx: &mut Ctx<'_>, raw: &RawFile) -> Result<RuntimeConfig, LoadError> {
    let r = &raw.runtime;
    // spec Q6: absent keys get the intended defaults.
    let internetworking_model = if r.internetworking_model.is_empty() {
        DEFAULT_INTERNETWORKING_MODEL.to_string()
    } else if NET_MODELS.contains(&r.internetworking_model.as_str()) {
        r.internetworking_model.clone()
    } else {
        return Err(cx.err(format!(
            "runtime.internetworking_model: Unknown type {} (supported: {})",
            r.internetworking_model,
            NET_MODELS.join(", ")
        )));
    };
    let vfio_mode = if r.vfio_mode.is_empty() {
        DEFAULT_VFIO_MODE.to_string()
    } else if VFIO_MODES.contains(&r.vfio_mode.as_str()) {
        r.vfio_mode.clone()
    } else {
        return Err(cx.err(format!(
            "runtime.vfio_mode: Unknown VFIO mode {} (supported: {})",
            r.vfio_mode,
            VFIO_MODES.join(", ")
        )));
    };
    if let Some(x) = r.experimental.first() {
        return Err(cx.err(format!(
            "runtime.experimental: Unsupported experimental feature \"{x}\""
        )));
    }
    let mut binds: Vec<PathBuf> = Vec::new();
    for m in &r.sandbox_bind_mounts {
        let resolved = cx.host.canonicalize(m).map_err(|e| {
            cx.err(format!(
                "sandbox-bindmounts: Failed to resolve path: {m}: {}",
                os_text(&e)
            ))
        })?;
        if binds.iter().any(|b| b.file_name() == resolved.file_name()) {
            return Err(cx.err(format!(
                "sandbox-bindmounts: File {} has base that matches already specified bindmount",
                resolved.display()
            )));
        }
        binds.push(resolved);
    }
    Ok(RuntimeConfig {
        debug: r.enable_debug,
        tracing: r.enable_tracing,
        internetworking_model,
        vfio_mode,
        disable_new_netns: r.disable_new_netns,
        disable_guest_seccomp: r.disable_guest_seccomp,
        sandbox_cgroup_only: r.sandbox_cgroup_only,
        static_sandbox_resource_mgmt: r.static_sandbox_resource_mgmt,
        enable_pprof: r.enable_pprof,
        disable_guest_empty_dir: r.disable_guest_empty_dir,
        jaeger_endpoint: r.jaeger_endpoint.clone(),
        jaeger_user: r.jaeger_user.clone(),
        jaeger_password: r.jaeger_password.clone(),
        experimental: r.experimental.clone(),
        sandbox_bind_mounts: binds,
    })
}

fn build_agent(name: &str, a: &RawAgent) -> AgentConfig {
    AgentConfig {
        name: Some(name.to_string()),
        kernel_modules: a.kernel_modules.clone(),
        debug: a.enable_debug,
        tracing: a.enable_tracing,
        debug_console_enabled: a.debug_console_enabled,
        dial_timeout: a.dial_timeout,
    }
}

/// Spec §2.8: the hypervisor settings used when the file has no hypervisor table.
fn fallback_hypervisor() -> HypervisorConfig {
    HypervisorConfig {
        path: DEFAULT_HYPERVISOR_PATH.into(),
        jailer_path: DEFAULT_JAILER_PATH.into(),
        kernel: DEFAULT_KERNEL.into(),
        image: DEFAULT_IMAGE.into(),
        initrd: DEFAULT_INITRD.into(),
        machine_type: DEFAULT_MACHINE_TYPE.into(),
        default_vcpus: 1,
        memory_mib: DEFAULT_MEMORY_MIB,
        default_bridges: DEFAULT_BRIDGES,
        block_device_driver: DEFAULT_BLOCK_DRIVER.into(),
        block_device_aio: DEFAULT_BLOCK_AIO.into(),
        msize_9p: DEFAULT_MSIZE_9P,
        vhost_user_store_path: DEFAULT_VHOST_USER_STORE.into(),
        virtio_fs_cache: DEFAULT_VIRTIO_FS_CACHE.into(),
        ..Default::default()
    }
}

fn normalise_list(s: &str) -> String {
    s.split(',')
        .map(str::trim)
        .filter(|x| !x.is_empty())
        .collect::<Vec<_>>()
        .join(",")
}

fn or_default(s: &str, d: &str) -> String {
    if s.is_empty() {
        d.to_string()
    } else {
        s.to_string()
    }
}

fn build_hypervisor(
    cx: &mut Ctx<'_>,
    t: HypervisorType,
    h: &RawHypervisor,
) -> Result<HypervisorConfig, LoadError> {
    use HypervisorType::*;
    let key = |k: &str| format!("hypervisor.{}.{k}", t.as_str());
    let mut c = HypervisorConfig::default();

    // Steps in the Go order (§2.6), so that the first error is the one the Go tool reports.
    if t != Dragonball {
        c.path = cx.resolve(&key("path"), &or_default(&h.path, DEFAULT_HYPERVISOR_PATH))?;
    }
    if t == Firecracker {
        c.jailer_path = cx.resolve_opt(&key("jailer_path"), &h.jailer_path)?;
    }
    if t == Acrn {
        c.ctl_path = cx.resolve(&key("ctlpath"), &or_default(&h.ctlpath, DEFAULT_CTL_PATH))?;
    }
    c.kernel = cx.resolve(&key("kernel"), &or_default(&h.kernel, DEFAULT_KERNEL))?;
    if matches!(t, Qemu | Clh | Firecracker) {
        c.initrd = cx.resolve_opt(&key("initrd"), &h.initrd)?;
    }
    c.image = cx.resolve_opt(&key("image"), &h.image)?;
    match t {
        Clh if h.image.is_empty() && h.initrd.is_empty() => {
            return Err(cx.err("image or initrd must be defined in the configuration file"));
        }
        Acrn if h.image.is_empty() => {
            return Err(cx.err("image must be defined in the configuration file"));
        }
        _ => {}
    }
    if t == Qemu {
        for p in &h.pflashes {
            let r = cx.host.canonicalize(p).map_err(|e| {
                cx.err(format!(
                    "{}: failed to resolve path: {p}: {}",
                    key("pflashes"),
                    os_text(&e)
                ))
            })?;
            c.pflashes.push(r);
        }
    }
    if t != Dragonball {
        c.firmware = cx.resolve_opt(&key("firmware"), &h.firmware)?;
    }
    if t == Qemu {
        c.firmware_volume = cx.resolve_opt(&key("firmware_volume"), &h.firmware_volume)?;
    }
    if matches!(t, Qemu | Clh) {
        c.machine_type = or_default(&h.machine_type, DEFAULT_MACHINE_TYPE);
        c.machine_accelerators = normalise_list(&h.machine_accelerators);
        if t == Qemu {
            c.cpu_features = normalise_list(&h.cpu_features);
        }
    }
    c.disable_image_nvdimm = t == Qemu && h.disable_image_nvdimm;
    if t == Qemu && c.machine_type == "microvm" {
        c.disable_image_nvdimm = true;
        cx.note(
            NoteLevel::Info,
            "Setting 'disable_image_nvdimm = true' as microvm does not support NVDIMM",
        );
    }
    if t != Dragonball {
        c.block_device_driver = or_default(&h.block_device_driver, DEFAULT_BLOCK_DRIVER);
        if !BLOCK_DRIVERS.contains(&c.block_device_driver.as_str()) {
            return Err(cx.err(format!(
                "{}: Invalid hypervisor block storage driver {} specified (supported drivers: [{}])",
                key("block_device_driver"),
                c.block_device_driver,
                BLOCK_DRIVERS.join(" ")
            )));
        }
    }
    if t == Qemu {
        c.block_device_aio = or_default(&h.block_device_aio, DEFAULT_BLOCK_AIO);
        if !BLOCK_AIOS.contains(&c.block_device_aio.as_str()) {
            return Err(cx.err(format!(
                "{}: Invalid hypervisor block storage I/O mechanism {} specified (supported AIO: [{}])",
                key("block_device_aio"),
                c.block_device_aio,
                BLOCK_AIOS.join(" ")
            )));
        }
    }
    if matches!(t, Qemu | Clh) {
        c.shared_fs = or_default(&h.shared_fs, DEFAULT_SHARED_FS);
        if !SHARED_FSES.contains(&c.shared_fs.as_str()) {
            return Err(cx.err(format!(
                "{}: Invalid hypervisor shared file system {} specified (supported file systems: [{}])",
                key("shared_fs"),
                c.shared_fs,
                SHARED_FSES.join(" ")
            )));
        }
        if t == Clh && c.shared_fs == "virtio-9p" {
            return Err(cx.err("clh only support virtio-fs or virtio-fs-nydus"));
        }
        c.virtio_fs_daemon = h.virtio_fs_daemon.clone();
        if (c.shared_fs == "virtio-fs" || c.shared_fs == "virtio-fs-nydus")
            && c.virtio_fs_daemon.is_empty()
        {
            return Err(cx.err(format!(
                "{}: cannot enable {} without daemon path in configuration file",
                key("virtio_fs_daemon"),
                c.shared_fs
            )));
        }
        // spec Q54: one default for both.
        c.virtio_fs_cache = or_default(&h.virtio_fs_cache, DEFAULT_VIRTIO_FS_CACHE);
        c.virtio_fs_cache_size = h.virtio_fs_cache_size;
        c.virtio_fs_extra_args = h.virtio_fs_extra_args.clone();
        c.msize_9p = if h.msize_9p == 0 {
            DEFAULT_MSIZE_9P
        } else {
            h.msize_9p
        };
        c.memory_offset = h.memory_offset;
        c.pcie_root_port = h.pcie_root_port;
        c.block_device_cache_set = h.block_device_cache_set;
        c.block_device_cache_direct = h.block_device_cache_direct;
        c.block_device_cache_noflush = h.block_device_cache_noflush;
        c.enable_mem_prealloc = h.enable_mem_prealloc;
        c.enable_virtio_mem = h.enable_virtio_mem;
        c.hotplug_vfio_on_root_bus = h.hotplug_vfio_on_root_bus;
        c.confidential_guest = h.confidential_guest;
        c.file_mem_backend = h.file_mem_backend.clone();
        c.valid_virtio_fs_daemon_paths = h.valid_virtio_fs_daemon_paths.clone();
        c.valid_file_mem_backends = h.valid_file_mem_backends.clone();
        c.disable_block_device_use = h.disable_block_device_use;
    }

    // Resources (all types).
    let cpus = usable_cpus().min(arch_max_vcpus());
    c.default_vcpus = if h.default_vcpus < 0 || h.default_vcpus as u32 > cpus {
        cpus
    } else if h.default_vcpus == 0 {
        1
    } else {
        h.default_vcpus as u32
    };
    let ncpu = usable_cpus();
    c.default_max_vcpus = if h.default_maxvcpus == 0 || h.default_maxvcpus >= ncpu {
        ncpu
    } else {
        h.default_maxvcpus
    }
    .min(arch_max_vcpus());
    c.memory_mib = if h.default_memory < MIN_MEMORY_MIB {
        DEFAULT_MEMORY_MIB
    } else {
        h.default_memory
    };
    c.memory_slots = if h.memory_slots == 0 {
        DEFAULT_MEMORY_SLOTS
    } else {
        h.memory_slots
    };
    c.entropy_source = or_default(&h.entropy_source, DEFAULT_ENTROPY_SOURCE);
    c.kernel_params = parse_kernel_params(&h.kernel_params)
        .map_err(|e| cx.err(format!("{}: {e}", key("kernel_params"))))?;
    c.debug = h.enable_debug;
    if t != Dragonball {
        let host_mib = host_memory_mib();
        c.default_max_memory_mib =
            if h.default_maxmemory == 0 || (host_mib > 0 && h.default_maxmemory > host_mib) {
                host_mib
            } else {
                h.default_maxmemory
            };
        c.default_bridges = h.default_bridges.clamp(DEFAULT_BRIDGES, MAX_BRIDGES);
        c.valid_hypervisor_paths = h.valid_hypervisor_paths.clone();
        c.valid_entropy_sources = h.valid_entropy_sources.clone();
        c.enable_annotations = h.enable_annotations.clone();
        c.guest_hook_path = h.guest_hook_path.clone();
        c.enable_hugepages = h.enable_hugepages;
        c.disable_nesting_checks = h.disable_nesting_checks;
        c.disable_selinux = h.disable_selinux;
    }
    match t {
        Qemu => {
            c.vhost_user_store_path =
                or_default(&h.vhost_user_store_path, DEFAULT_VHOST_USER_STORE);
            c.valid_vhost_user_store_paths = h.valid_vhost_user_store_paths.clone();
            c.enable_vhost_user_store = h.enable_vhost_user_store;
            c.guest_memory_dump_path = h.guest_memory_dump_path.clone();
            c.guest_memory_dump_paging = h.guest_memory_dump_paging;
            c.seccomp_sandbox = h.seccompsandbox.clone();
            c.enable_iommu = h.enable_iommu;
            c.enable_iommu_platform = h.enable_iommu_platform;
            c.enable_guest_swap = h.enable_guest_swap;
            c.rootless = h.rootless;
            c.use_legacy_serial = h.use_legacy_serial;
            c.disable_vhost_net = h.disable_vhost_net;
            c.enable_iothreads = h.enable_iothreads;
            c.rx_rate_limiter_max_rate = h.rx_rate_limiter_max_rate;
            c.tx_rate_limiter_max_rate = h.tx_rate_limiter_max_rate;
        }
        Clh => {
            c.disable_vhost_net = true;
            c.disable_seccomp = h.disable_seccomp;
            c.enable_iothreads = h.enable_iothreads;
            rate_limiters(cx, &mut c, h);
        }
        Firecracker => {
            c.disable_vhost_net = true;
            c.disable_block_device_use = false;
            c.enable_iothreads = h.enable_iothreads;
            c.rx_rate_limiter_max_rate = h.rx_rate_limiter_max_rate;
            c.tx_rate_limiter_max_rate = h.tx_rate_limiter_max_rate;
            c.valid_jailer_paths = h.valid_jailer_paths.clone();
        }
        Acrn => {
            c.disable_vhost_net = h.disable_vhost_net;
            c.valid_ctl_paths = h.valid_ctlpaths.clone();
        }
        Dragonball => {}
    }
    Ok(c)
}

fn rate_limiters(cx: &mut Ctx<'_>, c: &mut HypervisorConfig, h: &RawHypervisor) {
    let mut pair = |what: &str, max: i64, burst: i64| -> (i64, i64) {
        if burst > 0 && max <= 0 {
            cx.note(
                NoteLevel::Warning,
                format!("The {what}OneTimeBurst is set but {what}MaxRate is not set, this option will be ignored."),
            );
            (max, 0)
        } else {
            (max, burst)
        }
    };
    (
        c.disk_rate_limiter_bw_max_rate,
        c.disk_rate_limiter_bw_one_time_burst,
    ) = pair(
        "DiskRateLimiterBw",
        h.disk_rate_limiter_bw_max_rate,
        h.disk_rate_limiter_bw_one_time_burst,
    );
    (
        c.disk_rate_limiter_ops_max_rate,
        c.disk_rate_limiter_ops_one_time_burst,
    ) = pair(
        "DiskRateLimiterOps",
        h.disk_rate_limiter_ops_max_rate,
        h.disk_rate_limiter_ops_one_time_burst,
    );
    (
        c.net_rate_limiter_bw_max_rate,
        c.net_rate_limiter_bw_one_time_burst,
    ) = pair(
        "NetRateLimiterBw",
        h.net_rate_limiter_bw_max_rate,
        h.net_rate_limiter_bw_one_time_burst,
    );
    (
        c.net_rate_limiter_ops_max_rate,
        c.net_rate_limiter_ops_one_time_burst,
    ) = pair(
        "NetRateLimiterOps",
        h.net_rate_limiter_ops_max_rate,
        h.net_rate_limiter_ops_one_time_burst,
    );
}

/// Spec §2.9, with the user's parameters replacing defaults of the same key (Q55).
fn build_kernel_params(h: &HypervisorConfig, a: &AgentConfig) -> Vec<KernelParam> {
    let mut params = Vec::new();
    if !h.image.as_os_str().is_empty() {
        params.push(KernelParam::new("systemd.unit", "kata-containers.target"));
        params.push(KernelParam::new("systemd.mask", "systemd-networkd.service"));
        params.push(KernelParam::new("systemd.mask", "systemd-networkd.socket"));
    }
    if h.block_device_driver == "virtio-scsi" {
        params.push(KernelParam::new("scsi_mod.scan", "none"));
    }
    if a.debug {
        params.push(KernelParam::new("agent.log", "debug"));
    }
    if a.tracing {
        params.push(KernelParam::new("agent.trace", "true"));
    }
    if a.debug_console_enabled {
        params.push(KernelParam::new("agent.debug_console", ""));
        params.push(KernelParam::new("agent.debug_console_vport", "1026"));
    }
    kernel_params::merge(&mut params, h.kernel_params.clone());
    params
}

/// Spec §2.10, with the path in every message (Q10).
fn check_memory_and_images(cx: &mut Ctx<'_>, h: &HypervisorConfig) -> Result<(), LoadError> {
    if h.memory_mib == 0 {
        return Err(cx.err("VM memory cannot be zero"));
    }
    for (what, path) in [("image", &h.image), ("initrd", &h.initrd)] {
        if path.as_os_str().is_empty() || cx.missing.iter().any(|m| &m.path == path) {
            continue;
        }
        let meta = match std::fs::metadata(cx.host.join(path)) {
            Ok(m) => m,
            Err(e) => {
                let reason = os_text(&e);
                match cx.policy {
                    AssetPolicy::Require => {
                        return Err(cx.err(format!("{what} {}: {reason}", path.display())));
                    }
                    AssetPolicy::Report => {
                        record(cx, what, path, reason);
                        continue;
                    }
                }
            }
        };
        let size_mib = meta.len() / (1024 * 1024);
        if meta.len() == 0 {
            let msg = format!("{what} \"{}\" is empty", path.display());
            match cx.policy {
                AssetPolicy::Require => return Err(cx.err(msg)),
                AssetPolicy::Report => record(cx, what, path, "is empty".into()),
            }
        } else if meta.len() > 1024 * 1024 && size_mib >= u64::from(h.memory_mib) {
            let msg = format!(
                "VM memory ({}MB) smaller than {what} \"{}\" size ({size_mib}MB)",
                h.memory_mib,
                path.display()
            );
            if what == "initrd" {
                return Err(cx.err(msg));
            }
            cx.note(NoteLevel::Warning, msg);
        }
    }
    Ok(())
}

fn record(cx: &mut Ctx<'_>, what: &str, path: &Path, reason: String) {
    cx.missing.push(MissingAsset {
        key: format!("hypervisor.{what}"),
        path: path.to_path_buf(),
        reason,
    });
}
