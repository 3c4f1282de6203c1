//! `kata-runtime env` against fake hosts: snapshots of every shipped Kata 3.0.0
//! configuration on every fixture host in both formats, the keys scripts read (real-peers §7),
//! the Appendix B sample byte for byte, bad host data, and no side effects.
//!
//! The fixtures are amd64 machines, and `Host.Architecture` is the build's, so the host-level
//! tests run on x86_64 builds only.
#![cfg(target_arch = "x86_64")]

#[path = "support/env_host.rs"]
mod env_host;

use std::collections::BTreeMap;
use std::fs;
use std::path::Path;

use env_host::{CONFIGS, FakeHost, HOSTS, INSTALLED_CONFIG_DIR, assert_snapshot, redact};
use serde_json::Value as Json;

fn json_of(text: &str) -> Json {
    serde_json::from_str(text).unwrap_or_else(|e| panic!("env --json is not JSON: {e}\n{text}"))
}

/// The TOML output read back and turned into JSON values.
fn toml_as_json(text: &str) -> Json {
    let t: toml::Table = text
        .parse()
        .unwrap_or_else(|e| panic!("env output is not TOML: {e}\n{text}"));
    serde_json::to_value(t).unwrap()
}

/// JSON nulls are Go nil slices, which the TOML encoder omits.
fn without_nulls(v: &Json) -> Json {
    match v {
        Json::Object(m) => Json::Object(
            m.iter()
                .filter(|(_, v)| !v.is_null())
                .map(|(k, v)| (k.clone(), without_nulls(v)))
                .collect(),
        ),
        Json::Array(a) => Json::Array(a.iter().map(without_nulls).collect()),
        v => v.clone(),
    }
}

fn expected_socket_path(config: &str) -> &'static str {
    if !env_host::is_root() {
        return "<<unknown>>";
    }
    match config {
        "clh" => "{ID}/clh.sock",
        "fc" => "/run/vc/firecracker/{ID}/root/kata.hvsock",
        _ => "",
    }
}

/// The line after `header` in the TOML text.
fn line_after<'a>(text: &'a str, header: &str) -> &'a str {
    let mut lines = text.lines();
    lines
        .by_ref()
        .find(|l| *l == header)
        .unwrap_or_else(|| panic!("no {header} line in\n{text}"));
    lines.next().unwrap_or("")
}

#[test]
fn every_shipped_config_on_every_fixture_host_matches_its_snapshots() {
    for host in HOSTS {
        for config in CONFIGS {
            let h = FakeHost::fixture(host);
            h.install_config(config);
            let toml_out = h.run(&["env"]);
            let json_out = h.run(&["env", "--json"]);
            for out in [&toml_out, &json_out] {
                assert!(
                    out.status.success(),
                    "{config} on {host}: {}",
                    String::from_utf8_lossy(&out.stderr)
                );
                // A sound host gives no warnings.
                assert!(
                    out.stderr.is_empty(),
                    "{config} on {host} warned: {}",
                    String::from_utf8_lossy(&out.stderr)
                );
            }
            let toml_text = String::from_utf8(toml_out.stdout).unwrap();
            let json_text = String::from_utf8(json_out.stdout).unwrap();

            // The JSON parses, and the TOML reads back to the same values.
            let json = json_of(&json_text);
            assert_eq!(
                toml_as_json(&toml_text),
                without_nulls(&json),
                "{config} on {host}: TOML and JSON disagree"
            );

            // The values the snapshots redact, checked here instead.
            assert_eq!(json["Runtime"]["Path"], env_host::binary_path().as_str());
            assert_eq!(
                json["Runtime"]["Version"]["Version"]["Commit"],
                kata_runtime::version::commit_or_unknown()
            );
            assert!(json["Host"]["CPU"]["CPUs"].as_i64().unwrap() >= 1);
            assert_eq!(
                json["Hypervisor"]["SocketPath"],
                expected_socket_path(config),
                "{config} on {host}"
            );

            assert_snapshot(&format!("{config}--{host}.toml"), &redact(&toml_text));
            assert_snapshot(&format!("{config}--{host}.json"), &redact(&json_text));
        }
    }
}

