//! `kata-runtime check` against fake host roots (tests/fixtures/hosts): verdict lines, the
//! stderr records naming each unmet requirement, exit codes, in text and `--json`.

#[path = "support/check_hosts.rs"]
mod hosts;

use hosts::*;

/// With a fake root the create-VM test never touches this machine's /dev/kvm: as root it is
/// skipped (the node is a regular file), otherwise it does not run at all.
fn assert_create_vm_untouched(out: &std::process::Output, doc: Option<&serde_json::Value>) {
    if is_root() {
        assert!(has_line(
            &out.stderr,
            &[
                "level=warning",
                "msg=\"create-VM test skipped\"",
                "not a character device"
            ]
        ));
        if let Some(d) = doc {
            assert_eq!(d["create_vm"]["result"], "skipped");
        }
    } else if let Some(d) = doc {
        assert!(d["create_vm"].is_null());
    }
    assert!(!text(&out.stdout).contains("System can currently create"));
}

#[test]
fn intel_bare_metal_with_vmx_and_all_modules_is_capable() {
    let h = Host::new("intel-vmx");
    let out = h.check(&[]);
    assert_capable(&out);
    assert_create_vm_untouched(&out, None);

    let (out, doc) = h.check_json(&[]);
    assert_eq!(out.status.code(), Some(0));
    assert_eq!(doc["capable"], true);
    assert_eq!(doc["verdict"], CAPABLE);
    assert_eq!(doc["cpu_vendor"], "GenuineIntel");
    assert_eq!(doc["on_vm"], false);
    assert_eq!(doc["hypervisor"], "qemu");
    assert!(doc["release"].is_null());
    assert_eq!(
        requirement_ids(&doc),
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
            // spec Q12: checked on bare metal.
            "module-parameter:kvm_intel.unrestricted_guest",
            "device:/dev/kvm",
            "device:/dev/vhost-vsock",
        ]
    );
    assert!(failing_ids(&doc).is_empty());
    // JSON mode keeps stdout pure: no verdict line.
    assert!(!text(&out.stdout).contains("\nSystem is capable"));
    assert_create_vm_untouched(&out, Some(&doc));
}

#[test]
fn verbose_lists_every_passed_check_in_sorted_order() {
    let h = Host::new("intel-vmx");
    let out = h.check(&["--verbose"]);
    assert_capable(&out);
    let found: Vec<String> = log_lines(&out.stderr)
        .into_iter()
        .filter(|l| l.contains("found\"") || l.contains("correct\""))
        .filter_map(|l| {
            l.split(' ')
                .find(|w| w.starts_with("name="))
                .map(|w| w.to_string())
        })
        .collect();
    assert_eq!(
        found,
        [
            "name=GenuineIntel",
            "name=lm",
            "name=sse4_1",
            "name=vmx",
            "name=kvm",
            "name=kvm_intel",
            "name=vhost",
            "name=vhost_net",
            "name=vhost_vsock",
            "name=kvm_intel.unrestricted_guest",
            "name=/dev/kvm",
            "name=/dev/vhost-vsock",
        ]
    );
    // Modules are never loaded for a fake root, whoever runs the test.
    let h = Host::new("intel-no-vhost-vsock");
    let out = h.check(&["-v"]);
    let expected = if is_root() {
        "not running modprobe because the host root is not /"
    } else {
        "Module is not loaded and it can not be inserted. Please consider running with sudo or as root"
    };
    assert!(
        has_line(&out.stderr, &[expected, "module=vhost_vsock"]),
        "{}",
        text(&out.stderr)
    );
}

