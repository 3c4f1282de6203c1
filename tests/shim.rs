//! Binary tests for `metrics`, `iptables get|set` and `direct-volume stats|resize` against a
//! fake shim on both socket roots (Go `/run/vc/sbs`, runtime-rs `/run/kata`).

#[path = "support/fake_shim.rs"]
mod fake_shim;

use std::path::Path;
use std::process::Output;
use std::time::Duration;

use fake_shim::{Canned, FakeShim, Kind, Mode};

const KINDS: [Kind; 2] = [Kind::Go, Kind::RuntimeRs];

/// A short temp root: Unix socket paths must fit in 107 bytes.
fn host() -> tempfile::TempDir {
    tempfile::Builder::new()
        .prefix("ks")
        .tempdir_in("/tmp")
        .unwrap()
}

fn kata(root: &Path, args: &[&str]) -> Output {
    kata_env(root, args, &[])
}

fn kata_env(root: &Path, args: &[&str], env: &[(&str, &str)]) -> Output {
    let mut cmd = assert_cmd::Command::new(env!("CARGO_BIN_EXE_kata-runtime"));
    cmd.env("KATA_HOST_ROOT", root)
        .env_remove("KATA_SHIM_TIMEOUT_MS")
        .args(args)
        // A guard so a missing timeout fails the test instead of hanging it.
        .timeout(Duration::from_secs(60));
    for (k, v) in env {
        cmd.env(k, v);
    }
    cmd.output().unwrap()
}

fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

#[track_caller]
fn assert_ok(o: &Output) {
    assert!(
        o.status.success(),
        "exit {:?}\nstdout: {}\nstderr: {}",
        o.status.code(),
        stdout(o),
        stderr(o)
    );
}

#[track_caller]
fn assert_fails_with(o: &Output, needle: &str) {
    assert_eq!(o.status.code(), Some(1), "stderr: {}", stderr(o));
    assert!(
        stdout(o).is_empty(),
        "nothing may reach stdout on failure, got {:?}",
        stdout(o)
    );
    assert!(
        stderr(o).contains(needle),
        "stderr {:?} lacks {needle:?}",
        stderr(o)
    );
}

#[test]
fn metrics_prints_the_body_from_either_shim_root() {
    for kind in KINDS {
        let t = host();
        let shim = FakeShim::start(t.path(), kind, "sb-metrics", Mode::Normal);
        let o = kata(t.path(), &["metrics", "sb-metrics"]);
        assert_ok(&o);
        assert_eq!(stdout(&o), format!("{}\n", Canned::default().metrics));
        assert_eq!(stderr(&o), "");
        let reqs = shim.requests();
        assert_eq!(reqs.len(), 1);
        let r = &reqs[0];
        assert_eq!((r.method.as_str(), r.path.as_str()), ("GET", "/metrics"));
        assert_eq!(r.query, None);
        assert_eq!(r.header("host"), Some("shim"));
        assert_eq!(r.header("connection"), Some("close"));
        assert!(r.body.is_empty());
    }
}

#[test]
fn a_unique_prefix_selects_the_sandbox_and_an_ambiguous_one_lists_matches() {
    let t = host();
    let go = FakeShim::start(t.path(), Kind::Go, "abc111", Mode::Normal);
    let rs = FakeShim::start(t.path(), Kind::RuntimeRs, "abd222", Mode::Normal);
    assert_ok(&kata(t.path(), &["metrics", "abd"]));
    assert_eq!(rs.requests().len(), 1);
    assert_ok(&kata(t.path(), &["metrics", "abc1"]));
    assert_eq!(go.requests().len(), 1);
    let o = kata(t.path(), &["metrics", "ab"]);
    assert_fails_with(
        &o,
        "sandbox ID prefix \"ab\" is ambiguous, it matches abc111, abd222",
    );
    assert_eq!(go.requests().len() + rs.requests().len(), 2);
}

#[test]
fn sandbox_ids_are_validated_before_any_connection() {
    let t = host();
    assert_fails_with(&kata(t.path(), &["metrics"]), "ID cannot be blank");
    for bad in ["a", "a/b", "..x", "x y"] {
        assert_fails_with(
            &kata(t.path(), &["metrics", bad]),
            "invalid container/sandbox ID",
        );
    }
    let o = kata(t.path(), &["metrics", "nosuch"]);
    assert_fails_with(&o, "no running sandbox \"nosuch\"");
    assert!(stderr(&o).contains("/run/vc/sbs/nosuch/shim-monitor.sock"));
    assert!(stderr(&o).contains("/run/kata/nosuch/shim-monitor.sock"));
}