#[test]
fn keys_that_scripts_read_are_present_with_their_meaning() {
    let h = FakeHost::fixture("intel-vmx");
    h.install_config("qemu");
    let installed = format!("{INSTALLED_CONFIG_DIR}/configuration-qemu.toml");
    // tests/common.bash (extract_kata_env) and the tests repo read these with jq.
    for args in [
        &["env", "--json"][..],
        &["kata-env", "--json"],
        &["env", "--json=true"],
        &["env", "--json", "ignored", "words"],
    ] {
        let j = json_of(&h.stdout(args));
        assert_eq!(
            j["Runtime"]["Config"]["Path"],
            installed.as_str(),
            "{args:?}"
        );
        assert_eq!(j["Runtime"]["Path"], env_host::binary_path().as_str());
        assert_eq!(j["Runtime"]["Version"]["Version"]["Semver"], "3.0.0");
        assert_eq!(j["Runtime"]["Version"]["Version"]["Major"], 3);
        assert!(j["Runtime"]["Version"]["Version"]["Commit"].is_string());
        assert_eq!(j["Runtime"]["Version"]["OCI"], "1.0.2-dev");
        assert_eq!(j["Hypervisor"]["Path"], "/opt/kata/bin/qemu-system-x86_64");
        assert_eq!(
            j["Hypervisor"]["Version"],
            "QEMU emulator version 6.2.0 (kata-static)\nCopyright (c) 2003-2021 Fabrice Bellard and the QEMU Project developers"
        );
        assert_eq!(
            j["Hypervisor"]["VirtioFSDaemon"],
            "/opt/kata/libexec/virtiofsd"
        );
        assert_eq!(j["Hypervisor"]["SharedFS"], "virtio-fs");
        assert_eq!(j["Hypervisor"]["SocketPath"], expected_socket_path("qemu"));
        assert_eq!(j["Initrd"]["Path"], "");
        // Symlinks resolved, as the Go tool reports them.
        assert_eq!(
            j["Kernel"]["Path"],
            "/opt/kata/share/kata-containers/vmlinux-5.19.2-96"
        );
        assert_eq!(j["Host"]["Memory"]["Total"], 395894280u64);
        assert_eq!(j["Meta"]["Version"], "1.0.26");
    }
    // kata-collect-data.sh takes the line after [Image] / [Initrd].
    let toml_text = h.stdout(&["kata-env"]);
    assert_eq!(
        line_after(&toml_text, "[Image]"),
        "  Path = \"/opt/kata/share/kata-containers/kata-ubuntu-latest.image\""
    );
    assert_eq!(line_after(&toml_text, "[Initrd]"), "  Path = \"\"");
    assert!(toml_text.starts_with("[Kernel]\n  Path = "));
    assert!(toml_text.ends_with("[Agent]\n  Debug = false\n  Trace = false\n"));
}

#[test]
fn settings_follow_the_configuration_and_its_drop_ins() {
    let h = FakeHost::fixture("intel-vmx");
    h.install_config("clh");
    h.write(
        &format!("{INSTALLED_CONFIG_DIR}/config.d/50-debug.toml"),
        "[runtime]\nenable_debug = true\nenable_tracing = true\ndisable_guest_seccomp = false\nsandbox_cgroup_only = true\n\
         [agent.kata]\nenable_debug = true\nenable_tracing = true\n\
         [hypervisor.clh]\nenable_debug = true\nhotplug_vfio_on_root_bus = true\npcie_root_port = 2\nmemory_slots = 4\n\
         initrd = \"/opt/kata/share/kata-containers/kata-containers-initrd.img\"\n",
    );
    h.write(
        "/opt/kata/share/kata-containers/kata-containers-initrd.img",
        "initrd stand-in\n",
    );
    let j = json_of(&h.stdout(&["env", "--json"]));
    assert_eq!(j["Runtime"]["Debug"], true);
    assert_eq!(j["Runtime"]["Trace"], true);
    assert_eq!(j["Runtime"]["DisableGuestSeccomp"], false);
    assert_eq!(j["Runtime"]["SandboxCgroupOnly"], true);
    assert_eq!(j["Agent"]["Debug"], true);
    assert_eq!(j["Agent"]["Trace"], true);
    assert_eq!(j["Hypervisor"]["Debug"], true);
    assert_eq!(j["Hypervisor"]["HotplugVFIOOnRootBus"], true);
    assert_eq!(j["Hypervisor"]["PCIeRootPort"], 2);
    assert_eq!(j["Hypervisor"]["MemorySlots"], 4);
    assert_eq!(
        j["Initrd"]["Path"],
        "/opt/kata/share/kata-containers/kata-containers-initrd.img"
    );
    let params = j["Kernel"]["Parameters"].as_str().unwrap();
    assert!(
        params.ends_with("systemd.mask=systemd-networkd.socket agent.log=debug agent.trace=true"),
        "{params}"
    );
}

