//! Configuration loading against the real Kata 3.0.0 configuration files (asset paths
//! rewritten to stand-ins in a temp dir), fake host roots, drop-ins and broken files.

use std::fs;
use std::path::{Path, PathBuf};

use kata_runtime::config::{self, AssetPolicy, ConfigSource, HypervisorType};
use kata_runtime::paths::HostRoot;
use proptest::prelude::*;

const SHIPPED: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../shared/configs/kata-3.0.0");

fn shipped(name: &str) -> String {
    let p = Path::new(SHIPPED).join(name);
    fs::read_to_string(&p).unwrap_or_else(|e| panic!("{}: {e}", p.display()))
}

/// Copies a shipped file into `dir`, pointing every `/usr/...` asset at a stand-in file.
fn with_stand_ins(dir: &Path, text: &str) -> String {
    let assets = dir.join("assets");
    fs::create_dir_all(&assets).unwrap();
    let mut out = String::new();
    for line in text.lines() {
        let mut l = line.to_string();
        for quoted in line.split('"').skip(1).step_by(2) {
            if quoted.starts_with("/usr/") {
                let stand_in = assets.join(quoted.trim_start_matches('/').replace('/', "_"));
                fs::write(&stand_in, b"stand-in").unwrap();
                l = l.replace(quoted, stand_in.to_str().unwrap());
            }
        }
        out.push_str(&l);
        out.push('\n');
    }
    out
}

fn load_file(dir: &Path, text: &str) -> Result<config::Config, config::LoadError> {
    let path = dir.join("configuration.toml");
    fs::write(&path, text).unwrap();
    config::load(&HostRoot::default(), Some(&path), AssetPolicy::Require)
}

#[test]
fn every_shipped_config_loads_with_its_hypervisor_type() {
    for (file, t, driver) in [
        (
            "configuration-qemu.toml",
            HypervisorType::Qemu,
            "virtio-scsi",
        ),
        ("configuration-clh.toml", HypervisorType::Clh, "virtio-blk"),
        (
            "configuration-fc.toml",
            HypervisorType::Firecracker,
            "virtio-mmio",
        ),
        (
            "configuration-acrn.toml",
            HypervisorType::Acrn,
            "virtio-blk",
        ),
        (
            "configuration-dragonball.toml",
            HypervisorType::Dragonball,
            "",
        ),
    ] {
        let dir = tempfile::tempdir().unwrap();
        let text = with_stand_ins(dir.path(), &shipped(file));
        let cfg = load_file(dir.path(), &text).unwrap_or_else(|e| panic!("{file}: {e}"));
        assert_eq!(cfg.hypervisor_type, t, "{file}");
        assert_eq!(cfg.hypervisor.block_device_driver, driver, "{file}");
        assert!(
            cfg.hypervisor
                .kernel
                .starts_with(dir.path().canonicalize().unwrap()),
            "{file}"
        );
        assert!(cfg.missing_assets.is_empty(), "{file}");
        assert_eq!(cfg.agent.name.as_deref(), Some("kata"), "{file}");
        assert_eq!(
            cfg.source,
            ConfigSource::File(
                dir.path()
                    .canonicalize()
                    .unwrap()
                    .join("configuration.toml")
            )
        );
        let params = cfg.kernel_params_string();
        assert!(
            params.starts_with("systemd.unit=kata-containers.target"),
            "{file}: {params}"
        );
    }
}