#[test]
fn a_dead_socket_names_the_socket_and_sandbox() {
    let t = host();
    let dir = t.path().join("run/vc/sbs/sb-dead");
    std::fs::create_dir_all(&dir).unwrap();
    // Bound and closed: the file exists but nobody listens.
    drop(std::os::unix::net::UnixListener::bind(dir.join("shim-monitor.sock")).unwrap());
    let o = kata(t.path(), &["metrics", "sb-dead"]);
    assert_fails_with(
        &o,
        "cannot connect to the shim-monitor socket /run/vc/sbs/sb-dead/shim-monitor.sock of sandbox sb-dead: connection refused",
    );
}

#[test]
fn non_200_answers_fail_with_the_shims_text_and_nothing_on_stdout() {
    // spec Q38: the Go tool printed error bodies on stdout and exited 0.
    for kind in KINDS {
        let t = host();
        let _shim = FakeShim::start(
            t.path(),
            kind,
            "sb-err",
            Mode::Status(500, "agent not ready"),
        );
        let o = kata(t.path(), &["metrics", "sb-err"]);
        assert_fails_with(&o, "answered GET /metrics with HTTP 500: agent not ready");
        let o = kata(t.path(), &["iptables", "get", "--sandbox-id", "sb-err"]);
        assert_fails_with(&o, "answered GET /iptables with HTTP 500: agent not ready");
    }
    let t = host();
    let _shim = FakeShim::start(
        t.path(),
        Kind::Go,
        "sb-404",
        Mode::Status(404, "404 page not found\n"),
    );
    assert_fails_with(
        &kata(t.path(), &["metrics", "sb-404"]),
        "with HTTP 404: 404 page not found",
    );
}

#[test]
fn a_hanging_shim_times_out_naming_the_step() {
    for kind in KINDS {
        let t = host();
        let shim = FakeShim::start(t.path(), kind, "sb-hang", Mode::Hang);
        let o = kata_env(
            t.path(),
            &["metrics", "sb-hang"],
            &[("KATA_SHIM_TIMEOUT_MS", "300")],
        );
        let sock = format!("/{}/sb-hang/shim-monitor.sock", kind.root());
        assert_fails_with(
            &o,
            &format!(
                "GET /metrics on the shim-monitor socket {sock} of sandbox sb-hang: timed out after 300ms while waiting for the response headers"
            ),
        );
        assert_eq!(shim.requests().len(), 1);
    }
}

#[test]
fn garbage_instead_of_http_is_reported() {
    let t = host();
    let _shim = FakeShim::start(t.path(), Kind::Go, "sb-junk", Mode::Garbage);
    let o = kata(t.path(), &["iptables", "get", "--sandbox-id", "sb-junk"]);
    assert_fails_with(&o, "did not answer with HTTP");
    assert!(stderr(&o).contains("/run/vc/sbs/sb-junk/shim-monitor.sock"));
}

#[test]
fn a_body_cut_short_fails_while_reading_the_body() {
    let t = host();
    let _shim = FakeShim::start(t.path(), Kind::Go, "sb-cut", Mode::CloseMidBody);
    let o = kata(t.path(), &["direct-volume", "stats", "--volume-path", "/v"]);
    // (No volume: the stats path fails earlier; metrics exercises the body.)
    assert_eq!(o.status.code(), Some(1));
    let o = kata(t.path(), &["metrics", "sb-cut"]);
    assert_eq!(o.status.code(), Some(1));
    assert!(
        stderr(&o).contains("failed while reading the response body"),
        "{}",
        stderr(&o)
    );
}

#[test]
fn a_runtime_rs_shim_dropping_the_connection_gets_an_explanation() {
    let t = host();
    let _shim = FakeShim::start(t.path(), Kind::RuntimeRs, "sb-drop", Mode::Drop);
    let o = kata(t.path(), &["metrics", "sb-drop"]);
    assert_fails_with(
        &o,
        "the runtime-rs shim closes the connection when a request fails",
    );
}