#[test]
fn vm_container_capable_uses_the_check_probes() {
    // Cases the full `check` tables agree on (the snapshots leave this value out).
    for (host, config, expected) in [
        ("intel-vmx", "qemu", true),
        ("amd-vm-nosvm", "clh", false),
        ("intel-tdx", "qemu", false), // vhost_net is not loaded
    ] {
        let h = FakeHost::fixture(host);
        h.install_config(config);
        let j = json_of(&h.stdout(&["env", "--json"]));
        assert_eq!(
            j["Host"]["VMContainerCapable"], expected,
            "{config} on {host}"
        );
    }
}

#[test]
fn guest_protections_vsock_and_distro_per_host() {
    for (host, protections, vsock, name, version) in [
        ("intel-vmx", Json::Null, true, "Ubuntu", "22.04"),
        // Q26: single quotes stripped; only /usr/lib/os-release exists.
        ("amd-vm-nosvm", Json::Null, false, "openSUSE Leap", "15.5"),
        // NAME from /etc/os-release, VERSION_ID from /usr/lib/os-release.
        (
            "amd-sev-oldkernel",
            serde_json::json!(["sev"]),
            true,
            "CentOS Linux",
            "7",
        ),
        (
            "intel-tdx",
            serde_json::json!(["tdx"]),
            false,
            "Debian GNU/Linux",
            "12",
        ),
    ] {
        let h = FakeHost::fixture(host);
        h.install_config("qemu");
        let j = json_of(&h.stdout(&["env", "--json"]));
        assert_eq!(
            j["Host"]["AvailableGuestProtections"], protections,
            "{host}"
        );
        assert_eq!(j["Host"]["SupportVSocks"], vsock, "{host}");
        assert_eq!(j["Host"]["Distro"]["Name"], name, "{host}");
        assert_eq!(j["Host"]["Distro"]["Version"], version, "{host}");
        let t = h.stdout(&["env"]);
        let has_line = t.contains("\n  AvailableGuestProtections = ");
        assert_eq!(
            has_line,
            !protections.is_null(),
            "{host}: nil is omitted in TOML"
        );
    }
}

