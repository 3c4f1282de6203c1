//! The real binary's command tree: version, every help form with no configuration present,
//! default config paths, unknown commands, global option errors and the `--log` file.

use assert_cmd::Command;

fn kata(root: &std::path::Path) -> Command {
    let mut c = Command::cargo_bin("kata-runtime").unwrap();
    c.env("KATA_HOST_ROOT", root)
        .env_remove("KATA_CHECK_NO_NETWORK");
    c
}

fn stdout_of(root: &std::path::Path, args: &[&str]) -> String {
    let out = kata(root).args(args).output().unwrap();
    assert!(
        out.status.success(),
        "{args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        out.stderr.is_empty(),
        "{args:?} wrote to stderr: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

#[test]
fn version_in_all_three_spellings() {
    let root = tempfile::tempdir().unwrap();
    for args in [&["--version"][..], &["-v"], &["version"], &["-version"]] {
        let out = stdout_of(root.path(), args);
        let lines: Vec<&str> = out.lines().collect();
        assert_eq!(lines.len(), 3, "{args:?}: {out}");
        assert_eq!(lines[0], "kata-runtime  : 3.0.0");
        assert!(lines[1].starts_with("   commit   : ") && lines[1].len() > "   commit   : ".len());
        assert_eq!(lines[2], "   OCI specs: 1.0.2-dev");
    }
}

#[test]
fn every_help_form_works_without_a_configuration() {
    // spec Q3: none of these may need a configuration file (the root is empty).
    let root = tempfile::tempdir().unwrap();
    let cases: &[(&[&str], &str)] = &[
        (&[], "manage vm factory"),
        (&["--help"], "directly assign a volume"),
        (&["-h"], "get or set iptables"),
        (&["help"], "Enter into guest by debug console"),
        (&["h"], "display settings. Default to TOML"),
        (&["help", "check"], "--no-network-checks"),
        (&["help", "kata-check"], "KATA_CHECK_NO_NETWORK"),
        (&["check", "--help"], "--only-list-releases"),
        (&["check", "--verbose", "--help"], "--include-all-releases"),
        (&["env", "--help"], "Format output as JSON"),
        (&["exec", "--help"], "--kata-debug-port"),
        (&["metrics", "--help"], "metrics <sandbox id>"),
        (&["factory", "--help"], "query the status of VM factory"),
        (&["factory"], "initialize a VM factory"),
        (
            &["factory", "init", "--help"],
            "initialize a VM factory based on kata-runtime configuration",
        ),
        (
            &["help", "factory", "status"],
            "query the status of VM factory",
        ),
        (
            &["direct-volume", "--help"],
            "resize a direct assigned block volume",
        ),
        (&["direct-volume", "add", "--help"], "--mount-info"),
        (&["direct-volume", "resize", "-h"], "--size"),
        (
            &["iptables"],
            "set iptables in a specifc Kata Containers guest based on file",
        ),
        (&["iptables", "get", "--help"], "--sandbox-id"),
        (
            &["iptables", "set", "--help"],
            "indicate we're requesting ipv6 iptables",
        ),
        (&["version", "--help"], "display version details"),
        (&["factory", "help"], "query the status of VM factory"),
        (&["factory", "h"], "destroy the VM factory"),
        (
            &["factory", "help", "init"],
            "initialize a VM factory based on kata-runtime configuration",
        ),
        (&["iptables", "help", "get"], "--sandbox-id"),
        (
            &["direct-volume", "h"],
            "get the filesystem stat of a direct assigned volume",
        ),
        (&["direct-volume", "help", "resize"], "--size"),
    ];
    for (args, needle) in cases {
        let out = stdout_of(root.path(), args);
        assert!(out.contains(needle), "{args:?} lacks {needle:?}:\n{out}");
    }
    let main = stdout_of(root.path(), &["--help"]);
    assert!(
        main.contains("VERSION:\n   kata-runtime  : 3.0.0\n   commit   : "),
        "{main}"
    );
    assert!(
        main.contains("The canonical URL for this project is: https://github.com/kata-containers")
    );
}

#[test]
fn show_default_config_paths_in_both_spellings() {
    let root = tempfile::tempdir().unwrap();
    let want = "/etc/kata-containers/configuration.toml\n/usr/share/defaults/kata-containers/configuration.toml\n";
    assert_eq!(
        stdout_of(root.path(), &["--show-default-config-paths"]),
        want
    );
    assert_eq!(
        stdout_of(
            root.path(),
            &["--kata-show-default-config-paths", "env", "--json"]
        ),
        want
    );
}

#[test]
fn unknown_commands_fail_with_a_clear_error() {
    let root = tempfile::tempdir().unwrap();
    for args in [
        &["nosuch"][..],
        &["factory", "nosuch"],
        &["direct-volume", "nosuch"],
        &["iptables", "nosuch"],
    ] {
        let out = kata(root.path()).args(args).output().unwrap();
        assert!(!out.status.success(), "{args:?}");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(
            err.contains("unrecognized subcommand 'nosuch'"),
            "{args:?}: {err}"
        );
        assert!(out.stdout.is_empty());
    }
    for args in [&["help", "nosuch"][..], &["factory", "help", "nosuch"]] {
        let out = kata(root.path()).args(args).output().unwrap();
        assert_eq!(out.status.code(), Some(1), "{args:?}");
        assert!(String::from_utf8_lossy(&out.stderr).contains("Invalid command \"nosuch\""));
    }
    // Usage errors exit 1, as the Go tool's (spec §1.9).
    for args in [
        &["nosuch"][..],
        &["check", "--bogus"],
        &["--bogus", "env"],
        &["env", "--json=yes"],
    ] {
        let out = kata(root.path()).args(args).output().unwrap();
        assert_eq!(out.status.code(), Some(1), "{args:?}");
    }
}

#[test]
fn bad_global_options_are_reported() {
    let root = tempfile::tempdir().unwrap();
    let out = kata(root.path())
        .args(["--log-format", "xml", "metrics", "x"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("unknown log-format \"xml\""));

    let out = kata(root.path())
        .args(["--rootless", "maybe", "metrics", "x"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("--rootless"));

    let out = kata(root.path())
        .args(["--log", "/nonexistent-dir/x.log", "metrics", "x"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("open /nonexistent-dir/x.log: no such file or directory"),
        "{err}"
    );

    // Global options after the command are not global (Go rules).
    let out = kata(root.path())
        .args(["metrics", "--log-format", "json", "x"])
        .output()
        .unwrap();
    assert!(!out.status.success());
}

#[test]
fn log_file_receives_json_records_with_the_go_fields() {
    let root = tempfile::tempdir().unwrap();
    let log = root.path().join("kata.log");
    let _ = kata(root.path())
        .args([
            "--log",
            log.to_str().unwrap(),
            "--log-format",
            "json",
            "metrics",
            "no-such-sandbox",
        ])
        .output()
        .unwrap();
    let text = std::fs::read_to_string(&log).unwrap();
    let first: serde_json::Value = serde_json::from_str(text.lines().next().unwrap()).unwrap();
    for key in [
        "time",
        "level",
        "msg",
        "name",
        "source",
        "arch",
        "pid",
        "command",
        "version",
        "commit",
        "arguments",
    ] {
        assert!(first.get(key).is_some(), "missing {key} in {first}");
    }
    assert_eq!(first["name"], "kata-runtime");
    assert_eq!(first["source"], "runtime");
    assert_eq!(first["command"], "metrics");
    assert_eq!(first["level"], "info");
    assert!(
        first["pid"].is_u64(),
        "pid is a number, as logrus writes it: {first}"
    );
    assert_eq!(first["arguments"], "\"metrics no-such-sandbox\"");
    use std::os::unix::fs::PermissionsExt;
    assert_eq!(
        std::fs::metadata(&log).unwrap().permissions().mode() & 0o777,
        0o640
    );

    // Text format, appended to the same file.
    let _ = kata(root.path())
        .args(["--log", log.to_str().unwrap(), "metrics", "x"])
        .output()
        .unwrap();
    let text = std::fs::read_to_string(&log).unwrap();
    let last_text = text
        .lines()
        .find(|l| l.starts_with("time=\""))
        .expect("a text record");
    assert!(
        last_text.contains(" level=info ") && last_text.contains(" name=kata-runtime"),
        "{last_text}"
    );
}

#[test]
fn a_closed_stdout_exits_quietly() {
    let root = tempfile::tempdir().unwrap();
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_kata-runtime"))
        .env("KATA_HOST_ROOT", root.path())
        .arg("--help")
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    drop(child.stdout.take());
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.code() == Some(0) || out.status.code().is_none(),
        "{:?}",
        out.status
    );
    assert!(!String::from_utf8_lossy(&out.stderr).contains("panicked"));
}

#[test]
fn bash_completion_lists_commands_subcommands_and_flags() {
    let root = tempfile::tempdir().unwrap();
    assert_eq!(
        stdout_of(root.path(), &["--generate-bash-completion"]),
        "version\ncheck\nkata-check\nenv\nkata-env\nexec\nmetrics\nfactory\ndirect-volume\niptables\nhelp\nh\n"
    );
    assert_eq!(
        stdout_of(root.path(), &["factory", "--generate-bash-completion"]),
        "init\ndestroy\nstatus\nhelp\nh\n"
    );
    let flags = stdout_of(root.path(), &["check", "--v", "--generate-bash-completion"]);
    assert_eq!(flags, "--version\n--verbose\n");
    assert_eq!(
        stdout_of(root.path(), &["env", "--generate-bash-completion"]),
        ""
    );
}

#[test]
fn non_utf8_arguments_do_not_panic() {
    use std::os::unix::ffi::OsStrExt;
    let root = tempfile::tempdir().unwrap();
    let bad = std::ffi::OsStr::from_bytes(b"/tmp/\xff");
    let out = kata(root.path())
        .arg("--config")
        .arg(bad)
        .arg("env")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!err.contains("panicked"), "{err}");
    let out = kata(root.path())
        .args(["iptables", "set"])
        .arg(bad)
        .args(["--sandbox-id", "ab"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(!String::from_utf8_lossy(&out.stderr).contains("panicked"));
}

#[test]
fn syslog_gets_a_copy_when_dev_log_listens_and_nothing_fails_without_it() {
    let root = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(root.path().join("dev")).unwrap();
    let listener = std::os::unix::net::UnixDatagram::bind(root.path().join("dev/log")).unwrap();
    listener
        .set_read_timeout(Some(std::time::Duration::from_secs(5)))
        .unwrap();
    let out = kata(root.path())
        .args(["metrics", "no-such-sandbox"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let mut buf = [0u8; 4096];
    let n = listener.recv(&mut buf).unwrap();
    let msg = String::from_utf8_lossy(&buf[..n]);
    // Facility user (Q52), severity info; the logrus text record follows.
    assert!(msg.starts_with("<14>kata["), "{msg}");
    assert!(
        msg.contains("level=info") && msg.contains("name=kata-runtime"),
        "{msg}"
    );
    // The error record arrives on the same socket.
    let n = listener.recv(&mut buf).unwrap();
    assert!(String::from_utf8_lossy(&buf[..n]).starts_with("<11>kata["));

    // No /dev/log at all: the same command fails only for its own reason (Q2).
    let empty = tempfile::tempdir().unwrap();
    let out = kata(empty.path())
        .args(["metrics", "no-such-sandbox"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("no running sandbox"));
}
