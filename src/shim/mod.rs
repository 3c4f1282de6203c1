//! Client for the shim-management ("shim-monitor") API that every Kata shim serves on a Unix
//! socket: sandbox ID rules, finding a sandbox's socket under the two shim roots, and the
//! HTTP/1.1 exchange itself (spec §6.1, real-peers §1). Used by `exec`, `metrics`,
//! `iptables` and `direct-volume stats|resize`.

mod client;

use std::path::{Path, PathBuf};
use std::time::Duration;

pub use client::{get, get_to_writer, post, put};

use crate::paths::{self, HostRoot};

/// Environment variable that overrides the per-request timeout, in milliseconds. The Go tool
/// used a fixed 3 s; a slow node (or a test) may need another value.
pub const TIMEOUT_ENV: &str = "KATA_SHIM_TIMEOUT_MS";

/// The Go tool's dial and whole-request timeout (`defaultTimeout` in kata-exec.go).
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(3);

/// URL paths of the shim-management API, in one place.
pub mod urls {
    pub const AGENT_URL: &str = "/agent-url";
    pub const METRICS: &str = "/metrics";
    pub const IPTABLES: &str = "/iptables";
    pub const IP6TABLES: &str = "/ip6tables";
    pub const DIRECT_VOLUME_STATS: &str = "/direct-volume/stats";
    pub const DIRECT_VOLUME_RESIZE: &str = "/direct-volume/resize";
}

/// The pattern sandbox IDs must match (spec §5.1), as the Go tool prints it.
pub const SANDBOX_ID_PATTERN: &str = "^[a-zA-Z0-9][a-zA-Z0-9_.-]+$";

/// Which shim serves the socket; they differ in a few request and response shapes
/// (real-peers §1.3, §1.5).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Dialect {
    /// The Go `containerd-shim-kata-v2`, socket under `/run/vc/sbs`.
    GoShim,
    /// The runtime-rs shim (Kata ≥ 3.1), socket under `/run/kata`.
    RuntimeRs,
}

impl Dialect {
    /// The host directory holding this shim's sandbox directories.
    pub fn root(self) -> &'static str {
        match self {
            Dialect::GoShim => paths::RUN_VC_SBS,
            Dialect::RuntimeRs => paths::RUN_KATA,
        }
    }

    /// Looked up in this order, as Go clients ≥ 3.2 do.
    pub const ALL: [Dialect; 2] = [Dialect::GoShim, Dialect::RuntimeRs];
}

/// A running sandbox whose shim-monitor socket was found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Sandbox {
    /// The full sandbox ID.
    pub id: String,
    /// Where the socket is on this machine (under `KATA_HOST_ROOT`); what we connect to.
    pub socket: PathBuf,
    /// The socket as the host names it (`/run/vc/sbs/<id>/shim-monitor.sock`); what messages show.
    pub host_path: PathBuf,
    pub dialect: Dialect,
}

impl Sandbox {
    /// The sandbox `id` served by a shim of `dialect`, whether or not its socket exists.
    pub fn at(host: &HostRoot, id: &str, dialect: Dialect) -> Self {
        let host_path = Path::new(dialect.root())
            .join(id)
            .join(paths::SHIM_MONITOR_SOCKET);
        Self {
            id: id.to_string(),
            socket: host.join(&host_path),
            host_path,
            dialect,
        }
    }
}