/// Appendix B of the behaviour spec: the Go tool's output for a clh configuration, as root.
/// The JSON sample's `Free`/`Available` came from a second run of the Go tool; the fixture
/// uses the TOML run's values for both.
#[test]
fn appendix_b_sample_is_reproduced_byte_for_byte() {
    let h = FakeHost::empty();
    h.write(
        "/proc/version",
        "Linux version 6.18.44-fc-v509 (root@build) (gcc 12.2.0) #1 SMP PREEMPT_DYNAMIC\n",
    );
    h.write(
        "/proc/cpuinfo",
        "processor\t: 0\nvendor_id\t: AuthenticAMD\nmodel name\t: AMD EPYC\nflags\t\t: fpu lm sse4_1 hypervisor\n\nprocessor\t: 1\nvendor_id\t: AuthenticAMD\nmodel name\t: AMD EPYC\n",
    );
    h.write(
        "/proc/meminfo",
        "MemTotal:       24684100 kB\nMemFree:        18678896 kB\nMemAvailable:   23615352 kB\n",
    );
    h.write(
        "/etc/os-release",
        "NAME=\"Debian GNU/Linux\"\nVERSION_ID=\"12\"\n",
    );
    fs::create_dir_all(h.path("/sys/module/kvm")).unwrap();
    for f in ["kernel", "image", "virtiofsd"] {
        h.write(&format!("/srv/example/{f}"), "stand-in\n");
    }
    h.script("/srv/example/fake-clh", "echo cloud-hypervisor v25.0.0");
    h.write(
        "/srv/example/clh.toml",
        "[hypervisor.clh]\npath = \"/srv/example/fake-clh\"\nkernel = \"/srv/example/kernel\"\nimage = \"/srv/example/image\"\nvirtio_fs_daemon = \"/srv/example/virtiofsd\"\n",
    );
    h.symlink(
        "/srv/example/clh.toml",
        "/etc/kata-containers/configuration.toml",
    );

    let exe = env_host::binary_path();
    let commit = kata_runtime::version::commit_or_unknown();
    let cpus = format!(
        "{}",
        json_of(&h.stdout(&["env", "--json"]))["Host"]["CPU"]["CPUs"]
    );
    for (args, file) in [(&["env"][..], "b1.toml"), (&["env", "--json"], "b2.json")] {
        let out = h.stdout(args);
        let json = file.ends_with(".json");
        let esc = |s: &str| {
            if json {
                s.replace('<', "\\u003c").replace('>', "\\u003e")
            } else {
                s.to_string()
            }
        };
        let mut expected = fs::read_to_string(env_host::fixtures().join("appendix-b").join(file))
            .unwrap()
            .replace("/usr/bin/kata-runtime", &exe)
            .replace("\"<COMMIT>\"", &format!("\"{}\"", esc(commit)));
        expected = if json {
            expected.replace("\"CPUs\": 2", &format!("\"CPUs\": {cpus}"))
        } else {
            expected.replace("CPUs = 2", &format!("CPUs = {cpus}"))
        };
        if !env_host::is_root() {
            expected =
                expected.replace("\"{ID}/clh.sock\"", &format!("\"{}\"", esc("<<unknown>>")));
        }
        assert_eq!(out, expected, "{file}");
    }
}

