//! `kata-runtime factory status|destroy|init` texts and exit codes against a fake VM cache
//! server (tonic, on a Unix socket in a temp host root). No QEMU is started here.

#[path = "support/factory_fake.rs"]
mod fake;
#[path = "support/factory_host.rs"]
mod host;

use fake::{FakeCache, StatusReply};
use host::{Host, stderr, stdout};

fn cache_host(extra: &str) -> Host {
    let h = Host::new();
    h.config(&format!("vm_cache_number = 2\n{extra}"));
    h
}

#[test]
fn status_lists_the_server_and_its_vms_without_the_not_enabled_line() {
    let h = cache_host("");
    let f = FakeCache::start(
        &h.endpoint(),
        StatusReply::Ok {
            pid: 4242,
            vms: vec![(100, 1, 256), (101, 2, 2048)],
        },
    );
    let o = h.run(&["factory", "status"]);
    // spec Q45: no `vm factory not enabled` after a cache status.
    assert_eq!(
        stdout(&o),
        "VM cache server pid = 4242\nVM pid = 100 Cpu = 1 Memory = 256MiB\nVM pid = 101 Cpu = 2 Memory = 2048MiB\n"
    );
    assert_eq!(stderr(&o), "");
    assert_eq!(o.status.code(), Some(0));
    assert_eq!(f.calls(), vec!["Status"]);
}

#[test]
fn status_with_cache_and_template_reports_both() {
    let h = cache_host("enable_template = true");
    let _f = FakeCache::start(
        &h.endpoint(),
        StatusReply::Ok {
            pid: 7,
            vms: vec![],
        },
    );
    let o = h.run(&["factory", "status"]);
    assert_eq!(stdout(&o), "VM cache server pid = 7\nvm factory is off\n");
    assert_eq!(o.status.code(), Some(0));

    std::fs::create_dir_all(h.path(host::TEMPLATE)).unwrap();
    std::fs::write(h.path(host::TEMPLATE).join("memory"), "").unwrap();
    std::fs::write(h.path(host::TEMPLATE).join("state"), "").unwrap();
    let o = h.run(&["factory", "status"]);
    assert_eq!(stdout(&o), "VM cache server pid = 7\nvm factory is on\n");
}

#[test]
fn status_without_a_server_fails_on_stderr() {
    let h = cache_host("enable_template = true");
    let o = h.run(&["factory", "status"]);
    // spec Q46: one line on stderr (not stdout), non-zero exit; the template part still runs.
    assert_eq!(stdout(&o), "vm factory is off\n");
    assert_eq!(
        stderr(&o),
        "failed to call gRPC Status: dial unix /run/kata/cache.sock: connect: no such file or directory (no VM cache server is running: start one with \"kata-runtime factory init\")\n"
    );
    assert_eq!(o.status.code(), Some(1));
}

#[test]
fn status_passes_on_a_server_error() {
    let h = cache_host("");
    let _f = FakeCache::start(
        &h.endpoint(),
        StatusReply::Err(tonic::Code::Internal, "boom".into()),
    );
    let o = h.run(&["factory", "status"]);
    assert_eq!(stdout(&o), "");
    assert_eq!(
        stderr(&o),
        "failed to call gRPC Status: rpc error: code = Internal desc = boom\n"
    );
    assert_eq!(o.status.code(), Some(1));
}

#[test]
fn status_on_a_stale_socket_says_how_to_clean_up() {
    let h = cache_host("");
    std::fs::create_dir_all(h.endpoint().parent().unwrap()).unwrap();
    drop(std::os::unix::net::UnixListener::bind(h.endpoint()).unwrap());
    let o = h.run(&["factory", "status"]);
    assert_eq!(
        stderr(&o),
        "failed to call gRPC Status: dial unix /run/kata/cache.sock: connect: connection refused (the VM cache server is gone: \"kata-runtime factory destroy\" cleans up after it)\n"
    );
    assert_eq!(o.status.code(), Some(1));
}

#[test]
fn status_with_nothing_enabled() {
    let h = Host::new();
    h.config("");
    let o = h.run(&["factory", "status"]);
    assert_eq!(stdout(&o), "vm factory not enabled\n");
    assert_eq!(o.status.code(), Some(0));
    let h = Host::new();
    h.config("enable_template = true");
    let o = h.run(&["factory", "status"]);
    assert_eq!(stdout(&o), "vm factory is off\n");
}

#[test]
fn destroy_calls_quit_and_waits_for_the_server_to_go() {
    let h = cache_host("");
    let f = FakeCache::start(
        &h.endpoint(),
        StatusReply::Ok {
            pid: 1,
            vms: vec![],
        },
    );
    let o = h.run(&["factory", "destroy"]);
    assert_eq!(stdout(&o), "vm factory destroyed\n");
    assert_eq!(stderr(&o), "");
    assert_eq!(o.status.code(), Some(0));
    assert_eq!(f.calls(), vec!["Quit"]);
    // destroy returned only once the socket was gone.
    assert!(!h.endpoint().exists());
    f.join();
}

#[test]
fn destroy_without_a_server_fails() {
    let h = cache_host("");
    let o = h.run(&["factory", "destroy"]);
    assert_eq!(stdout(&o), "");
    assert_eq!(
        stderr(&o),
        "failed to call gRPC Quit: dial unix /run/kata/cache.sock: connect: no such file or directory (no VM cache server is running: start one with \"kata-runtime factory init\")\n"
    );
    assert_eq!(o.status.code(), Some(1));
}