#[test]
fn shipped_values_are_read() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = load_file(
        dir.path(),
        &with_stand_ins(dir.path(), &shipped("configuration-qemu.toml")),
    )
    .unwrap();
    let h = &cfg.hypervisor;
    assert_eq!(h.machine_type, "q35");
    assert_eq!(h.cpu_features, "pmu=off");
    assert_eq!(h.memory_mib, 2048);
    assert_eq!(h.shared_fs, "virtio-fs");
    assert_eq!(h.virtio_fs_cache, "auto");
    assert_eq!(h.block_device_aio, "io_uring");
    assert_eq!(h.msize_9p, 8192);
    assert_eq!(h.memory_slots, 10);
    assert_eq!(
        h.virtio_fs_extra_args,
        vec!["--thread-pool-size=1", "-o", "announce_submounts"]
    );
    assert_eq!(cfg.runtime.internetworking_model, "tcfilter");
    assert_eq!(cfg.runtime.vfio_mode, "guest-kernel");
    assert!(cfg.runtime.disable_guest_seccomp);
    assert_eq!(
        cfg.factory.template_path,
        PathBuf::from("/run/vc/vm/template")
    );
    assert_eq!(
        cfg.factory.vm_cache_endpoint,
        PathBuf::from("/var/run/kata-containers/cache.sock")
    );
    assert_eq!(
        cfg.kernel_params_string(),
        "systemd.unit=kata-containers.target systemd.mask=systemd-networkd.service systemd.mask=systemd-networkd.socket scsi_mod.scan=none"
    );

    let dir = tempfile::tempdir().unwrap();
    let cfg = load_file(
        dir.path(),
        &with_stand_ins(dir.path(), &shipped("configuration-dragonball.toml")),
    )
    .unwrap();
    assert_eq!(
        cfg.hypervisor.path,
        PathBuf::new(),
        "dragonball ignores path"
    );
    assert_eq!(cfg.hypervisor.machine_type, "");
    assert_eq!(cfg.hypervisor.msize_9p, 0);
    assert!(
        cfg.kernel_params_string()
            .ends_with("console=ttyS1 agent.log_vport=1025")
    );
}

/// A fake host root holding the files the qemu configuration names, at their real paths.
fn fake_host_with_qemu_assets(root: &Path) {
    for f in [
        "usr/bin/qemu-system-x86_64",
        "usr/share/kata-containers/vmlinux.container",
        "usr/share/kata-containers/kata-containers.img",
    ] {
        let p = root.join(f);
        fs::create_dir_all(p.parent().unwrap()).unwrap();
        fs::write(p, b"x").unwrap();
    }
}

#[test]
fn search_order_and_symlinks_under_the_host_root() {
    let root = tempfile::tempdir().unwrap();
    fake_host_with_qemu_assets(root.path());
    let host = HostRoot::new(root.path());
    let share = root.path().join("usr/share/defaults/kata-containers");
    fs::create_dir_all(&share).unwrap();
    fs::write(
        share.join("configuration-qemu.toml"),
        shipped("configuration-qemu.toml"),
    )
    .unwrap();
    std::os::unix::fs::symlink("configuration-qemu.toml", share.join("configuration.toml"))
        .unwrap();
    let cfg = config::load(&host, None, AssetPolicy::Require).unwrap();
    assert_eq!(
        cfg.source,
        ConfigSource::File("/usr/share/defaults/kata-containers/configuration-qemu.toml".into())
    );
    assert_eq!(
        cfg.hypervisor.kernel,
        PathBuf::from("/usr/share/kata-containers/vmlinux.container")
    );

    // /etc wins over /usr/share.
    let etc = root.path().join("etc/kata-containers");
    fs::create_dir_all(&etc).unwrap();
    fs::write(
        etc.join("configuration.toml"),
        shipped("configuration-qemu.toml")
            .replace("default_memory = 2048", "default_memory = 4096"),
    )
    .unwrap();
    let cfg = config::load(&host, None, AssetPolicy::Require).unwrap();
    assert_eq!(
        cfg.source,
        ConfigSource::File("/etc/kata-containers/configuration.toml".into())
    );
    assert_eq!(cfg.hypervisor.memory_mib, 4096);
}

#[test]
fn no_file_uses_the_builtin_default_and_reports_missing_assets() {
    let root = tempfile::tempdir().unwrap();
    let cfg = config::load(&HostRoot::new(root.path()), None, AssetPolicy::Require).unwrap();
    assert_eq!(cfg.source, ConfigSource::BuiltIn);
    assert_eq!(cfg.hypervisor_type, HypervisorType::Qemu);
    let keys: Vec<&str> = cfg.missing_assets.iter().map(|m| m.key.as_str()).collect();
    assert_eq!(
        keys,
        [
            "hypervisor.qemu.path",
            "hypervisor.qemu.kernel",
            "hypervisor.qemu.image"
        ]
    );
    assert_eq!(
        cfg.missing_assets[1].path,
        PathBuf::from("/usr/share/kata-containers/vmlinux.container")
    );
}

