//! The configuration file as decoded, before any defaulting or validation (spec §2.4).
//! Field names are the TOML keys; absent keys decode to zero values as in the Go decoder.

use std::collections::BTreeMap;

use serde::Deserialize;

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub struct RawFile {
    pub hypervisor: BTreeMap<String, RawHypervisor>,
    pub agent: BTreeMap<String, RawAgent>,
    pub runtime: RawRuntime,
    pub factory: RawFactory,
    pub image: RawImage,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub struct RawHypervisor {
    pub path: String,
    pub jailer_path: String,
    pub ctlpath: String,
    pub kernel: String,
    pub initrd: String,
    pub image: String,
    pub firmware: String,
    pub firmware_volume: String,
    pub pflashes: Vec<String>,
    pub machine_accelerators: String,
    pub cpu_features: String,
    pub kernel_params: String,
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
    pub valid_ctlpaths: Vec<String>,
    pub valid_virtio_fs_daemon_paths: Vec<String>,
    pub valid_vhost_user_store_paths: Vec<String>,
    pub valid_file_mem_backends: Vec<String>,
    pub valid_entropy_sources: Vec<String>,
    pub enable_annotations: Vec<String>,
    pub vhost_user_store_path: String,
    pub file_mem_backend: String,
    pub guest_hook_path: String,
    pub guest_memory_dump_path: String,
    pub seccompsandbox: String,
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
    pub default_vcpus: i32,
    pub default_maxvcpus: u32,
    pub default_memory: u32,
    pub memory_slots: u32,
    pub default_maxmemory: u64,
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
    pub enable_debug: bool,
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

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub struct RawAgent {
    pub kernel_modules: Vec<String>,
    pub enable_debug: bool,
    pub enable_tracing: bool,
    pub debug_console_enabled: bool,
    pub dial_timeout: u32,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub struct RawRuntime {
    pub enable_debug: bool,
    pub enable_tracing: bool,
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
    pub sandbox_bind_mounts: Vec<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub struct RawFactory {
    pub enable_template: bool,
    pub template_path: String,
    pub vm_cache_number: u32,
    pub vm_cache_endpoint: String,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub struct RawImage {
    pub provision: String,
    pub service_offload: bool,
}

/// Keys a `[hypervisor.<type>]` table may hold; anything else in a drop-in is warned about.
pub const HYPERVISOR_KEYS: &[&str] = &[
    "path", "jailer_path", "ctlpath", "kernel", "initrd", "image", "firmware",
    "firmware_volume", "pflashes", "machine_accelerators", "cpu_features", "kernel_params",
    "machine_type", "block_device_driver", "block_device_aio", "shared_fs", "virtio_fs_daemon",
    "virtio_fs_cache", "virtio_fs_cache_size", "virtio_fs_extra_args", "valid_hypervisor_paths",
    "valid_jailer_paths", "valid_ctlpaths", "valid_virtio_fs_daemon_paths",
    "valid_vhost_user_store_paths", "valid_file_mem_backends", "valid_entropy_sources",
    "enable_annotations", "vhost_user_store_path", "file_mem_backend", "guest_hook_path",
    "guest_memory_dump_path", "seccompsandbox", "entropy_source", "rx_rate_limiter_max_rate",
    "tx_rate_limiter_max_rate", "memory_offset", "disk_rate_limiter_bw_max_rate",
    "disk_rate_limiter_bw_one_time_burst", "disk_rate_limiter_ops_max_rate",
    "disk_rate_limiter_ops_one_time_burst", "net_rate_limiter_bw_max_rate",
    "net_rate_limiter_bw_one_time_burst", "net_rate_limiter_ops_max_rate",
    "net_rate_limiter_ops_one_time_burst", "default_vcpus", "default_maxvcpus",
    "default_memory", "memory_slots", "default_maxmemory", "default_bridges", "msize_9p",
    "pcie_root_port", "block_device_cache_set", "block_device_cache_direct",
    "block_device_cache_noflush", "enable_vhost_user_store", "disable_block_device_use",
    "enable_mem_prealloc", "enable_hugepages", "enable_virtio_mem", "enable_iommu",
    "enable_iommu_platform", "enable_debug", "disable_nesting_checks", "enable_iothreads",
    "disable_image_nvdimm", "hotplug_vfio_on_root_bus", "disable_vhost_net",
    "guest_memory_dump_paging", "confidential_guest", "enable_guest_swap", "rootless",
    "disable_seccomp", "disable_selinux", "use_legacy_serial",
];

/// Keys an `[agent.<name>]` table may hold.
pub const AGENT_KEYS: &[&str] = &[
    "kernel_modules",
    "enable_debug",
    "enable_tracing",
    "debug_console_enabled",
    "dial_timeout",
];
