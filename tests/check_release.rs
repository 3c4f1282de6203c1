//! The release part of `check` (spec §3.3) against a loopback server serving GitHub-like
//! release JSON, reached through `KATA_RELEASE_URL` (spec Q21). This runs as root too: the
//! root skip applies only when `KATA_RELEASE_URL` is unset.

#[path = "support/check_hosts.rs"]
mod hosts;
#[path = "support/check_release_server.rs"]
mod server;

use std::collections::HashMap;
use std::process::Output;
use std::time::{Duration, Instant};

use hosts::*;
use server::*;

const PATH: &str = "/repos/kata-containers/kata-containers/releases";

fn serve(reply: Reply) -> Server {
    Server::start(HashMap::from([(PATH.to_string(), reply)]))
}

fn run(srv: &Server, args: &[&str]) -> Output {
    let h = Host::new("intel-vmx");
    h.cmd()
        .env("KATA_RELEASE_URL", srv.url(PATH))
        .arg("check")
        .args(args)
        .output()
        .unwrap()
}

fn url_of(tag: &str) -> String {
    format!(
        "https://github.com/kata-containers/kata-containers/releases/download/{tag}/kata-static-{tag}-x86_64.tar.xz"
    )
}

#[test]
fn newer_major_minor_and_patch_releases() {
    for (tags, kind, newest) in [
        (vec!["4.0.0", "3.1.0", "3.0.0"], "major", "4.0.0"),
        (vec!["3.1.0", "3.0.2", "3.0.0", "2.5.2"], "minor", "3.1.0"),
        (vec!["3.0.1", "3.0.0", "2.5.2"], "patch", "3.0.1"),
    ] {
        let pairs: Vec<(&str, &str)> = tags.iter().map(|t| (*t, "2023-02-28T10:00:00Z")).collect();
        let srv = serve(Reply::ok(page(&pairs)));
        let out = run(&srv, &["--check-version-only"]);
        assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
        assert_eq!(
            text(&out.stdout),
            format!(
                "Newer {kind} release available: {newest} (url: {}, date: 2023-02-28T10:00:00Z)\n",
                url_of(newest)
            )
        );
        let reqs = srv.requests();
        assert_eq!(reqs.len(), 1);
        assert!(
            reqs[0].user_agent.starts_with("kata-runtime/3.0.0"),
            "{reqs:?}"
        );
        assert_eq!(reqs[0].accept, "application/vnd.github+json");
    }
}

#[test]
fn no_newer_release() {
    let srv = serve(Reply::ok(page(&[
        ("3.0.0", "2022-10-09T12:00:00Z"),
        ("2.5.2", "2022-09-01T12:00:00Z"),
    ])));
    let out = run(&srv, &["--check-version-only"]);
    assert_eq!(out.status.code(), Some(0));
    assert_eq!(text(&out.stdout), "No newer release available\n");
}

#[test]
fn pre_releases_only_with_include_all_releases() {
    let srv = serve(Reply::ok(page(&[
        ("3.1.0-rc0", "2023-01-20T10:00:00Z"),
        ("3.1.0-alpha1", "2023-01-10T10:00:00Z"),
        ("3.0.0", "2022-10-09T12:00:00Z"),
    ])));
    let out = run(&srv, &["--check-version-only"]);
    assert_eq!(text(&out.stdout), "No newer release available\n");
    let out = run(&srv, &["--check-version-only", "--include-all-releases"]);
    assert_eq!(out.status.code(), Some(0));
    assert_eq!(
        text(&out.stdout),
        format!(
            "Newer minor pre-release release available: 3.1.0-rc0 (url: {}, date: 2023-01-20T10:00:00Z)\n",
            url_of("3.1.0-rc0")
        )
    );
}