#[test]
fn missing_kernel_in_a_real_file_names_key_and_path() {
    let dir = tempfile::tempdir().unwrap();
    let text = with_stand_ins(dir.path(), &shipped("configuration-qemu.toml")).replace(
        &format!(
            "{}/assets/usr_share_kata-containers_vmlinux.container",
            dir.path().display()
        ),
        "/nonexistent/vmlinux",
    );
    let err = load_file(dir.path(), &text).unwrap_err().to_string();
    assert!(
        err.contains(
            "configuration.toml: hypervisor.qemu.kernel: file /nonexistent/vmlinux does not exist"
        ),
        "{err}"
    );
    // With the report policy the same file loads and lists the asset.
    let path = dir.path().join("configuration.toml");
    let cfg = config::load(&HostRoot::default(), Some(&path), AssetPolicy::Report).unwrap();
    assert_eq!(cfg.missing_assets.len(), 1);
    assert_eq!(cfg.missing_assets[0].key, "hypervisor.qemu.kernel");
}

#[test]
fn vhost_vsock_is_not_required_while_loading() {
    // spec Q16: the Go loader demanded /dev/vhost-vsock; the fake root has no /dev at all.
    let root = tempfile::tempdir().unwrap();
    fake_host_with_qemu_assets(root.path());
    let cfg = config::load_from_str(
        &HostRoot::new(root.path()),
        "c.toml",
        &shipped("configuration-qemu.toml"),
        AssetPolicy::Require,
    );
    assert!(cfg.is_ok(), "{cfg:?}");
}

fn load_err(text: &str) -> String {
    let dir = tempfile::tempdir().unwrap();
    let text = with_stand_ins(dir.path(), text);
    load_file(dir.path(), &text).unwrap_err().to_string()
}

#[test]
fn broken_files_name_the_file_and_key() {
    let e = load_err("[hypervisor.clh]\ndefault_memory = \"lots\"\n");
    assert!(
        e.contains("configuration.toml: toml: line 2 (last key \"hypervisor.clh.default_memory\")"),
        "{e}"
    );
    let e = load_err("garbage = = 1\n");
    assert!(e.contains("configuration.toml: toml: line 1"), "{e}");
    let e = load_err("[hypervisor.fc]\npath = \"/usr/bin/firecracker\"\n");
    assert!(
        e.contains("unknown hypervisor table [hypervisor.fc]"),
        "{e}"
    );
    let e = load_err(&format!(
        "{}\n{}",
        shipped("configuration-qemu.toml"),
        "[hypervisor.clh]\npath = \"/usr/bin/clh\"\n"
    ));
    assert!(
        e.contains("more than one hypervisor table ([hypervisor.clh], [hypervisor.qemu])"),
        "{e}"
    );
    let e = load_err("[agent.kata]\n[agent.other]\n");
    assert!(e.contains("more than one agent table"), "{e}");
    let e = load_err(&shipped("configuration-qemu.toml").replace(
        "block_device_driver = \"virtio-scsi\"",
        "block_device_driver = \"floppy\"",
    ));
    assert!(
        e.contains(
            "hypervisor.qemu.block_device_driver: Invalid hypervisor block storage driver floppy"
        ),
        "{e}"
    );
    let e = load_err(
        &shipped("configuration-qemu.toml").replace("experimental=[]", "experimental=[\"x\"]"),
    );
    assert!(e.contains("Unsupported experimental feature \"x\""), "{e}");
    let e = load_err(
        &shipped("configuration-clh.toml")
            .replace("virtio_fs_daemon = \"/usr/libexec/virtiofsd\"", ""),
    );
    assert!(
        e.contains("cannot enable virtio-fs without daemon path"),
        "{e}"
    );
    let e = load_err(
        &shipped("configuration-qemu.toml")
            .replace("[factory]", "[factory]\nenable_template = true"),
    );
    assert!(
        e.contains("Factory option enable_template requires an initrd image"),
        "{e}"
    );
    let e = load_err(
        &shipped("configuration-clh.toml")
            .replace("[runtime]", "[factory]\nvm_cache_number = 2\n[runtime]"),
    );
    assert!(e.contains("VM cache just support qemu"), "{e}");
    let e = load_err(&shipped("configuration-qemu.toml").replace(
        "internetworking_model=\"tcfilter\"",
        "internetworking_model=\"bridge\"",
    ));
    assert!(e.contains("Unknown type bridge"), "{e}");
}