#[test]
fn a_50_mb_metrics_body_is_streamed_whole() {
    let t = host();
    let size: u64 = 50 * 1024 * 1024;
    let _shim = FakeShim::start(t.path(), Kind::Go, "sb-big", Mode::BigMetrics(size));
    let o = kata(t.path(), &["metrics", "sb-big"]);
    assert_ok(&o);
    assert_eq!(o.stdout.len() as u64, size + 1);
    assert!(
        o.stdout
            .starts_with(b"kata_guest_meminfo{item=\"active\"} 1.2345678e+09\n")
    );
    assert_eq!(o.stdout.last(), Some(&b'\n'));
}

#[test]
fn iptables_get_reads_v4_and_v6_from_either_root() {
    for kind in KINDS {
        let t = host();
        let shim = FakeShim::start(t.path(), kind, "sb-ipt", Mode::Normal);
        let o = kata(t.path(), &["iptables", "get", "--sandbox-id", "sb-ipt"]);
        assert_ok(&o);
        assert_eq!(stdout(&o), format!("{}\n", Canned::default().iptables));
        let o = kata(
            t.path(),
            &["iptables", "get", "--sandbox-id=sb-ipt", "--v6"],
        );
        assert_ok(&o);
        assert_eq!(stdout(&o), format!("{}\n", Canned::default().ip6tables));
        let paths: Vec<_> = shim
            .requests()
            .into_iter()
            .map(|r| (r.method, r.path))
            .collect();
        assert_eq!(
            paths,
            [
                ("GET".to_string(), "/iptables".to_string()),
                ("GET".to_string(), "/ip6tables".to_string())
            ]
        );
    }
}

#[test]
fn iptables_set_uploads_the_file_bytes() {
    for kind in KINDS {
        let t = host();
        let shim = FakeShim::start(t.path(), kind, "sb-set", Mode::Normal);
        let rules = t.path().join("rules");
        let bytes = b"*filter\n:INPUT DROP [0:0]\n-A INPUT -i lo -j ACCEPT\nCOMMIT\n\xff\x00";
        std::fs::write(&rules, bytes).unwrap();
        let rules_s = rules.to_str().unwrap();
        let o = kata(
            t.path(),
            &["iptables", "set", "--sandbox-id", "sb-set", rules_s],
        );
        assert_ok(&o);
        assert_eq!(stdout(&o), "");
        let o = kata(
            t.path(),
            &["iptables", "set", rules_s, "--sandbox-id", "sb-set", "--v6"],
        );
        assert_ok(&o);
        let reqs = shim.requests();
        assert_eq!(reqs.len(), 2);
        for (r, path) in reqs.iter().zip(["/iptables", "/ip6tables"]) {
            assert_eq!((r.method.as_str(), r.path.as_str()), ("PUT", path));
            assert_eq!(r.header("content-type"), Some("application/octet-stream"));
            assert_eq!(
                r.header("content-length"),
                Some(bytes.len().to_string().as_str())
            );
            assert_eq!(r.body, bytes);
        }
    }
}

#[test]
fn iptables_set_errors() {
    let t = host();
    let shim = FakeShim::start(
        t.path(),
        Kind::Go,
        "sb-se",
        Mode::Status(500, "iptables-restore: line 2 failed"),
    );
    assert_fails_with(
        &kata(t.path(), &["iptables", "set", "--sandbox-id", "sb-se"]),
        "iptables file not provided",
    );
    assert_fails_with(
        &kata(
            t.path(),
            &["iptables", "set", "--sandbox-id", "sb-se", "/no/such/rules"],
        ),
        "iptables file does not exist: /no/such/rules",
    );
    let dir = t.path().to_str().unwrap();
    assert_fails_with(
        &kata(t.path(), &["iptables", "set", "--sandbox-id", "sb-se", dir]),
        &format!("read {dir}: is a directory"),
    );
    assert_fails_with(
        &kata(
            t.path(),
            &["iptables", "set", "--sandbox-id", "bad/id", dir],
        ),
        "invalid container/sandbox ID",
    );
    assert!(shim.requests().is_empty());
    let rules = t.path().join("r");
    std::fs::write(&rules, "x").unwrap();
    let r = rules.to_str().unwrap();
    assert_fails_with(
        &kata(t.path(), &["iptables", "set", "--sandbox-id", "sb-se", r]),
        &format!(
            "Error observed when making iptables-set request({r}): the shim of sandbox sb-se (/run/vc/sbs/sb-se/shim-monitor.sock) answered PUT /iptables with HTTP 500: iptables-restore: line 2 failed"
        ),
    );
}