/// What can go wrong finding or talking to a shim. Every message names the sandbox or socket.
#[derive(Debug, thiserror::Error)]
pub enum ShimError {
    #[error("ID cannot be blank")]
    BlankId,
    #[error("invalid container/sandbox ID {id:?} (should match \"{SANDBOX_ID_PATTERN}\")")]
    InvalidId { id: String },
    #[error(
        "no running sandbox {id:?}: neither {} nor {} exists, and no sandbox ID under {} or {} starts with {id:?}; check the ID (e.g. with `crictl pods --no-trunc`)",
        Path::new(paths::RUN_VC_SBS).join(id).join(paths::SHIM_MONITOR_SOCKET).display(),
        Path::new(paths::RUN_KATA).join(id).join(paths::SHIM_MONITOR_SOCKET).display(),
        paths::RUN_VC_SBS,
        paths::RUN_KATA
    )]
    NotFound { id: String },
    #[error("sandbox ID prefix {prefix:?} is ambiguous, it matches {}; give more of the ID", .matches.join(", "))]
    Ambiguous {
        prefix: String,
        matches: Vec<String>,
    },
    #[error("cannot list the sandbox directory {}: {}", .dir.display(), crate::errors::os_text(.cause))]
    ListRoot { dir: PathBuf, cause: std::io::Error },
    #[error(
        "the shim-monitor socket path {} is {len} bytes, longer than a Unix socket address can hold (107); use a shorter KATA_HOST_ROOT",
        .socket.display()
    )]
    SocketPathTooLong { socket: PathBuf, len: usize },
    #[error(
        "cannot connect to the shim-monitor socket {} of sandbox {id}: {}; is the sandbox still running?",
        .socket.display(),
        crate::errors::os_text(.cause)
    )]
    Connect {
        id: String,
        socket: PathBuf,
        cause: std::io::Error,
    },
    #[error(
        "{method} {path} on the shim-monitor socket {} of sandbox {id}: timed out after {} {step} (set {TIMEOUT_ENV} to wait longer)",
        .socket.display(),
        fmt_duration(*.after)
    )]
    Timeout {
        id: String,
        socket: PathBuf,
        method: &'static str,
        path: String,
        step: Step,
        after: Duration,
    },
    #[error(
        "{method} {path} on the shim-monitor socket {} of sandbox {id} failed {step}: {}{}",
        .socket.display(),
        hyper_text(.cause),
        hint(*.dialect, .cause)
    )]
    Transport {
        id: String,
        socket: PathBuf,
        method: &'static str,
        path: String,
        step: Step,
        dialect: Dialect,
        cause: hyper::Error,
    },
    #[error(
        "the shim of sandbox {id} ({}) answered {method} {path} with HTTP {status}: {}",
        .socket.display(),
        shown_body(.body)
    )]
    Status {
        id: String,
        socket: PathBuf,
        method: &'static str,
        path: String,
        status: u16,
        body: String,
    },
    #[error("cannot build the request {method} {path}: {cause}")]
    Request {
        method: &'static str,
        path: String,
        cause: hyper::http::Error,
    },
    /// Writing the streamed body to our own output failed (e.g. a closed pipe).
    #[error("cannot write the shim's answer")]
    Output(#[source] std::io::Error),
}

/// The step of an exchange that failed or timed out.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Step {
    Connecting,
    Handshake,
    AwaitingHeaders,
    ReadingBody,
}

impl std::fmt::Display for Step {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Step::Connecting => "while connecting",
            Step::Handshake => "while starting the HTTP exchange",
            Step::AwaitingHeaders => "while waiting for the response headers",
            Step::ReadingBody => "while reading the response body",
        })
    }
}

fn fmt_duration(d: Duration) -> String {
    if d.subsec_millis() == 0 {
        format!("{}s", d.as_secs())
    } else {
        format!("{}ms", d.as_millis())
    }
}

fn shown_body(body: &str) -> String {
    let t = body.trim_end();
    if t.is_empty() {
        "(empty body)".to_string()
    } else {
        t.to_string()
    }
}

/// A hyper error with its causes, OS errors in Go's wording.
fn hyper_text(e: &hyper::Error) -> String {
    let mut text = e.to_string();
    let mut next = std::error::Error::source(e);
    while let Some(cause) = next {
        text.push_str(": ");
        match cause.downcast_ref::<std::io::Error>() {
            Some(io) => text.push_str(&crate::errors::os_text(io)),
            None => text.push_str(&cause.to_string()),
        }
        next = cause.source();
    }
    text
}

fn hint(dialect: Dialect, e: &hyper::Error) -> &'static str {
    if e.is_incomplete_message() && dialect == Dialect::RuntimeRs {
        // real-peers §1.3: runtime-rs handlers signal errors by dropping the connection.
        " (the runtime-rs shim closes the connection when a request fails; see the shim's log)"
    } else if e.is_parse() {
        " (the socket did not answer with HTTP; is it a shim-monitor socket?)"
    } else {
        ""
    }
}

impl ShimError {
    /// True when the shim answered with a non-200 status (as opposed to a transport failure).
    pub fn is_status(&self) -> bool {
        matches!(self, ShimError::Status { .. })
    }
}