#[test]
fn empty_image_is_an_error_naming_it() {
    let dir = tempfile::tempdir().unwrap();
    let text = with_stand_ins(dir.path(), &shipped("configuration-qemu.toml"));
    fs::write(
        dir.path()
            .join("assets/usr_share_kata-containers_kata-containers.img"),
        b"",
    )
    .unwrap();
    let e = load_file(dir.path(), &text).unwrap_err().to_string();
    assert!(
        e.contains("image \"") && e.contains("kata-containers.img\" is empty"),
        "{e}"
    );
}

#[test]
fn dropins_override_values_and_only_toml_files_count() {
    let dir = tempfile::tempdir().unwrap();
    let text = with_stand_ins(dir.path(), &shipped("configuration-qemu.toml"));
    let d = dir.path().join("config.d");
    fs::create_dir_all(d.join("subdir.toml")).unwrap();
    fs::write(
        d.join("10-memory.toml"),
        "[hypervisor.qemu]\ndefault_memory = 4096\nbogus_key = 1\n",
    )
    .unwrap();
    fs::write(
        d.join("20-debug.toml"),
        "[runtime]\nenable_debug = true\n[agent.kata]\nenable_debug = true\n",
    )
    .unwrap();
    fs::write(d.join("README"), "this is not toml = [").unwrap();
    fs::write(
        d.join("30-params.toml"),
        "[hypervisor.qemu]\nkernel_params = \"systemd.unit=x.target quiet\"\n",
    )
    .unwrap();
    let cfg = load_file(dir.path(), &text).unwrap();
    assert_eq!(cfg.hypervisor.memory_mib, 4096);
    assert_eq!(
        cfg.hypervisor.machine_type, "q35",
        "keys absent from the drop-in are kept"
    );
    assert!(cfg.runtime.debug && cfg.agent.debug);
    assert!(
        cfg.notes
            .iter()
            .any(|n| n.message.contains("hypervisor.qemu.bogus_key"))
    );
    // spec Q55: the user's systemd.unit replaces the default instead of repeating it.
    assert_eq!(
        cfg.kernel_params_string(),
        "systemd.unit=x.target systemd.mask=systemd-networkd.service systemd.mask=systemd-networkd.socket scsi_mod.scan=none agent.log=debug quiet"
    );
    // A broken drop-in names its own file.
    fs::write(
        d.join("40-bad.toml"),
        "[hypervisor.qemu]\ndefault_vcpus = \"two\"\n",
    )
    .unwrap();
    let e = load_file(dir.path(), &text).unwrap_err().to_string();
    assert!(
        e.contains("40-bad.toml: toml: line 2 (last key \"hypervisor.qemu.default_vcpus\")"),
        "{e}"
    );
}