#[test]
fn iptables_without_sandbox_id_shows_help_and_the_required_flag() {
    let t = host();
    for sub in ["get", "set"] {
        let o = kata(t.path(), &["iptables", sub]);
        assert_eq!(o.status.code(), Some(1));
        assert!(stdout(&o).contains("--sandbox-id"), "{}", stdout(&o));
        assert!(
            stderr(&o).contains("Required flag \"sandbox-id\" not set"),
            "{}",
            stderr(&o)
        );
    }
}

/// Writes a volume record the way `add` and the Go shim would.
fn volume(root: &Path, volume_path: &str, mount_info: &str, sandbox: &str) {
    let dir = root
        .join("run/kata-containers/shared/direct-volumes")
        .join(kata_runtime::volume::encode_volume_path(volume_path));
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join("mountInfo.json"), mount_info).unwrap();
    if !sandbox.is_empty() {
        std::fs::write(dir.join(sandbox), "").unwrap();
    }
}

#[test]
fn stats_asks_the_shim_of_the_recorded_sandbox_and_prints_only_the_body() {
    let t = host();
    let shim = FakeShim::start(t.path(), Kind::Go, "sb-vol", Mode::Normal);
    volume(
        t.path(),
        "/kubelet/pods/x/vol",
        r#"{"volume-type":"block","device":"/dev/sdb","fstype":"ext4"}"#,
        "sb-vol",
    );
    let dir = t.path().join(format!(
        "run/kata-containers/shared/direct-volumes/{}",
        kata_runtime::volume::encode_volume_path("/kubelet/pods/x/vol")
    ));
    // Stray names that are not sandbox IDs are skipped (spec Q42); Go took the first one.
    std::fs::write(dir.join(".mountInfo.json.1.tmp"), "").unwrap();
    std::fs::write(dir.join("-stray"), "").unwrap();
    let o = kata(
        t.path(),
        &[
            "direct-volume",
            "stats",
            "--volume-path",
            "/kubelet/pods/x/vol",
        ],
    );
    assert_ok(&o);
    assert_eq!(stdout(&o), format!("{}\n", Canned::default().stats));
    assert_eq!(
        stderr(&o),
        "",
        "a CSI driver parses stdout and stderr together"
    );
    let reqs = shim.requests();
    assert_eq!(reqs.len(), 1);
    assert_eq!(reqs[0].method, "GET");
    assert_eq!(reqs[0].path, "/direct-volume/stats");
    assert_eq!(reqs[0].query.as_deref(), Some("path=%2Fdev%2Fsdb"));
}