#[test]
fn only_list_releases_lists_the_newer_ones_ascending() {
    // spec Q22: older releases are not listed.
    let srv = serve(Reply::ok(page(&[
        ("3.2.0-rc0", "2023-03-01T00:00:00Z"),
        ("3.1.0", "2023-02-28T10:00:00Z"),
        ("3.0.1", "2022-11-01T00:00:00Z"),
        ("3.0.0", "2022-10-09T12:00:00Z"),
        ("2.5.2", "2022-09-01T12:00:00Z"),
    ])));
    let out = run(&srv, &["--only-list-releases"]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    assert_eq!(
        text(&out.stdout),
        format!(
            "3.0.1;2022-11-01T00:00:00Z;{}\n3.1.0;2023-02-28T10:00:00Z;{}\n",
            url_of("3.0.1"),
            url_of("3.1.0")
        )
    );
    let out = run(&srv, &["--only-list-releases", "--include-all-releases"]);
    assert_eq!(text(&out.stdout).lines().count(), 3);
    assert!(
        text(&out.stdout)
            .lines()
            .last()
            .unwrap()
            .starts_with("3.2.0-rc0;")
    );
}

#[test]
fn invalid_releases_are_skipped() {
    let mut items: Vec<serde_json::Value> = vec![release("3.0.0", "2022-10-09T12:00:00Z")];
    let mut no_assets = release("3.9.0", "2023-05-01T00:00:00Z");
    no_assets["assets"] = serde_json::json!([]);
    let mut bad_tag = release("3.8.0", "2023-05-01T00:00:00Z");
    bad_tag["tag_name"] = "v3.8".into();
    let mut foreign = release("3.7.0", "2023-05-01T00:00:00Z");
    foreign["assets"][0]["browser_download_url"] =
        "https://downloads.example.com/kata/3.7.0.tar.xz".into();
    items.extend([no_assets, bad_tag, foreign]);
    let srv = serve(Reply::ok(serde_json::Value::Array(items).to_string()));
    let out = run(&srv, &["--check-version-only"]);
    assert_eq!(out.status.code(), Some(0));
    assert_eq!(text(&out.stdout), "No newer release available\n");
}

#[test]
fn rate_limit_means_no_releases() {
    let srv = serve(Reply {
        status: 403,
        ..Reply::ok(RATE_LIMIT_BODY)
    });
    let out = run(&srv, &["--check-version-only"]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    assert_eq!(text(&out.stdout), "No releases available\n");
    assert!(has_line(
        &out.stderr,
        &[
            "level=warning",
            "msg=\"API rate limit exceeded. Try again later."
        ]
    ));
    let out = run(&srv, &["--only-list-releases"]);
    assert_eq!(out.status.code(), Some(0));
    assert!(out.stdout.is_empty());
}

#[test]
fn malformed_json_fails_the_check() {
    for body in [
        "<html>503 Service Unavailable</html>",
        "{\"message\":\"x\"}",
        "[1,",
    ] {
        let srv = serve(Reply::ok(body));
        let out = run(&srv, &["--check-version-only"]);
        assert_eq!(out.status.code(), Some(1));
        let last = text(&out.stderr).lines().last().unwrap_or("").to_string();
        assert!(
            last.starts_with("failed to unpack release details: "),
            "{}",
            text(&out.stderr)
        );
        assert!(out.stdout.is_empty());
    }
}

#[test]
fn http_errors_name_the_status() {
    let srv = serve(Reply {
        status: 500,
        ..Reply::ok("{\"message\":\"Server Error\"}")
    });
    let out = run(&srv, &["--check-version-only"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(text(&out.stderr).contains("the server answered 500 Internal Server Error"));
}

#[test]
fn a_server_that_never_answers_times_out() {
    let srv = serve(Reply::hang());
    let h = Host::new("intel-vmx");
    let started = Instant::now();
    let out = h
        .cmd()
        .env("KATA_RELEASE_URL", srv.url(PATH))
        .env("KATA_RELEASE_TIMEOUT", "1")
        .args(["check", "--check-version-only"])
        .timeout(Duration::from_secs(30))
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let err = text(&out.stderr);
    assert!(err.contains("no answer within 1s"), "{err}");
    assert!(err.contains("--no-network-checks"), "{err}");
    assert!(started.elapsed() < Duration::from_secs(20));
}

#[test]
fn a_closed_port_is_a_clear_error() {
    let port = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    let h = Host::new("intel-vmx");
    let out = h
        .cmd()
        .env(
            "KATA_RELEASE_URL",
            format!("http://127.0.0.1:{port}/releases"),
        )
        .args(["check", "--check-version-only"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let last = text(&out.stderr).lines().last().unwrap().to_string();
    assert!(
        last.starts_with(&format!(
            "cannot get the release list from http://127.0.0.1:{port}/releases: "
        )),
        "{last}"
    );
}

#[test]
fn link_pages_are_followed() {
    let next = "/repositories/1/releases?page=2".to_string();
    let srv = Server::start(HashMap::from([
        (
            PATH.to_string(),
            Reply {
                // `{BASE}` is the server's own http://address.
                link: Some(format!(
                    "<{{BASE}}{next}>; rel=\"next\", <{{BASE}}{next}>; rel=\"last\""
                )),
                ..Reply::ok(page(&[("3.0.0", "2022-10-09T12:00:00Z")]))
            },
        ),
        (
            next.clone(),
            Reply::ok(page(&[("3.0.3", "2023-01-01T00:00:00Z")])),
        ),
    ]));
    let out = run(&srv, &["--check-version-only"]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    assert!(text(&out.stdout).starts_with("Newer patch release available: 3.0.3 "));
    let paths: Vec<String> = srv.requests().into_iter().map(|r| r.path).collect();
    assert_eq!(paths, [PATH.to_string(), next]);
}

#[test]
fn check_and_release_json_document() {
    let srv = serve(Reply::ok(page(&[
        ("3.1.0", "2023-02-28T10:00:00Z"),
        ("3.0.0", "2022-10-09T12:00:00Z"),
    ])));
    let h = Host::new("intel-vmx");
    let out = h
        .cmd()
        .env("KATA_RELEASE_URL", srv.url(PATH))
        .args(["check", "--json"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let doc: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(doc["capable"], true);
    let r = &doc["release"];
    assert_eq!(r["mode"], "check");
    assert_eq!(r["url"], srv.url(PATH));
    assert_eq!(r["current"], "3.0.0");
    assert_eq!(r["kind"], "minor");
    assert_eq!(r["newer"]["version"], "3.1.0");
    assert_eq!(r["newer"]["url"], url_of("3.1.0"));
    assert_eq!(r["releases"].as_array().unwrap().len(), 2);
    assert!(
        r["message"]
            .as_str()
            .unwrap()
            .starts_with("Newer minor release available: 3.1.0")
    );

    // Text mode: the release line, then the verdict.
    let out = h
        .cmd()
        .env("KATA_RELEASE_URL", srv.url(PATH))
        .args(["check"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0));
    let stdout = text(&out.stdout);
    let lines: Vec<&str> = stdout.lines().collect();
    assert!(lines[0].starts_with("Newer minor release available: 3.1.0"));
    assert_eq!(lines[1], CAPABLE);
}

#[test]
fn release_url_must_be_http_or_https() {
    let h = Host::new("intel-vmx");
    let out = h
        .cmd()
        .env("KATA_RELEASE_URL", "ftp://mirror.example/releases")
        .args(["check", "--check-version-only"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(
        text(&out.stderr)
            .lines()
            .last()
            .unwrap()
            .starts_with("Release URL \"ftp://mirror.example/releases\" is not valid")
    );
}

#[test]
fn root_skips_the_network_without_an_explicit_url() {
    if !is_root() {
        // As non-root this run would go to the real GitHub API: never in tests.
        eprintln!("skipped: needs root (the root skip is what is tested)");
        return;
    }
    let h = Host::new("intel-vmx");
    let out = h
        .cmd()
        .args(["check", "--check-version-only"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0));
    assert!(out.stdout.is_empty());
    assert!(has_line(
        &out.stderr,
        &[
            "level=warning",
            "msg=\"Not running network checks as super user\""
        ]
    ));
}