/// The request timeout: `KATA_SHIM_TIMEOUT_MS` when set to a positive number, else 3 s.
pub fn timeout_from_env() -> Duration {
    std::env::var(TIMEOUT_ENV)
        .ok()
        .and_then(|v| v.trim().parse::<u64>().ok())
        .filter(|&ms| ms > 0)
        .map(Duration::from_millis)
        .unwrap_or(DEFAULT_TIMEOUT)
}

/// Go's `url.QueryEscape`: unreserved bytes kept, space as `+`, everything else `%XX`.
pub fn query_escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for &b in s.as_bytes() {
        match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                out.push(b as char)
            }
            b' ' => out.push('+'),
            _ => out.push_str(&format!("%{b:02X}")),
        }
    }
    out
}

/// The `path` query value for `/direct-volume/stats`. The Go shim query-decodes the value
/// and then path-unescapes it once more, so the device is query-escaped (spec Q39: Go
/// path-escaped it, which left `&`, `+`, `=` and `#` raw) after escaping `%` for that second
/// decoding. For ordinary `/dev/...` paths the request is byte-identical to Go's.
pub fn stats_query_value(device: &str) -> String {
    query_escape(&device.replace('%', "%25"))
}

/// Checks a sandbox ID the way the Go tool does (spec §5.1).
pub fn validate_sandbox_id(id: &str) -> Result<(), ShimError> {
    if id.is_empty() {
        return Err(ShimError::BlankId);
    }
    if is_valid_sandbox_id(id) {
        Ok(())
    } else {
        Err(ShimError::InvalidId { id: id.to_string() })
    }
}

/// `^[a-zA-Z0-9][a-zA-Z0-9_.-]+$` without a regex engine (also used to filter directory names).
pub fn is_valid_sandbox_id(id: &str) -> bool {
    let b = id.as_bytes();
    b.len() >= 2
        && b[0].is_ascii_alphanumeric()
        && b[1..]
            .iter()
            .all(|&c| c.is_ascii_alphanumeric() || matches!(c, b'_' | b'.' | b'-'))
}

/// Finds the sandbox named by `id_or_prefix`: an exact ID whose socket exists under
/// `/run/vc/sbs` (Go shim) or else `/run/kata` (runtime-rs), or else the one running sandbox in
/// either root whose ID starts with it (beyond the Go tool, like kata-ctl).
pub fn resolve_sandbox(host: &HostRoot, id_or_prefix: &str) -> Result<Sandbox, ShimError> {
    validate_sandbox_id(id_or_prefix)?;
    for dialect in Dialect::ALL {
        let sb = Sandbox::at(host, id_or_prefix, dialect);
        if socket_exists(&sb.socket) {
            return Ok(sb);
        }
    }
    let mut found: Vec<Sandbox> = Vec::new();
    for dialect in Dialect::ALL {
        let dir = host.join(dialect.root());
        let entries = match std::fs::read_dir(&dir) {
            Ok(e) => e,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
            Err(cause) => {
                return Err(ShimError::ListRoot {
                    dir: PathBuf::from(dialect.root()),
                    cause,
                });
            }
        };
        for entry in entries.flatten() {
            let Ok(name) = entry.file_name().into_string() else {
                continue;
            };
            if !name.starts_with(id_or_prefix) || !is_valid_sandbox_id(&name) {
                continue;
            }
            // The same ID under both roots is one sandbox; the Go root wins, as above.
            if found.iter().any(|s| s.id == name) {
                continue;
            }
            let sb = Sandbox::at(host, &name, dialect);
            if socket_exists(&sb.socket) {
                found.push(sb);
            }
        }
    }
    match found.len() {
        0 => Err(ShimError::NotFound {
            id: id_or_prefix.to_string(),
        }),
        1 => Ok(found.remove(0)),
        _ => {
            let mut matches: Vec<String> = found.into_iter().map(|s| s.id).collect();
            matches.sort();
            Err(ShimError::Ambiguous {
                prefix: id_or_prefix.to_string(),
                matches,
            })
        }
    }
}

/// Resolves an exact sandbox ID only (no prefixes): used where the ID comes from a file the
/// shim wrote, e.g. the direct-volume sandbox record.
pub fn resolve_exact(host: &HostRoot, id: &str) -> Result<Sandbox, ShimError> {
    validate_sandbox_id(id)?;
    Dialect::ALL
        .into_iter()
        .map(|d| Sandbox::at(host, id, d))
        .find(|sb| socket_exists(&sb.socket))
        .ok_or_else(|| ShimError::NotFound { id: id.to_string() })
}

