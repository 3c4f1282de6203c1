//! Configuration: the TOML schema of Kata 3.0.0 (spec §2.4), the search order, drop-ins,
//! per-hypervisor construction and validation. Used by `check`, `env` and `factory`.

mod build;
mod kernel_params;
mod load;
mod raw;

use std::path::PathBuf;

pub use kernel_params::{KernelParam, parse_kernel_params};
pub use load::{AssetPolicy, LoadError, load, load_from_str};

/// The 3.0.0 qemu configuration, used when no configuration file exists on the host.
pub const BUILTIN_CONFIG: &str = include_str!("builtin-configuration-qemu.toml");

/// Hypervisor kinds named by `[hypervisor.<type>]` tables.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
pub enum HypervisorType {
    Qemu,
    Clh,
    Firecracker,
    Acrn,
    Dragonball,
}

impl HypervisorType {
    pub const ALL: [HypervisorType; 5] = [
        HypervisorType::Qemu,
        HypervisorType::Clh,
        HypervisorType::Firecracker,
        HypervisorType::Acrn,
        HypervisorType::Dragonball,
    ];

    /// The table name, which is also the type's name in the Go runtime.
    pub fn as_str(self) -> &'static str {
        match self {
            HypervisorType::Qemu => "qemu",
            HypervisorType::Clh => "clh",
            HypervisorType::Firecracker => "firecracker",
            HypervisorType::Acrn => "acrn",
            HypervisorType::Dragonball => "dragonball",
        }
    }

    pub fn from_table(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|t| t.as_str() == name)
    }

    /// KVM-based hypervisors (everything but ACRN; spec Q14: dragonball is KVM).
    pub fn uses_kvm(self) -> bool {
        !matches!(self, HypervisorType::Acrn)
    }
}

impl std::fmt::Display for HypervisorType {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Where the configuration came from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ConfigSource {
    /// A file; the path is resolved (absolute, symlink-free, as the host sees it).
    File(PathBuf),
    /// No file existed: the built-in 3.0.0 qemu configuration.
    BuiltIn,
}

/// An asset named by the configuration that does not exist on the host.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct MissingAsset {
    /// The configuration key, e.g. `hypervisor.qemu.kernel`.
    pub key: String,
    /// The path as configured.
    pub path: PathBuf,
    /// Why it is unusable (`no such file or directory`, `is empty`, ...).
    pub reason: String,
}

/// A record the loader wants logged (the Go loader logs these through `katautils`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LoadNote {
    pub level: NoteLevel,
    pub message: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NoteLevel {
    Info,
    Warning,
}

/// The effective hypervisor settings after per-type construction (spec §2.6).
#[derive(Debug, Clone, Default, PartialEq, serde::Serialize)]
pub struct HypervisorConfig {
    pub path: PathBuf,
    pub jailer_path: PathBuf,
    pub ctl_path: PathBuf,
    pub kernel: PathBuf,
    pub initrd: PathBuf,
    pub image: PathBuf,
    pub firmware: PathBuf,
    pub firmware_volume: PathBuf,
    pub pflashes: Vec<PathBuf>,
    pub machine_accelerators: String,
    pub cpu_features: String,
    pub kernel_params: Vec<KernelParam>,
    pub machine_type: String,
    pub block_device_driver: String,
    pub block_device_aio: String,
    pub shared_fs: String,
    pub virtio_fs_daemon: String,
    pub virtio_fs_cache: String,
    pub virtio_fs_cache_size: u32,
    pub virtio_fs_extra_args: Vec<String>,
    pub valid_hypervisor_paths: Vec<String>,
    pub valid_jailer_paths: Vec<String>,
    pub valid_ctl_paths: Vec<String>,
    pub valid_virtio_fs_daemon_paths: Vec<String>,
    pub valid_vhost_user_store_paths: Vec<String>,
    pub valid_file_mem_backends: Vec<String>,
    pub valid_entropy_sources: Vec<String>,
    pub enable_annotations: Vec<String>,
    pub vhost_user_store_path: String,
    pub file_mem_backend: String,
    pub guest_hook_path: String,
    pub guest_memory_dump_path: String,
    pub seccomp_sandbox: String,
    pub entropy_source: String,
    pub rx_rate_limiter_max_rate: u64,
    pub tx_rate_limiter_max_rate: u64,
    pub memory_offset: u64,
    pub disk_rate_limiter_bw_max_rate: i64,
    pub disk_rate_limiter_bw_one_time_burst: i64,
    pub disk_rate_limiter_ops_max_rate: i64,
    pub disk_rate_limiter_ops_one_time_burst: i64,
    pub net_rate_limiter_bw_max_rate: i64,
    pub net_rate_limiter_bw_one_time_burst: i64,
    pub net_rate_limiter_ops_max_rate: i64,
    pub net_rate_limiter_ops_one_time_burst: i64,
    pub default_vcpus: u32,
    pub default_max_vcpus: u32,
    pub memory_mib: u32,
    pub memory_slots: u32,
    pub default_max_memory_mib: u64,
    pub default_bridges: u32,
    pub msize_9p: u32,
    pub pcie_root_port: u32,
    pub block_device_cache_set: bool,
    pub block_device_cache_direct: bool,
    pub block_device_cache_noflush: bool,
    pub enable_vhost_user_store: bool,
    pub disable_block_device_use: bool,
    pub enable_mem_prealloc: bool,
    pub enable_hugepages: bool,
    pub enable_virtio_mem: bool,
    pub enable_iommu: bool,
    pub enable_iommu_platform: bool,
    pub debug: bool,
    pub disable_nesting_checks: bool,
    pub enable_iothreads: bool,
    pub disable_image_nvdimm: bool,
    pub hotplug_vfio_on_root_bus: bool,
    pub disable_vhost_net: bool,
    pub guest_memory_dump_paging: bool,
    pub confidential_guest: bool,
    pub enable_guest_swap: bool,
    pub rootless: bool,
    pub disable_seccomp: bool,
    pub disable_selinux: bool,
    pub use_legacy_serial: bool,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize)]
