//! The root-only create-VM test of `check` on the real KVM of this machine. These are the
//! only tests that touch a real device: they open /dev/kvm and create (and drop) one empty
//! VM. They skip, saying why, when not root or when /dev/kvm cannot be opened.

#[path = "support/check_hosts.rs"]
mod hosts;

use hosts::*;
use kata_runtime::config::HypervisorType;
use kata_runtime::host::kvm::{HostDevices, create_vm_test};
use kata_runtime::host::requirements::Arch;
use kata_runtime::paths::HostRoot;

/// Why the real-KVM tests cannot run here, if they cannot.
fn unusable() -> Option<String> {
    if !is_root() {
        return Some("not root (check runs the create-VM test only as root)".into());
    }
    if Arch::running().is_err() {
        return Some("this architecture is not supported by Kata Containers".into());
    }
    match kvm_ioctls::Kvm::new() {
        Ok(_) => None,
        Err(e) => Some(format!("cannot open /dev/kvm: errno {}", e.errno())),
    }
}

/// What KVM itself says about creating a VM, for comparison.
fn kvm_can_create_vm() -> bool {
    kvm_ioctls::Kvm::new()
        .and_then(|k| k.create_vm_with_type(0))
        .is_ok()
}

#[test]
fn real_kvm_create_vm_through_the_library() {
    if let Some(why) = unusable() {
        eprintln!("skipped real_kvm_create_vm_through_the_library: {why}");
        return;
    }
    let log = slog::Logger::root(slog::Discard, slog::o!());
    let arch = Arch::running().unwrap();
    let got = create_vm_test(
        &HostDevices,
        &HostRoot::default(),
        arch,
        HypervisorType::Qemu,
        &log,
    );
    assert_eq!(got.is_ok(), kvm_can_create_vm(), "{got:?}");
    if let Ok(ok) = got {
        assert_eq!(ok.device, "/dev/kvm");
        assert_eq!(ok.ipa_limit_bits.is_some(), arch == Arch::Arm64);
    }
}

#[test]
fn real_kvm_create_vm_through_the_binary() {
    if let Some(why) = unusable() {
        eprintln!("skipped real_kvm_create_vm_through_the_binary: {why}");
        return;
    }
    // A capable fixture host whose dev/kvm is this machine's real KVM node.
    let name = if Arch::running().unwrap() == Arch::Arm64 {
        "arm64"
    } else {
        "amd-svm"
    };
    let h = Host::new(name);
    std::fs::remove_file(h.path("dev/kvm")).unwrap();
    std::os::unix::fs::symlink("/dev/kvm", h.path("dev/kvm")).unwrap();
    let out = h.check(&[]);
    let stdout = text(&out.stdout);
    if kvm_can_create_vm() {
        assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
        assert_eq!(
            stdout,
            format!("{CAPABLE}\nSystem can currently create Kata Containers\n")
        );
    } else {
        assert_eq!(out.status.code(), Some(1));
        assert_eq!(stdout, format!("{CAPABLE}\n"));
        assert!(text(&out.stderr).contains("cannot create a virtual machine with /dev/kvm"));
    }
    let (_, doc) = h.check_json(&["-v"]);
    let want = if kvm_can_create_vm() { "ok" } else { "failed" };
    assert_eq!(doc["create_vm"]["result"], want);
    assert_eq!(doc["create_vm"]["device"], "/dev/kvm");
    assert!(requirement_ids(&doc).contains(&"kvm:create-vm".to_string()));
}
