//! `kata-runtime factory` with a real QEMU (Debian package `qemu-system-x86`): the VM
//! cache end to end, its faults, and the VM template as root. The guest is a 36-byte
//! multiboot image that idles; TCG is used where KVM is not usable. Each test prints why
//! it skipped when it cannot run.

#[path = "support/factory_host.rs"]
mod host;

use std::time::Duration;

use host::{Host, alive, stderr, stdout, wait_until};
use kata_runtime::cache::cache_service_client::CacheServiceClient;

fn skip_without_qemu(test: &str) -> bool {
    if !host::have_qemu() {
        eprintln!(
            "skipping {test}: {} is not installed (apt-get install qemu-system-x86)",
            host::REAL_QEMU
        );
        return true;
    }
    false
}

/// `(server pid, [vm pids])` from `factory status`, or `None` while it fails.
fn status(h: &Host) -> Option<(i64, Vec<i64>)> {
    let o = h.run(&["factory", "status"]);
    if !o.status.success() {
        return None;
    }
    let text = stdout(&o);
    let mut lines = text.lines();
    let server = lines
        .next()?
        .strip_prefix("VM cache server pid = ")?
        .parse()
        .ok()?;
    let mut vms = Vec::new();
    for l in lines {
        let rest = l.strip_prefix("VM pid = ")?;
        let (pid, tail) = rest.split_once(' ')?;
        assert_eq!(tail, "Cpu = 1 Memory = 256MiB", "{text}");
        vms.push(pid.parse().ok()?);
    }
    Some((server, vms))
}

fn wait_for_vms(h: &Host, n: usize) -> (i64, Vec<i64>) {
    let mut last = None;
    let ok = wait_until(Duration::from_secs(60), || {
        last = status(h);
        last.as_ref().is_some_and(|(_, v)| v.len() == n)
    });
    assert!(ok, "no {n} VMs: {last:?}\n{}", h.log());
    last.unwrap()
}

fn rt() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
}

/// A tonic client of our own (not the crate's) over the Unix socket.
async fn raw_client(sock: std::path::PathBuf) -> CacheServiceClient<tonic::transport::Channel> {
    let ch = tonic::transport::Endpoint::from_static("http://cache")
        .connect_with_connector(tower::service_fn(move |_| {
            let s = sock.clone();
            async move {
                Ok::<_, std::io::Error>(hyper_util::rt::TokioIo::new(
                    tokio::net::UnixStream::connect(s).await?,
                ))
            }
        }))
        .await
        .unwrap();
    CacheServiceClient::new(ch)
}

#[test]
fn cache_keeps_two_vms_hands_one_over_refills_and_stops_them_all() {
    if skip_without_qemu("cache_keeps_two_vms_hands_one_over_refills_and_stops_them_all") {
        return;
    }
    let h = Host::new();
    h.config("vm_cache_number = 2");
    let server = h.spawn_init();
    let (spid, vms) = wait_for_vms(&h, 2);
    assert_eq!(spid, i64::from(server.pid()));
    assert!(vms.iter().all(|&p| alive(p)), "{vms:?}");
    let mode = |p: &std::path::Path| {
        use std::os::unix::fs::PermissionsExt as _;
        std::fs::metadata(p).unwrap().permissions().mode() & 0o777
    };
    assert_eq!(mode(&h.endpoint()), 0o600);
    assert_eq!(mode(h.endpoint().parent().unwrap()), 0o755);

    // Config and GetBaseVM from a client of the test's own.
    let (vm, config) = rt().block_on(async {
        let mut c = raw_client(h.endpoint()).await;
        let config = c.config(()).await.unwrap().into_inner();
        let vm = c.get_base_vm(()).await.unwrap().into_inner();
        (vm, config)
    });
    let cfg: serde_json::Value = serde_json::from_slice(&config.data).unwrap();
    assert_eq!(cfg["HypervisorType"], "qemu");
    assert_eq!(cfg["HypervisorConfig"]["memory_mib"], 256);
    assert_eq!((vm.cpu, vm.memory), (1, 256));
    let hv: serde_json::Value = serde_json::from_slice(&vm.hypervisor).unwrap();
    assert_eq!(hv["ID"], vm.id.as_str());
    let handed = hv["Pid"].as_i64().unwrap();
    assert!(vms.contains(&handed), "{hv}");
    let shown = hv["QmpChannelpath"].as_str().unwrap();
    assert_eq!(shown, format!("/run/vc/vm/{}/qmp.sock", vm.id));
    let qmp_path = h.path(shown);

    // The server refills: two VMs again, one of them new, the handed one no longer listed.
    let (_, after) = wait_for_vms(&h, 2);
    assert!(!after.contains(&handed), "{after:?}");
    assert!(after.iter().any(|p| !vms.contains(p)), "{after:?}");

    // The handed-over VM is the client's: alive, paused, answering on QMP.
    assert!(alive(handed));
    rt().block_on(async {
        let mut q = kata_runtime::factory::qmp::Qmp::connect(&qmp_path)
            .await
            .unwrap();
        let st = q.execute("query-status", None).await.unwrap();
        assert_eq!(st["status"], "prelaunch", "{st}");
        q.quit().await.unwrap();
    });

    let o = h.run(&["factory", "destroy"]);
    assert_eq!(stdout(&o), "vm factory destroyed\n", "{}", stderr(&o));
    assert_eq!(o.status.code(), Some(0));
    // destroy returns once the server is gone.
    assert!(!h.endpoint().exists());
    let mut server = server;
    let (code, _, err) = server.wait(Duration::from_secs(10));
    assert_eq!(code, Some(0), "{err}");
    for p in vms.iter().chain(&after) {
        assert!(
            wait_until(Duration::from_secs(5), || !alive(*p)),
            "QEMU {p} left behind"
        );
    }
    // Only the handed-over VM's directory is left: it is the client's to remove.
    assert_eq!(h.vm_dirs(), vec![qmp_path.parent().unwrap().to_path_buf()]);
}