#[test]
fn resource_values_are_normalised() {
    let dir = tempfile::tempdir().unwrap();
    let text = with_stand_ins(dir.path(), &shipped("configuration-qemu.toml"))
        .replace("default_memory = 2048", "default_memory = 100")
        .replace("default_bridges = 1", "default_bridges = 9")
        .replace("default_vcpus = 1", "default_vcpus = -1")
        .replace(
            "machine_accelerators=\"\"",
            "machine_accelerators=\" nvdimm, ,usb \"",
        );
    let cfg = load_file(dir.path(), &text).unwrap();
    assert_eq!(cfg.hypervisor.memory_mib, 2048);
    assert_eq!(cfg.hypervisor.default_bridges, 5);
    assert!(cfg.hypervisor.default_vcpus >= 1);
    assert_eq!(cfg.hypervisor.machine_accelerators, "nvdimm,usb");
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn loader_never_panics_on_arbitrary_text(text in "\\PC{0,200}") {
        let _ = config::load_from_str(&HostRoot::new("/nonexistent-root"), "p.toml", &text, AssetPolicy::Report);
    }

    #[test]
    fn loader_never_panics_on_toml_shaped_text(
        table in prop::sample::select(vec!["hypervisor.qemu", "hypervisor.clh", "hypervisor.x", "agent.kata", "runtime", "factory", "image"]),
        key in "[a-z_]{1,24}",
        value in prop::sample::select(vec!["1", "-5", "\"s\"", "true", "[]", "[\"a\"]", "{}", "99999999999999999999", "1.5"]),
    ) {
        let text = format!("[{table}]\n{key} = {value}\n");
        let _ = config::load_from_str(&HostRoot::new("/nonexistent-root"), "p.toml", &text, AssetPolicy::Report);
    }
}

/// The real binary with a broken `--config`: exit 1, nothing on stdout, one message naming
/// the file and the key.
fn env_with(dir: &Path, text: &str) -> std::process::Output {
    let path = dir.join("configuration.toml");
    fs::write(&path, text).unwrap();
    std::process::Command::new(env!("CARGO_BIN_EXE_kata-runtime"))
        .env("KATA_HOST_ROOT", dir)
        .args(["--config", path.to_str().unwrap(), "env", "--json"])
        .output()
        .unwrap()
}

#[test]
fn binary_reports_broken_configurations() {
    let cases: Vec<(String, &str)> = vec![
        (
            "[hypervisor.qemu\npath = 1\n".into(),
            "configuration.toml: toml: line 1",
        ),
        (
            "[hypervisor.qemu]\ndefault_memory = \"x\"\n".into(),
            "(last key \"hypervisor.qemu.default_memory\")",
        ),
        (
            "[hypervisor.fc]\n".into(),
            "unknown hypervisor table [hypervisor.fc]",
        ),
        (
            "[hypervisor.qemu]\n[hypervisor.clh]\n".into(),
            "more than one hypervisor table ([hypervisor.clh], [hypervisor.qemu])",
        ),
        (
            "[hypervisor.qemu]\npath = \"/bin/sh\"\nkernel = \"/no/such/vmlinux\"\n".into(),
            "hypervisor.qemu.kernel: file /no/such/vmlinux does not exist",
        ),
    ];
    for (text, needle) in cases {
        let dir = tempfile::tempdir().unwrap();
        fs::create_dir_all(dir.path().join("bin")).unwrap();
        fs::write(dir.path().join("bin/sh"), "").unwrap();
        let out = env_with(dir.path(), &text);
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(1), "{text}: {err}");
        assert!(out.stdout.is_empty(), "{text}");
        assert!(err.contains(needle), "{text}: {err}");
        assert!(
            err.contains(&dir.path().join("configuration.toml").display().to_string())
                || needle.contains("kernel"),
            "{err}"
        );
    }
}

#[test]
fn binary_applies_a_dropin_override() {
    let dir = tempfile::tempdir().unwrap();
    // A fake host root holding the assets at their shipped paths: nothing of the real host is read.
    fake_host_with_qemu_assets(dir.path());
    let text = shipped("configuration-qemu.toml");
    fs::create_dir_all(dir.path().join("config.d")).unwrap();
    fs::write(
        dir.path().join("config.d/50-debug.toml"),
        "[hypervisor.qemu]\nenable_debug = true\n[runtime]\nenable_debug = true\n",
    )
    .unwrap();
    let path = dir.path().join("configuration.toml");
    fs::write(&path, text).unwrap();
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_kata-runtime"))
        .env("KATA_HOST_ROOT", dir.path())
        .args(["--config", path.to_str().unwrap(), "env", "--json"])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["Hypervisor"]["Debug"], true);
    assert_eq!(v["Runtime"]["Debug"], true);
}