pub struct AgentConfig {
    /// The `[agent.<name>]` table the values came from, if any.
    pub name: Option<String>,
    pub kernel_modules: Vec<String>,
    pub debug: bool,
    pub tracing: bool,
    pub debug_console_enabled: bool,
    pub dial_timeout: u32,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize)]
pub struct RuntimeConfig {
    pub debug: bool,
    pub tracing: bool,
    pub internetworking_model: String,
    pub vfio_mode: String,
    pub disable_new_netns: bool,
    pub disable_guest_seccomp: bool,
    pub sandbox_cgroup_only: bool,
    pub static_sandbox_resource_mgmt: bool,
    pub enable_pprof: bool,
    pub disable_guest_empty_dir: bool,
    pub jaeger_endpoint: String,
    pub jaeger_user: String,
    pub jaeger_password: String,
    pub experimental: Vec<String>,
    pub sandbox_bind_mounts: Vec<PathBuf>,
}

#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct FactoryConfig {
    pub enable_template: bool,
    pub template_path: PathBuf,
    pub vm_cache_number: u32,
    pub vm_cache_endpoint: PathBuf,
}

/// Spec §0.2 defaults.
pub const DEFAULT_TEMPLATE_PATH: &str = "/run/vc/vm/template";
pub const DEFAULT_VM_CACHE_ENDPOINT: &str = "/var/run/kata-containers/cache.sock";

impl Default for FactoryConfig {
    fn default() -> Self {
        Self {
            enable_template: false,
            template_path: DEFAULT_TEMPLATE_PATH.into(),
            vm_cache_number: 0,
            vm_cache_endpoint: DEFAULT_VM_CACHE_ENDPOINT.into(),
        }
    }
}

/// The loaded, validated configuration.
#[derive(Debug, Clone, PartialEq)]
pub struct Config {
    pub source: ConfigSource,
    pub hypervisor_type: HypervisorType,
    pub hypervisor: HypervisorConfig,
    pub agent: AgentConfig,
    pub runtime: RuntimeConfig,
    pub factory: FactoryConfig,
    /// The full guest kernel command line (spec §2.9, deduplicated by key: Q55).
    pub kernel_params: Vec<KernelParam>,
    /// Assets named but absent; only filled under [`AssetPolicy::Report`].
    pub missing_assets: Vec<MissingAsset>,
    /// Records for the log (warnings about ignored options, ...).
    pub notes: Vec<LoadNote>,
}

impl Config {
    /// The path to show for the configuration file: the resolved file, or a marker for the
    /// built-in default.
    pub fn path_for_display(&self) -> String {
        match &self.source {
            ConfigSource::File(p) => p.display().to_string(),
            ConfigSource::BuiltIn => "<built-in default>".to_string(),
        }
    }

    /// The kernel command line as one string (`env`'s `Kernel.Parameters`).
    pub fn kernel_params_string(&self) -> String {
        kernel_params::join(&self.kernel_params)
    }
}