#[test]
fn destroy_cleans_up_a_stale_socket() {
    let h = cache_host("");
    std::fs::create_dir_all(h.endpoint().parent().unwrap()).unwrap();
    drop(std::os::unix::net::UnixListener::bind(h.endpoint()).unwrap());
    let o = h.run(&["factory", "destroy"]);
    assert_eq!(stdout(&o), "vm factory destroyed\n");
    assert_eq!(
        stderr(&o),
        "the VM cache server on /run/kata/cache.sock was not running: removed its socket and stopped the 0 base VM(s) it left\n"
    );
    assert_eq!(o.status.code(), Some(0));
    assert!(!h.endpoint().exists());
}

#[test]
fn destroy_with_nothing_enabled_or_no_template() {
    for factory in ["", "enable_template = true"] {
        let h = Host::new();
        h.config(factory);
        let o = h.run(&["factory", "destroy"]);
        assert_eq!(stdout(&o), "vm factory destroyed\n", "{factory}");
        assert_eq!(o.status.code(), Some(0));
    }
}

#[test]
fn init_with_nothing_enabled_fails() {
    let h = Host::new();
    h.config("");
    let o = h.run(&["factory", "init"]);
    // spec Q47: exit 1 (the Go tool exits 0).
    assert_eq!(stdout(&o), "");
    assert_eq!(
        stderr(&o),
        "vm factory or VMCache is not enabled: set enable_template = true or vm_cache_number > 0 in the [factory] section of /etc/kata-containers/configuration.toml\n"
    );
    assert_eq!(o.status.code(), Some(1));
}

#[test]
fn init_refuses_an_existing_endpoint_and_leaves_it_alone() {
    let h = cache_host("");
    std::fs::create_dir_all(h.endpoint().parent().unwrap()).unwrap();
    std::fs::write(h.endpoint(), "not mine").unwrap();
    let o = h.run(&["factory", "init"]);
    assert_eq!(
        stderr(&o),
        "/run/kata/cache.sock already exists: another VM cache server may be running. Stop it with \"kata-runtime factory destroy\", or remove /run/kata/cache.sock if it is left over\n"
    );
    assert_eq!(o.status.code(), Some(1));
    assert_eq!(std::fs::read_to_string(h.endpoint()).unwrap(), "not mine");
    assert!(h.vm_dirs().is_empty(), "no VM was started");
}

#[test]
fn init_validates_the_vm_config() {
    let h = Host::new();
    h.config("vm_cache_number = 1");
    let cfg = h.path("/etc/kata-containers/configuration.toml");
    let text = std::fs::read_to_string(&cfg).unwrap();
    std::fs::write(h.path("/opt/image"), "x").unwrap();
    std::fs::write(
        &cfg,
        text.replace(
            "initrd = \"/opt/initrd\"",
            "initrd = \"/opt/initrd\"\nimage = \"/opt/image\"",
        ),
    )
    .unwrap();
    let o = h.run(&["factory", "init"]);
    assert_eq!(stderr(&o), "Image and initrd path cannot be both set\n");
    assert_eq!(o.status.code(), Some(1));
    assert!(!h.endpoint().exists());
}

#[test]
fn init_with_a_missing_qemu_binary_names_it() {
    let h = Host::bare();
    h.config("vm_cache_number = 1");
    let o = h.run(&["factory", "init"]);
    assert_eq!(o.status.code(), Some(1));
    assert!(stderr(&o).contains("/opt/qemu"), "{}", stderr(&o));
    assert!(stderr(&o).contains("does not exist"), "{}", stderr(&o));
    assert!(!h.endpoint().exists());
}

#[test]
fn init_reports_a_qemu_that_exits_at_once_with_its_stderr() {
    let h = Host::bare();
    h.qemu_script("echo \"qemu-system-x86_64: -machine q35: no such machine\" >&2\nexit 1");
    h.config("vm_cache_number = 2");
    let mut s = h.spawn_init();
    let (code, out, err) = s.wait(std::time::Duration::from_secs(30));
    assert_eq!(code, Some(1), "{err}");
    assert_eq!(out, "");
    assert_eq!(
        err,
        "cannot boot the base VMs of the VM cache: QEMU /opt/qemu exited with status 1 before it was ready: qemu-system-x86_64: -machine q35: no such machine\n"
    );
    assert!(!h.endpoint().exists(), "the socket is removed");
    assert!(
        h.vm_dirs().is_empty(),
        "no VM directory is left: {:?}",
        h.vm_dirs()
    );
}

#[test]
fn sigterm_during_a_hung_boot_stops_at_once_and_kills_the_qemu() {
    let h = Host::bare();
    // A "QEMU" that never opens its QMP socket (nor dies).
    h.qemu_script("echo $$ > \"$(dirname \"$0\")/qemu.pid\"\nexec sleep 1000");
    h.config("vm_cache_number = 1");
    let mut s = h.spawn_init();
    let pidfile = h.path("/opt/qemu.pid");
    assert!(host::wait_until(std::time::Duration::from_secs(10), || {
        std::fs::read_to_string(&pidfile).is_ok_and(|p| p.ends_with('\n'))
    }));
    let qemu: i64 = std::fs::read_to_string(&pidfile)
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    assert!(host::alive(qemu));
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(s.pid() as i32),
        nix::sys::signal::Signal::SIGTERM,
    )
    .unwrap();
    let t0 = std::time::Instant::now();
    let (code, _, err) = s.wait(std::time::Duration::from_secs(10));
    assert_eq!(code, Some(0), "{err}");
    assert!(
        t0.elapsed() < std::time::Duration::from_secs(5),
        "{:?}",
        t0.elapsed()
    );
    assert!(
        host::wait_until(std::time::Duration::from_secs(5), || !host::alive(qemu)),
        "the hung QEMU {qemu} was left behind"
    );
    assert!(!h.endpoint().exists());
    assert!(h.vm_dirs().is_empty(), "{:?}", h.vm_dirs());
}