#[test]
fn sigterm_stops_every_vm_and_removes_the_socket() {
    if skip_without_qemu("sigterm_stops_every_vm_and_removes_the_socket") {
        return;
    }
    let h = Host::new();
    h.config("vm_cache_number = 2");
    let mut server = h.spawn_init();
    let (_, vms) = wait_for_vms(&h, 2);
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(server.pid() as i32),
        nix::sys::signal::Signal::SIGTERM,
    )
    .unwrap();
    let (code, _, err) = server.wait(Duration::from_secs(20));
    assert_eq!(code, Some(0), "{err}");
    assert!(!h.endpoint().exists());
    for p in &vms {
        assert!(!alive(*p), "QEMU {p} left behind");
    }
    assert!(h.vm_dirs().is_empty());
}

#[test]
fn a_vm_that_dies_is_replaced() {
    if skip_without_qemu("a_vm_that_dies_is_replaced") {
        return;
    }
    let h = Host::new();
    h.config("vm_cache_number = 1");
    let _server = h.spawn_init();
    let (_, vms) = wait_for_vms(&h, 1);
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(vms[0] as i32),
        nix::sys::signal::Signal::SIGKILL,
    )
    .unwrap();
    let mut last = None;
    assert!(
        wait_until(Duration::from_secs(30), || {
            last = status(&h);
            last.as_ref()
                .is_some_and(|(_, v)| v.len() == 1 && v[0] != vms[0])
        }),
        "{last:?}"
    );
    assert!(h.log().contains("base VM exited; booting a replacement"));
    let o = h.run(&["factory", "destroy"]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let new = last.unwrap().1[0];
    assert!(wait_until(Duration::from_secs(5), || !alive(new)));
}

#[test]
fn a_killed_server_is_reported_and_destroy_cleans_up_after_it() {
    if skip_without_qemu("a_killed_server_is_reported_and_destroy_cleans_up_after_it") {
        return;
    }
    let h = Host::new();
    h.config("vm_cache_number = 2");
    let mut server = h.spawn_init();
    let (_, vms) = wait_for_vms(&h, 2);
    server.sigkill();

    let o = h.run(&["factory", "status"]);
    assert_eq!(o.status.code(), Some(1));
    assert!(
        stderr(&o).contains("connect: connection refused"),
        "{}",
        stderr(&o)
    );

    let o = h.run(&["factory", "destroy"]);
    assert_eq!(stdout(&o), "vm factory destroyed\n");
    assert_eq!(
        stderr(&o),
        "the VM cache server on /run/kata/cache.sock was not running: removed its socket and stopped the 2 base VM(s) it left\n"
    );
    assert_eq!(o.status.code(), Some(0));
    for p in &vms {
        assert!(
            wait_until(Duration::from_secs(5), || !alive(*p)),
            "QEMU {p} left behind"
        );
    }
    assert!(!h.endpoint().exists());
    assert!(h.vm_dirs().is_empty(), "{:?}", h.vm_dirs());
}