#[test]
fn per_type_rules_of_clh_acrn_and_qemu() {
    // clh needs an image or an initrd; acrn needs an image.
    let e = load_err(&shipped("configuration-clh.toml").replace(
        "image = \"/usr/share/kata-containers/kata-containers.img\"",
        "",
    ));
    assert!(
        e.contains("image or initrd must be defined in the configuration file"),
        "{e}"
    );
    let e = load_err(
        &shipped("configuration-clh.toml")
            .replace("shared_fs = \"virtio-fs\"", "shared_fs = \"virtio-9p\""),
    );
    assert!(
        e.contains("clh only support virtio-fs or virtio-fs-nydus"),
        "{e}"
    );
    let e = load_err(&shipped("configuration-acrn.toml").replace(
        "image = \"/usr/share/kata-containers/kata-containers.img\"",
        "",
    ));
    assert!(
        e.contains("image must be defined in the configuration file"),
        "{e}"
    );
    let e = load_err(&shipped("configuration-qemu.toml").replace(
        "block_device_aio = \"io_uring\"",
        "block_device_aio = \"posix\"",
    ));
    assert!(
        e.contains("Invalid hypervisor block storage I/O mechanism posix"),
        "{e}"
    );
    let e = load_err(
        &shipped("configuration-qemu.toml")
            .replace("vfio_mode=\"guest-kernel\"", "vfio_mode=\"iommufd\""),
    );
    assert!(e.contains("Unknown VFIO mode iommufd"), "{e}");
    let e = load_err(
        &shipped("configuration-qemu.toml")
            .replace("[runtime]", "[runtime]\ndisable_new_netns = true"),
    );
    assert!(
        e.contains("disable_new_netns only works with 'none' internetworking_model"),
        "{e}"
    );
}

#[test]
fn normalisations_warnings_and_microvm() {
    let dir = tempfile::tempdir().unwrap();
    let text = with_stand_ins(dir.path(), &shipped("configuration-clh.toml"))
        .replace("[hypervisor.clh]", "[hypervisor.clh]\ndisk_rate_limiter_bw_one_time_burst = 10\nmemory_slots = 0\nmsize_9p = 0\n")
        .replace("default_maxvcpus = 0", "default_maxvcpus = 100000");
    let cfg = load_file(dir.path(), &text).unwrap();
    assert_eq!(
        cfg.hypervisor.disk_rate_limiter_bw_one_time_burst, 0,
        "a burst without a max rate is dropped"
    );
    assert!(cfg.notes.iter().any(|n| {
        n.message.contains(
            "DiskRateLimiterBwOneTimeBurst is set but DiskRateLimiterBwMaxRate is not set",
        )
    }));
    assert_eq!(cfg.hypervisor.memory_slots, 10);
    assert_eq!(cfg.hypervisor.msize_9p, 8192);
    assert!(cfg.hypervisor.default_max_vcpus >= 1 && cfg.hypervisor.default_max_vcpus <= 240);
    assert_eq!(cfg.hypervisor.virtio_fs_cache, "auto");

    let dir = tempfile::tempdir().unwrap();
    let text = with_stand_ins(dir.path(), &shipped("configuration-qemu.toml"))
        .replace("machine_type = \"q35\"", "machine_type = \"microvm\"");
    let cfg = load_file(dir.path(), &text).unwrap();
    assert!(cfg.hypervisor.disable_image_nvdimm, "microvm has no NVDIMM");

    // An image larger than the VM's memory is a warning; an initrd that large is an error.
    let dir = tempfile::tempdir().unwrap();
    let text = with_stand_ins(dir.path(), &shipped("configuration-qemu.toml"))
        .replace("default_memory = 2048", "default_memory = 256");
    let image = dir
        .path()
        .join("assets/usr_share_kata-containers_kata-containers.img");
    let f = fs::File::create(&image).unwrap();
    f.set_len(300 * 1024 * 1024).unwrap();
    let cfg = load_file(dir.path(), &text).unwrap();
    assert!(
        cfg.notes
            .iter()
            .any(|n| n.message.contains("VM memory (256MB) smaller than image")),
        "{:?}",
        cfg.notes
    );
}