#[test]
fn intel_without_vhost_vsock_is_capable_but_not_strictly() {
    let h = Host::new("intel-no-vhost-vsock");
    let out = h.check(&[]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    assert_eq!(text(&out.stdout), format!("{CAPABLE}\n"));
    assert!(has_line(
        &out.stderr,
        &[
            "level=warning",
            "msg=\"kernel property vhost_vsock not found\"",
            "name=vhost_vsock",
            "type=module",
        ]
    ));

    // spec Q18: --strict makes the optional module count.
    for flag in ["--strict", "-s"] {
        let out = h.check(&[flag]);
        assert_not_capable(&out);
        assert!(out.stdout.is_empty());
        assert!(has_line(
            &out.stderr,
            &[
                "level=error",
                "msg=\"kernel property vhost_vsock not found\""
            ]
        ));
    }
    let (out, doc) = h.check_json(&["--strict"]);
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(doc["capable"], false);
    assert_eq!(doc["strict"], true);
    assert_eq!(doc["verdict"], NOT_CAPABLE);
    assert_eq!(failing_ids(&doc), ["module:vhost_vsock"]);
    let r = &doc["requirements"][8];
    assert_eq!(r["name"], "vhost_vsock");
    assert_eq!(r["required"], false);
    assert!(
        r["remedy"]
            .as_str()
            .unwrap()
            .contains("modprobe vhost_vsock")
    );
}

#[test]
fn amd_bare_metal_with_svm_is_capable() {
    let h = Host::new("amd-svm");
    assert_capable(&h.check(&[]));
    let (_, doc) = h.check_json(&[]);
    assert_eq!(doc["cpu_vendor"], "AuthenticAMD");
    let ids = requirement_ids(&doc);
    assert!(ids.contains(&"cpu-flag:svm".to_string()));
    assert!(ids.contains(&"module:kvm_amd".to_string()));
    assert!(ids.contains(&"cpu-attribute:AuthenticAMD".to_string()));
}

#[test]
fn amd_epyc_vm_without_svm_is_not_capable() {
    // proc/cpuinfo of this fixture is a capture of the development VM.
    let h = Host::new("amd-epyc-vm");
    let out = h.check(&[]);
    assert_not_capable(&out);
    assert!(out.stdout.is_empty());
    for parts in [
        &[
            "level=error",
            "msg=\"CPU property not found\"",
            "description=\"Virtualization support\"",
            "name=svm",
            "type=flag",
        ][..],
        &[
            "level=error",
            "msg=\"kernel property kvm_amd not found\"",
            "description=\"AMD KVM\"",
            "name=kvm_amd",
            "type=module",
        ],
        &[
            "level=error",
            "msg=\"kernel property vhost not found\"",
            "name=vhost ",
        ],
        &["level=error", "msg=\"kernel property vhost_net not found\""],
        &[
            "level=warning",
            "msg=\"kernel property vhost_vsock not found\"",
        ],
        &[
            "level=error",
            "msg=\"device not found\"",
            "name=/dev/vhost-vsock",
        ],
    ] {
        assert!(
            has_line(&out.stderr, parts),
            "{parts:?} in\n{}",
            text(&out.stderr)
        );
    }
    let (out, doc) = h.check_json(&[]);
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(doc["on_vm"], true);
    assert_eq!(doc["capable"], false);
    assert_eq!(
        failing_ids(&doc),
        [
            "cpu-flag:svm",
            "module:kvm_amd",
            "module:vhost",
            "module:vhost_net",
            "device:/dev/vhost-vsock"
        ]
    );
    assert!(doc["create_vm"].is_null(), "not reached when not capable");
}

#[test]
fn hygon_is_checked_like_amd() {
    let h = Host::new("hygon");
    assert_capable(&h.check(&[]));
    let (_, doc) = h.check_json(&[]);
    assert_eq!(doc["cpu_vendor"], "HygonGenuine");
    let ids = requirement_ids(&doc);
    assert_eq!(ids[0], "cpu-attribute:HygonGenuine");
    assert!(ids.contains(&"cpu-flag:svm".to_string()));
    assert!(ids.contains(&"module:kvm_amd".to_string()));
}

#[test]
fn arm64_is_capable() {
    let h = Host::new("arm64");
    let out = h.check(&[]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    assert_eq!(text(&out.stdout), format!("{CAPABLE}\n"));
    let (_, doc) = h.check_json(&[]);
    assert_eq!(doc["arch"], "arm64");
    assert!(doc["cpu_vendor"].is_null());
    assert_eq!(
        requirement_ids(&doc),
        [
            "module:kvm",
            "module:vhost",
            "module:vhost_net",
            "module:vhost_vsock",
            "device:/dev/kvm",
            "device:/dev/vhost-vsock"
        ]
    );
    if is_root() {
        // Another architecture than this binary: the create-VM test cannot stand for it.
        assert!(has_line(
            &out.stderr,
            &["msg=\"create-VM test skipped\"", "this binary runs on"]
        ));
    }
}

#[test]
fn arm64_without_vhost_net_is_not_capable() {
    let h = Host::new("arm64-no-vhost-net");
    let out = h.check(&[]);
    assert_not_capable(&out);
    assert!(has_line(
        &out.stderr,
        &[
            "level=error",
            "msg=\"kernel property vhost_net not found\"",
            "description=\"Host kernel accelerator for virtio network\""
        ]
    ));
    let (_, doc) = h.check_json(&[]);
    assert_eq!(failing_ids(&doc), ["module:vhost_net"]);
}

#[test]
fn missing_assets_are_reported_with_everything_else() {
    let h = Host::new("amd-epyc-vm");
    std::fs::remove_file(h.path("usr/share/kata-containers/vmlinux-5.19.2-96")).unwrap();
    std::fs::remove_file(h.path("usr/bin/qemu-system-x86_64")).unwrap();
    std::fs::remove_file(h.path("usr/libexec/virtiofsd")).unwrap();
    let out = h.check(&[]);
    assert_not_capable(&out);
    assert!(has_line(
        &out.stderr,
        &[
            "level=error",
            "msg=\"configured asset not found\"",
            "name=hypervisor.qemu.kernel",
            "path=/usr/share/kata-containers/vmlinux.container",
            "type=asset"
        ]
    ));
    assert!(has_line(
        &out.stderr,
        &[
            "msg=\"configured asset not found\"",
            "name=hypervisor.qemu.path"
        ]
    ));
    // The host problems are still all there.
    assert!(has_line(
        &out.stderr,
        &["msg=\"CPU property not found\"", "name=svm"]
    ));
    let (_, doc) = h.check_json(&[]);
    let fails = failing_ids(&doc);
    assert!(fails.contains(&"asset:hypervisor.qemu.kernel".to_string()));
    assert!(fails.contains(&"asset:hypervisor.qemu.path".to_string()));
    assert!(fails.contains(&"asset:hypervisor.qemu.virtio_fs_daemon".to_string()));
    assert!(fails.contains(&"cpu-flag:svm".to_string()));
    let asset = doc["requirements"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["name"] == "hypervisor.qemu.kernel")
        .unwrap();
    assert!(
        asset["remedy"]
            .as_str()
            .unwrap()
            .contains("/usr/share/defaults/kata-containers/configuration-qemu.toml")
    );
}

#[test]
fn output_order_is_stable() {
    let h = Host::new("amd-epyc-vm");
    let a = log_lines(&h.check(&["-v"]).stderr);
    let b = log_lines(&h.check(&["-v"]).stderr);
    assert_eq!(a, b);
    // Failures come in table order: flags, then modules sorted by name, then devices.
    let names: Vec<&str> = a
        .iter()
        .filter(|l| l.contains("level=error") && l.contains(" type="))
        .filter_map(|l| l.split(' ').find(|w| w.starts_with("name=")))
        .collect();
    assert_eq!(
        names,
        [
            "name=svm",
            "name=kvm_amd",
            "name=vhost",
            "name=vhost_net",
            "name=/dev/vhost-vsock"
        ]
    );
}

#[test]
fn bare_metal_intel_with_unrestricted_guest_off_is_not_capable() {
    let h = Host::new("intel-vmx");
    std::fs::write(
        h.path("sys/module/kvm_intel/parameters/unrestricted_guest"),
        "N\n",
    )
    .unwrap();
    let out = h.check(&[]);
    assert_not_capable(&out);
    assert!(has_line(
        &out.stderr,
        &[
            "level=error",
            "msg=\"kernel module parameter has unexpected value\"",
            "expected=Y",
            "parameter=unrestricted_guest",
            "value=N"
        ]
    ));
    // spec Q17: no "value correct" record after the mismatch.
    let out = h.check(&["-v"]);
    assert!(!has_line(&out.stderr, &["Kernel property value correct"]));
}

#[test]
fn unknown_cpu_vendor_is_a_clear_error() {
    let h = Host::new("intel-vmx");
    let cpuinfo = std::fs::read_to_string(h.path("proc/cpuinfo")).unwrap();
    std::fs::write(
        h.path("proc/cpuinfo"),
        cpuinfo.replace("GenuineIntel", "CentaurHauls"),
    )
    .unwrap();
    let out = h.check(&[]);
    assert_eq!(out.status.code(), Some(1));
    let err = text(&out.stderr);
    assert!(
        err.contains("unknown CPU vendor \\\"CentaurHauls\\\""),
        "{err}"
    );
    assert!(
        err.lines()
            .last()
            .unwrap()
            .starts_with("unknown CPU vendor \"CentaurHauls\"")
    );
}

#[test]
fn missing_cpuinfo_names_the_file() {
    let h = Host::new("intel-vmx");
    std::fs::remove_file(h.path("proc/cpuinfo")).unwrap();
    let out = h.check(&[]);
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(
        text(&out.stderr).lines().last(),
        Some("open /proc/cpuinfo: no such file or directory")
    );
}

fn write_config(h: &Host, name: &str, text: &str) -> std::path::PathBuf {
    let p = h.path(name);
    std::fs::write(&p, text).unwrap();
    p
}

#[test]
fn dragonball_is_a_kvm_hypervisor_without_vhost_vsock_node() {
    // spec Q14. Dragonball uses hybrid vsock: no /dev/vhost-vsock needed.
    let h = Host::new("intel-vmx");
    std::fs::remove_file(h.path("dev/vhost-vsock")).unwrap();
    let cfg = write_config(
        &h,
        "dragonball.toml",
        "[hypervisor.dragonball]\nkernel = \"/usr/share/kata-containers/vmlinux.container\"\nimage = \"/usr/share/kata-containers/kata-containers.img\"\n",
    );
    let out = h
        .cmd()
        .args(["--config", cfg.to_str().unwrap(), "check", "-n", "--json"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let doc: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(doc["hypervisor"], "dragonball");
    assert!(requirement_ids(&doc).contains(&"device:/dev/kvm".to_string()));
    assert!(!requirement_ids(&doc).contains(&"device:/dev/vhost-vsock".to_string()));
}

#[test]
fn acrn_on_amd_needs_an_intel_cpu() {
    // spec Q15: the hypervisor matters on AMD too.
    let h = Host::new("amd-svm");
    std::fs::write(h.path("usr/bin/acrn-dm"), "#!/bin/sh\n").unwrap();
    std::fs::write(h.path("usr/bin/acrnctl"), "#!/bin/sh\n").unwrap();
    let cfg = write_config(
        &h,
        "acrn.toml",
        "[hypervisor.acrn]\npath = \"/usr/bin/acrn-dm\"\nctlpath = \"/usr/bin/acrnctl\"\nkernel = \"/usr/share/kata-containers/vmlinux.container\"\nimage = \"/usr/share/kata-containers/kata-containers.img\"\n",
    );
    let out = h
        .cmd()
        .args(["--config", cfg.to_str().unwrap(), "check", "-n"])
        .output()
        .unwrap();
    assert_not_capable(&out);
    assert!(has_line(
        &out.stderr,
        &[
            "msg=\"CPU property not found\"",
            "name=GenuineIntel",
            "type=attribute"
        ]
    ));
    assert!(has_line(
        &out.stderr,
        &["msg=\"device not found\"", "name=/dev/acrn_vhm"]
    ));
}

#[test]
fn version_only_modes_without_network_print_nothing() {
    let h = Host::new("amd-epyc-vm");
    for flag in ["--check-version-only", "--only-list-releases"] {
        let out = h.check(&[flag]);
        assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
        assert!(out.stdout.is_empty());
        assert!(out.stderr.is_empty(), "{}", text(&out.stderr));
    }
}

#[test]
fn no_network_env_var_skips_the_release_check() {
    // A release URL on a closed port: any network attempt would fail the run.
    let port = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    let h = Host::new("intel-vmx");
    // "If set to any value": `0` and `false` count too (spec §3.1).
    for value in ["yes", "0", "false"] {
        let out = h
            .cmd()
            .env("KATA_CHECK_NO_NETWORK", value)
            .env(
                "KATA_RELEASE_URL",
                format!("http://127.0.0.1:{port}/releases"),
            )
            .args(["check"])
            .output()
            .unwrap();
        assert_capable(&out);
        assert!(
            !text(&out.stderr).contains("Looking for releases"),
            "{value}"
        );
    }
}

#[test]
fn kata_check_alias_and_json_failure_document() {
    let h = Host::new("arm64-no-vhost-net");
    let out = h
        .cmd()
        .args(["kata-check", "-n", "--json"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let doc: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(doc["verdict"], NOT_CAPABLE);
    assert_eq!(text(&out.stderr).lines().last(), Some(NOT_CAPABLE));
    for r in doc["requirements"].as_array().unwrap() {
        for key in [
            "kind",
            "name",
            "description",
            "required",
            "found",
            "fails",
            "detail",
            "remedy",
        ] {
            assert!(r.get(key).is_some(), "{key} missing in {r}");
        }
    }
}

#[test]
fn unknown_host_arch_is_an_error() {
    let h = Host::new("intel-vmx");
    let out = h
        .cmd()
        .env("KATA_HOST_ARCH", "mips")
        .args(["check", "-n"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(text(&out.stderr).contains("KATA_HOST_ARCH=\"mips\" is not an architecture"));
}