#[test]
fn a_real_qemu_that_rejects_its_options_is_reported() {
    if skip_without_qemu("a_real_qemu_that_rejects_its_options_is_reported") {
        return;
    }
    let h = Host::new();
    h.config("vm_cache_number = 1");
    let cfg = h.path("/etc/kata-containers/configuration.toml");
    let text = std::fs::read_to_string(&cfg).unwrap();
    std::fs::write(
        &cfg,
        text.replace(
            "machine_type = \"q35\"",
            "machine_type = \"no-such-machine\"",
        ),
    )
    .unwrap();
    let mut server = h.spawn_init();
    let (code, _, err) = server.wait(Duration::from_secs(30));
    assert_eq!(code, Some(1));
    assert!(
        err.starts_with("cannot boot the base VMs of the VM cache: QEMU /opt/qemu exited with status 1 before it was ready: qemu-system-x86_64: unsupported machine type"),
        "{err}"
    );
    assert!(!h.endpoint().exists());
}

/// Root and a mountable tmpfs, or why not.
fn template_skip_reason() -> Option<String> {
    if !nix::unistd::geteuid().is_root() {
        return Some("not root".into());
    }
    let d = tempfile::tempdir().unwrap();
    match nix::mount::mount(
        Some("tmpfs"),
        d.path(),
        Some("tmpfs"),
        nix::mount::MsFlags::empty(),
        Some("size=1M"),
    ) {
        Ok(()) => {
            let _ = nix::mount::umount2(d.path(), nix::mount::MntFlags::MNT_DETACH);
            None
        }
        Err(e) => Some(format!("cannot mount a tmpfs: {e}")),
    }
}

#[test]
fn template_init_status_destroy() {
    if skip_without_qemu("template_init_status_destroy") {
        return;
    }
    if let Some(why) = template_skip_reason() {
        eprintln!("skipping template_init_status_destroy: {why}");
        return;
    }
    let h = Host::new();
    h.config("enable_template = true");
    let o = h.run(&["factory", "status"]);
    assert_eq!(stdout(&o), "vm factory is off\n");

    let o = h.run(&["factory", "init"]);
    assert_eq!(
        stdout(&o),
        "vm factory initialized\n",
        "{}\n{}",
        stderr(&o),
        h.log()
    );
    assert_eq!(o.status.code(), Some(0));
    let tpl = h.path(host::TEMPLATE);
    let mounts = std::fs::read_to_string("/proc/self/mountinfo").unwrap();
    assert!(
        mounts.contains(&format!(" {} ", tpl.display())),
        "tmpfs not mounted"
    );
    assert_eq!(
        std::fs::metadata(tpl.join("memory")).unwrap().len(),
        256 << 20
    );
    assert!(std::fs::metadata(tpl.join("state")).unwrap().len() > 0);
    assert!(
        h.vm_dirs().is_empty(),
        "the template VM is gone: {:?}",
        h.vm_dirs()
    );

    let o = h.run(&["factory", "status"]);
    assert_eq!(stdout(&o), "vm factory is on\n");
    let o = h.run(&["factory", "init"]);
    assert_eq!(o.status.code(), Some(1));
    assert!(
        stderr(&o).contains("There is already a VM template in /run/vc/vm/template"),
        "{}",
        stderr(&o)
    );

    let o = h.run(&["factory", "destroy"]);
    assert_eq!(stdout(&o), "vm factory destroyed\n");
    assert!(!tpl.exists());
    let mounts = std::fs::read_to_string("/proc/self/mountinfo").unwrap();
    assert!(
        !mounts.contains(&format!(" {} ", tpl.display())),
        "tmpfs still mounted"
    );
    let o = h.run(&["factory", "status"]);
    assert_eq!(stdout(&o), "vm factory is off\n");
}

#[test]
fn template_failure_unmounts_and_removes() {
    if let Some(why) = template_skip_reason() {
        eprintln!("skipping template_failure_unmounts_and_removes: {why}");
        return;
    }
    let h = Host::bare();
    h.qemu_script("echo 'qemu: cannot boot' >&2\nexit 1");
    h.config("enable_template = true");
    let o = h.run(&["factory", "init"]);
    assert_eq!(o.status.code(), Some(1));
    assert!(stderr(&o).contains("qemu: cannot boot"), "{}", stderr(&o));
    let tpl = h.path(host::TEMPLATE);
    assert!(!tpl.exists());
    let mounts = std::fs::read_to_string("/proc/self/mountinfo").unwrap();
    assert!(!mounts.contains(&format!(" {} ", tpl.display())));
}