#[test]
fn stats_query_escapes_the_device() {
    // spec Q39: Go sent `path=%2Fdev%2Fsd+a%20b&c`, which the shim decoded to `/dev/sd a b`.
    let t = host();
    let shim = FakeShim::start(t.path(), Kind::Go, "sb-esc", Mode::Normal);
    volume(t.path(), "/v", r#"{"device":"/dev/sd+a b&c#1%"}"#, "sb-esc");
    assert_ok(&kata(
        t.path(),
        &["direct-volume", "stats", "--volume-path", "/v"],
    ));
    let q = shim.requests()[0].query.clone().unwrap();
    assert_eq!(q, "path=%2Fdev%2Fsd%2Ba+b%26c%231%2525");
}

#[test]
fn stats_on_runtime_rs_uses_post() {
    let t = host();
    let shim = FakeShim::start(t.path(), Kind::RuntimeRs, "sb-rs", Mode::Normal);
    volume(t.path(), "/v", r#"{"device":"/dev/vdb"}"#, "sb-rs");
    let o = kata(t.path(), &["direct-volume", "stats", "--volume-path", "/v"]);
    assert_ok(&o);
    assert_eq!(stdout(&o), "Usage: [] Volume Condition: None\n");
    assert_eq!(shim.requests()[0].method, "POST");
}

#[test]
fn stats_errors() {
    let t = host();
    let _shim = FakeShim::start(
        t.path(),
        Kind::Go,
        "sb-st",
        Mode::Status(500, "mount /dev/sdz not found in sandbox"),
    );
    assert_fails_with(
        &kata(
            t.path(),
            &["direct-volume", "stats", "--volume-path", "/none"],
        ),
        "volume \"/none\" has not been added",
    );
    volume(t.path(), "/nosb", r#"{"device":"/dev/sdz"}"#, "");
    assert_fails_with(
        &kata(
            t.path(),
            &["direct-volume", "stats", "--volume-path", "/nosb"],
        ),
        "no sandbox found for /nosb",
    );
    volume(t.path(), "/nodev", r#"{"fstype":"ext4"}"#, "sb-st");
    assert_fails_with(
        &kata(
            t.path(),
            &["direct-volume", "stats", "--volume-path", "/nodev"],
        ),
        "has no \"device\"",
    );
    volume(t.path(), "/gone", r#"{"device":"/dev/sdz"}"#, "sb-gone");
    assert_fails_with(
        &kata(
            t.path(),
            &["direct-volume", "stats", "--volume-path", "/gone"],
        ),
        "no running sandbox \"sb-gone\"",
    );
    volume(t.path(), "/err", r#"{"device":"/dev/sdz"}"#, "sb-st");
    assert_fails_with(
        &kata(
            t.path(),
            &["direct-volume", "stats", "--volume-path", "/err"],
        ),
        "HTTP 500: mount /dev/sdz not found in sandbox",
    );
    assert_fails_with(
        &kata(t.path(), &["direct-volume", "stats"]),
        "the volume path is empty",
    );
}

#[test]
fn resize_posts_each_shims_body() {
    for (kind, body) in [
        (Kind::Go, r#"{"VolumePath":"/dev/a\u0026b","Size":16}"#),
        (
            Kind::RuntimeRs,
            r#"{"volume_guest_path":"/dev/a\u0026b","size":16}"#,
        ),
    ] {
        let t = host();
        let shim = FakeShim::start(t.path(), kind, "sb-rsz", Mode::Normal);
        volume(t.path(), "/v", r#"{"device":"/dev/a&b"}"#, "sb-rsz");
        // Go spellings of numbers (spec §1.2).
        let o = kata(
            t.path(),
            &[
                "direct-volume",
                "resize",
                "--volume-path",
                "/v",
                "--size",
                "0x1_0",
            ],
        );
        assert_ok(&o);
        assert_eq!(stdout(&o), "");
        let r = &shim.requests()[0];
        assert_eq!(
            (r.method.as_str(), r.path.as_str()),
            ("POST", "/direct-volume/resize")
        );
        assert_eq!(r.header("content-type"), Some("application/json"));
        assert_eq!(String::from_utf8_lossy(&r.body), body);
    }
}

#[test]
fn resize_failure_carries_the_shims_text() {
    let t = host();
    let _shim = FakeShim::start(
        t.path(),
        Kind::Go,
        "sb-rf",
        Mode::Status(
            500,
            "rpc error: code = NotFound desc = /grpc.AgentService/ResizeVolume is not supported",
        ),
    );
    volume(t.path(), "/v", r#"{"device":"/dev/sdb"}"#, "sb-rf");
    assert_fails_with(
        &kata(
            t.path(),
            &[
                "direct-volume",
                "resize",
                "--volume-path",
                "/v",
                "--size",
                "8",
            ],
        ),
        "answered POST /direct-volume/resize with HTTP 500: rpc error: code = NotFound",
    );
}

#[test]
fn a_reader_closing_the_pipe_early_is_not_an_error() {
    use std::io::Read;
    let t = host();
    let _shim = FakeShim::start(
        t.path(),
        Kind::Go,
        "sb-pipe",
        Mode::BigMetrics(20 * 1024 * 1024),
    );
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_kata-runtime"))
        .env("KATA_HOST_ROOT", t.path())
        .args(["metrics", "sb-pipe"])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut first = [0u8; 100];
    child.stdout.take().unwrap().read_exact(&mut first).unwrap();
    // The read end is dropped here, like `kata-runtime metrics | head`.
    let o = child.wait_with_output().unwrap();
    assert_eq!(
        o.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );
    assert!(
        o.stderr.is_empty(),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );
}

#[test]
fn a_socket_path_too_long_for_sockaddr_un_is_explained() {
    let t = host();
    let root = t.path().join("r".repeat(60));
    let dir = root.join("run/vc/sbs/sb-long");
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join("shim-monitor.sock"), "").unwrap();
    assert_fails_with(
        &kata(&root, &["metrics", "sb-long"]),
        "longer than a Unix socket address can hold (107); use a shorter KATA_HOST_ROOT",
    );
}