fn socket_exists(p: &Path) -> bool {
    // Anything at that name counts (Go stats it); connecting reports what it really is.
    std::fs::symlink_metadata(p).is_ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sandbox_id_rules_match_the_go_pattern() {
        for ok in ["ab", "a1", "0.x", "A_b-c.d", &"f".repeat(64)] {
            assert!(validate_sandbox_id(ok).is_ok(), "{ok}");
        }
        assert!(matches!(validate_sandbox_id(""), Err(ShimError::BlankId)));
        for bad in ["a", "-ab", ".ab", "_ab", "a/b", "a b", "ab\n", "é1", "../x"] {
            assert!(
                matches!(validate_sandbox_id(bad), Err(ShimError::InvalidId { .. })),
                "{bad}"
            );
        }
        let re = regex::Regex::new(SANDBOX_ID_PATTERN).unwrap();
        for s in ["ab", "a", "-a", "a-", "a..", "x y", "ab\n"] {
            assert_eq!(re.is_match(s), is_valid_sandbox_id(s), "{s:?}");
        }
    }

    fn touch_socket(root: &Path, dialect: Dialect, id: &str) {
        let dir = HostRoot::new(root).join(dialect.root()).join(id);
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join(paths::SHIM_MONITOR_SOCKET), "").unwrap();
    }

    #[test]
    fn exact_id_prefers_the_go_root_then_runtime_rs() {
        let t = tempfile::tempdir().unwrap();
        let host = HostRoot::new(t.path());
        touch_socket(t.path(), Dialect::RuntimeRs, "abc");
        let sb = resolve_sandbox(&host, "abc").unwrap();
        assert_eq!(sb.dialect, Dialect::RuntimeRs);
        assert_eq!(
            sb.host_path,
            PathBuf::from("/run/kata/abc/shim-monitor.sock")
        );
        assert_eq!(sb.socket, t.path().join("run/kata/abc/shim-monitor.sock"));
        touch_socket(t.path(), Dialect::GoShim, "abc");
        assert_eq!(
            resolve_sandbox(&host, "abc").unwrap().dialect,
            Dialect::GoShim
        );
    }

    #[test]
    fn unique_prefix_is_accepted_and_ambiguity_lists_matches() {
        let t = tempfile::tempdir().unwrap();
        let host = HostRoot::new(t.path());
        touch_socket(t.path(), Dialect::GoShim, "abc123");
        touch_socket(t.path(), Dialect::RuntimeRs, "abd456");
        // A directory without a socket is not a running sandbox.
        std::fs::create_dir_all(t.path().join("run/vc/sbs/abe789")).unwrap();
        let sb = resolve_sandbox(&host, "abd").unwrap();
        assert_eq!((sb.id.as_str(), sb.dialect), ("abd456", Dialect::RuntimeRs));
        assert_eq!(resolve_sandbox(&host, "abc1").unwrap().id, "abc123");
        let err = resolve_sandbox(&host, "ab").unwrap_err();
        assert_eq!(
            err.to_string(),
            "sandbox ID prefix \"ab\" is ambiguous, it matches abc123, abd456; give more of the ID"
        );
        let err = resolve_sandbox(&host, "abe").unwrap_err();
        assert!(matches!(err, ShimError::NotFound { .. }), "{err}");
        assert!(
            err.to_string()
                .contains("/run/vc/sbs/abe/shim-monitor.sock")
        );
    }

    #[test]
    fn missing_roots_are_not_found_not_an_error_listing() {
        let t = tempfile::tempdir().unwrap();
        let err = resolve_sandbox(&HostRoot::new(t.path()), "abc").unwrap_err();
        assert!(matches!(err, ShimError::NotFound { .. }));
    }

    #[test]
    fn stats_query_survives_the_go_shims_double_decoding() {
        assert_eq!(stats_query_value("/dev/sda"), "%2Fdev%2Fsda");
        assert_eq!(
            stats_query_value("/dev/sd+a b&c#%41="),
            "%2Fdev%2Fsd%2Ba+b%26c%23%252541%3D"
        );
    }

    #[test]
    fn timeout_env_parsing() {
        // Only the parser is exercised here; the variable itself is tested through the binary.
        assert_eq!(fmt_duration(Duration::from_secs(3)), "3s");
        assert_eq!(fmt_duration(Duration::from_millis(250)), "250ms");
    }
}