#[test]
fn an_empty_host_gives_placeholders_and_warnings_not_a_failure() {
    let h = FakeHost::empty();
    h.install_config("qemu");
    let out = h.run(&["env", "--json"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let j = json_of(&String::from_utf8(out.stdout).unwrap());
    let err = String::from_utf8(out.stderr).unwrap();
    assert_eq!(j["Host"]["Kernel"], "<<unknown>>");
    assert_eq!(j["Host"]["Distro"]["Name"], "<<unknown>>");
    assert_eq!(j["Host"]["Distro"]["Version"], "<<unknown>>");
    assert_eq!(j["Host"]["CPU"]["Vendor"], "<<unknown>>");
    assert_eq!(j["Host"]["CPU"]["Model"], "<<unknown>>");
    assert_eq!(j["Host"]["Memory"]["Total"], 0);
    assert_eq!(j["Host"]["VMContainerCapable"], false);
    assert_eq!(j["Host"]["SupportVSocks"], false);
    for needle in [
        "kata-runtime: warning: cannot tell the host kernel release: /proc/version does not exist",
        "kata-runtime: warning: cannot tell the CPU vendor and model: /proc/cpuinfo does not exist",
        "kata-runtime: warning: cannot read the host memory: /proc/meminfo does not exist; showing 0",
    ] {
        assert!(err.contains(needle), "missing {needle:?} in:\n{err}");
    }
    // A missing os-release is not worth a warning (the Go tool skips it silently too).
    assert!(!err.contains("os-release"), "{err}");
}

#[test]
fn bad_host_data_is_named_and_replaced_by_placeholders() {
    let h = FakeHost::fixture("intel-vmx");
    h.install_config("qemu");
    h.write("/proc/cpuinfo", "");
    h.write("/proc/meminfo", "MemTotal: 1024 kB\nMemFree: lots kB\n");
    h.write(
        "/etc/os-release",
        "PRETTY_NAME=\"Nameless\"\nVERSION_ID=9\n",
    );
    fs::remove_file(h.path("/proc/version")).unwrap();
    fs::create_dir_all(h.path("/proc/version")).unwrap(); // unreadable: a directory
    let out = h.run(&["env"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8(out.stdout).unwrap();
    let t = toml_as_json(&text);
    let err = String::from_utf8(out.stderr).unwrap();
    assert_eq!(t["Host"]["CPU"]["Vendor"], "<<unknown>>");
    assert!(
        err.contains(
            "cannot tell the CPU vendor and model: cannot find vendor field in file /proc/cpuinfo"
        ),
        "{err}"
    );
    // Q27: absent MemAvailable is 0; the unparsable MemFree is 0 and named.
    assert_eq!(t["Host"]["Memory"]["Total"], 1024);
    assert_eq!(t["Host"]["Memory"]["Free"], 0);
    assert_eq!(t["Host"]["Memory"]["Available"], 0);
    assert!(
        err.contains("cannot parse MemFree in /proc/meminfo; showing 0"),
        "{err}"
    );
    assert!(!err.contains("MemAvailable"), "{err}");
    assert_eq!(t["Host"]["Distro"]["Name"], "<<unknown>>");
    assert_eq!(t["Host"]["Distro"]["Version"], "9");
    assert_eq!(t["Host"]["Kernel"], "<<unknown>>");
    assert!(
        err.contains("cannot tell the host kernel release: open /proc/version: is a directory"),
        "{err}"
    );

    // Garbage in /proc/version and invalid UTF-8 in os-release.
    h.write("/proc/cpuinfo", "vendor_id : GenuineIntel\n");
    fs::remove_dir(h.path("/proc/version")).unwrap();
    h.write("/proc/version", "Linux\n");
    fs::write(h.path("/etc/os-release"), b"NAME=\"Caf\xe9 OS\"\n").unwrap();
    let out = h.run(&["env", "--json"]);
    assert!(out.status.success());
    let j = json_of(&String::from_utf8(out.stdout).unwrap());
    let err = String::from_utf8(out.stderr).unwrap();
    assert_eq!(j["Host"]["Distro"]["Name"], "Caf\u{fffd} OS");
    assert!(
        err.contains("cannot find model field in file /proc/cpuinfo"),
        "{err}"
    );
    assert!(
        err.contains("unexpected contents in /proc/version"),
        "{err}"
    );
}

#[test]
fn configuration_errors_fail_with_the_file_and_key_and_print_nothing() {
    let h = FakeHost::fixture("intel-vmx");
    h.install_config("qemu");
    fs::remove_file(h.path("/opt/kata/share/kata-containers/vmlinux-5.19.2-96")).unwrap();
    let out = h.run(&["env", "--json"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(out.stdout.is_empty());
    let err = String::from_utf8(out.stderr).unwrap();
    assert!(
        err.contains(&format!("{INSTALLED_CONFIG_DIR}/configuration-qemu.toml"))
            && err.contains("hypervisor.qemu.kernel")
            && err.contains("/opt/kata/share/kata-containers/vmlinux.container"),
        "{err}"
    );
}

#[test]
fn without_a_configuration_the_builtin_default_is_marked() {
    let h = FakeHost::fixture("intel-vmx");
    let out = h.run(&["env", "--json"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let j = json_of(&String::from_utf8(out.stdout).unwrap());
    assert_eq!(j["Runtime"]["Config"]["Path"], "<built-in default>");
    // The built-in configuration's hypervisor is not on this host.
    assert_eq!(j["Hypervisor"]["Path"], "/usr/bin/qemu-system-x86_64");
    assert_eq!(j["Hypervisor"]["Version"], "<<unknown>>");
    assert!(String::from_utf8_lossy(&out.stderr).contains("using the built-in default"));
}

#[test]
fn an_explicit_config_is_reported_resolved() {
    let h = FakeHost::fixture("amd-vm-nosvm");
    h.install_assets();
    let dir = tempfile::tempdir().unwrap();
    let real = dir.path().join("real.toml");
    fs::write(
        &real,
        env_host::rewrite_assets(&env_host::shipped_config("fc")),
    )
    .unwrap();
    let link = dir.path().join("link.toml");
    std::os::unix::fs::symlink(&real, &link).unwrap();
    let j = json_of(&h.stdout(&["--kata-config", link.to_str().unwrap(), "env", "--json"]));
    let real = fs::canonicalize(&real).unwrap();
    assert_eq!(j["Runtime"]["Config"]["Path"], real.to_str().unwrap());
    assert_eq!(j["Hypervisor"]["Path"], "/opt/kata/bin/firecracker");
    assert_eq!(j["Hypervisor"]["MachineType"], "");
    assert_eq!(j["Hypervisor"]["Msize9p"], 0);
}

/// Every file under `root` with its size, mode and modification time.
fn tree(root: &Path) -> BTreeMap<String, String> {
    use std::os::unix::fs::MetadataExt as _;
    let mut out = BTreeMap::new();
    let mut stack = vec![root.to_path_buf()];
    while let Some(dir) = stack.pop() {
        for e in fs::read_dir(&dir).unwrap() {
            let e = e.unwrap();
            let m = fs::symlink_metadata(e.path()).unwrap();
            if m.is_dir() {
                stack.push(e.path());
            }
            out.insert(
                e.path().display().to_string(),
                format!(
                    "{} {:o} {}.{}",
                    m.len(),
                    m.mode(),
                    m.mtime(),
                    m.mtime_nsec()
                ),
            );
        }
    }
    out
}

#[test]
fn env_changes_nothing_on_the_host() {
    // spec Q28: no vsock CID reservation, no module loading, no files written.
    for config in CONFIGS {
        let h = FakeHost::fixture("amd-vm-nosvm");
        h.install_config(config);
        h.write("/dev/vhost-vsock", "");
        let before = tree(h.root());
        h.stdout(&["env"]);
        h.stdout(&["env", "--json"]);
        assert_eq!(before, tree(h.root()), "{config}");
    }
}

#[test]
fn without_root_the_socket_path_is_unknown() {
    let h = FakeHost::fixture("intel-vmx");
    h.install_config("clh");
    let out = if env_host::is_root() {
        if !Path::new("/usr/bin/setpriv").exists() {
            eprintln!("skipped: running as root and /usr/bin/setpriv is missing");
            return;
        }
        use std::os::unix::fs::PermissionsExt as _;
        fs::set_permissions(h.root(), fs::Permissions::from_mode(0o755)).unwrap();
        let out = std::process::Command::new("/usr/bin/setpriv")
            .args(["--reuid=65534", "--regid=65534", "--clear-groups"])
            .arg(env!("CARGO_BIN_EXE_kata-runtime"))
            .args(["env", "--json"])
            .env("KATA_HOST_ROOT", h.root())
            .output()
            .unwrap();
        if !out.status.success()
            && String::from_utf8_lossy(&out.stderr).contains("ermission denied")
        {
            eprintln!(
                "skipped: user nobody cannot run the test binary or read the fake root: {}",
                String::from_utf8_lossy(&out.stderr)
            );
            return;
        }
        out
    } else {
        h.run(&["env", "--json"])
    };
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8(out.stdout).unwrap();
    // Q29 kept: the placeholder is HTML-escaped in JSON, as the Go tool writes it.
    assert!(
        text.contains("\"SocketPath\": \"\\u003c\\u003cunknown\\u003e\\u003e\","),
        "{text}"
    );
    assert_eq!(
        json_of(&text)["Hypervisor"]["Version"],
        "cloud-hypervisor v26.0"
    );
}

/// A root of another architecture (`KATA_HOST_ARCH`): the CPU rules, `Host.Architecture` and
/// `VMContainerCapable` all follow the inspected host, not the binary.
#[test]
fn a_foreign_architecture_root_is_read_with_its_own_rules() {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/hosts/arm64");
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_kata-runtime"))
        .env("KATA_HOST_ROOT", &root)
        .env("KATA_HOST_ARCH", "arm64")
        .args(["env", "--json"])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let j: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(j["Host"]["Architecture"], "arm64");
    assert_eq!(j["Host"]["CPU"]["Vendor"], "ARM Limited");
    assert_eq!(j["Host"]["CPU"]["Model"], "v8");
    assert_eq!(j["Host"]["VMContainerCapable"], true);
}
