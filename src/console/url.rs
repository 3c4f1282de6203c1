//! Agent URLs as the shim's `GET /agent-url` returns them (spec §5.1 step 3), and the
//! debug-console address derived from one: same CID or hybrid-vsock socket, debug port
//! instead of the agent's port.

use std::fmt;
use std::path::PathBuf;

use crate::paths::HostRoot;

/// The agent's debug console listens on this vsock port unless `--kata-debug-port` says
/// otherwise (the runtime adds `agent.debug_console_vport=1026` to the guest kernel line).
pub const DEFAULT_DEBUG_PORT: u32 = 1026;

/// Where the agent is, as the shim reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AgentUrl {
    /// `vsock://CID:PORT` (qemu): an AF_VSOCK address.
    Vsock { cid: u32, port: u32 },
    /// `hvsock:///PATH:PORT` (Firecracker, Cloud Hypervisor, Dragonball): the VMM's Unix
    /// socket at the host path PATH, which forwards to guest vsock port PORT after a
    /// `CONNECT` handshake.
    HybridVsock { path: PathBuf, port: u32 },
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum UrlError {
    #[error(
        "the shim returned an empty agent URL (is the sandbox's VM running?); expected vsock://CID:PORT or hvsock:///PATH:PORT"
    )]
    Empty,
    #[error("agent URL \"{0}\" has no scheme; expected vsock://CID:PORT or hvsock:///PATH:PORT")]
    NoScheme(String),
    // Go's words first (`schema unix not found`), then what we accept.
    #[error(
        "schema {scheme} not found: agent URL \"{url}\" is neither vsock://CID:PORT nor hvsock:///PATH:PORT"
    )]
    UnknownScheme { scheme: String, url: String },
    #[error("Invalid vsock scheme: {0} (expected vsock://CID:PORT)")]
    InvalidVsock(String),
    #[error("Invalid vsock cid: {0}")]
    InvalidCid(String),
    #[error("Invalid vsock port: {0}")]
    InvalidPort(String),
    #[error(
        "Invalid hybrid vsock scheme: {0} (expected hvsock:///PATH:PORT with an absolute PATH that has no ':')"
    )]
    InvalidHybrid(String),
    #[error("parse \"{url}\": invalid URL escape \"{escape}\"")]
    BadEscape { url: String, escape: String },
}

/// `--kata-debug-port` out of range (spec Q35: the Go tool silently sent `CONNECT 0`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error(
    "--kata-debug-port {0} is out of range: a vsock port is 1 to 4294967295 (0 means the default, 1026)"
)]
pub struct PortOutOfRange(pub u64);

/// The debug port to dial: 0 means [`DEFAULT_DEBUG_PORT`].
pub fn debug_port(flag: u64) -> Result<u32, PortOutOfRange> {
    // spec Q35: refuse ports that do not fit a vsock port instead of truncating them.
    match flag {
        0 => Ok(DEFAULT_DEBUG_PORT),
        n => u32::try_from(n).map_err(|_| PortOutOfRange(n)),
    }
}

/// Parses the body of `GET /agent-url`. One trailing newline is removed, as the Go tool
/// does; anything else around the URL is an error.
pub fn parse_agent_url(body: &str) -> Result<AgentUrl, UrlError> {
    let url = body.strip_suffix('\n').unwrap_or(body);
    if url.is_empty() {
        return Err(UrlError::Empty);
    }
    let Some((scheme, rest)) = url.split_once(':') else {
        return Err(UrlError::NoScheme(url.to_string()));
    };
    if scheme.is_empty()
        || !scheme.starts_with(|c: char| c.is_ascii_alphabetic())
        || !scheme
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '+' | '-' | '.'))
    {
        return Err(UrlError::NoScheme(url.to_string()));
    }
    match scheme.to_ascii_lowercase().as_str() {
        "vsock" => parse_vsock(url, rest),
        "hvsock" => parse_hybrid(url, rest),
        other => Err(UrlError::UnknownScheme {
            scheme: other.to_string(),
            url: url.to_string(),
        }),
    }
}

fn parse_vsock(url: &str, rest: &str) -> Result<AgentUrl, UrlError> {
    let invalid = || UrlError::InvalidVsock(url.to_string());
    let host = rest.strip_prefix("//").ok_or_else(invalid)?;
    // Only `CID:PORT`: no path, no user info.
    let host = host.strip_suffix('/').unwrap_or(host);
    if host.contains(['/', '@', '?', '#']) {
        return Err(invalid());
    }
    let host = percent_decode(url, host)?;
    let mut parts = host.split(':');
    let (Some(cid), Some(port), None) = (parts.next(), parts.next(), parts.next()) else {
        return Err(invalid());
    };
    let cid = parse_u32(cid).ok_or_else(|| UrlError::InvalidCid(cid.to_string()))?;
    let port = parse_u32(port).ok_or_else(|| UrlError::InvalidPort(port.to_string()))?;
    Ok(AgentUrl::Vsock { cid, port })
}

fn parse_hybrid(url: &str, rest: &str) -> Result<AgentUrl, UrlError> {
    let invalid = || UrlError::InvalidHybrid(url.to_string());
    // `hvsock://` + an empty host + an absolute path: the runtime writes `hvsock://%s:%d`
    // with an absolute socket path.
    let path = rest.strip_prefix("//").ok_or_else(invalid)?;
    if !path.starts_with('/') {
        return Err(invalid());
    }
    let path = percent_decode(url, path)?;
    let mut parts = path.split(':');
    let (Some(path), Some(port), None) = (parts.next(), parts.next(), parts.next()) else {
        return Err(invalid());
    };
    if path.len() < 2 || path.contains('\0') {
        return Err(invalid());
    }
    let port = parse_u32(port).ok_or_else(|| UrlError::InvalidPort(port.to_string()))?;
    Ok(AgentUrl::HybridVsock {
        path: PathBuf::from(path),
        port,
    })
}

/// Decimal only, as Go's `ParseUint(s, 10, 32)`.
fn parse_u32(s: &str) -> Option<u32> {
    if s.is_empty() || !s.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    s.parse().ok()
}

fn percent_decode(url: &str, s: &str) -> Result<String, UrlError> {
    if !s.contains('%') {
        return Ok(s.to_string());
    }
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            let hex = bytes.get(i + 1..i + 3);
            let value = hex
                .and_then(|h| std::str::from_utf8(h).ok())
                .filter(|h| h.bytes().all(|b| b.is_ascii_hexdigit()))
                .and_then(|h| u8::from_str_radix(h, 16).ok());
            let Some(v) = value else {
                let end = (i + 3).min(bytes.len());
                return Err(UrlError::BadEscape {
                    url: url.to_string(),
                    escape: String::from_utf8_lossy(&bytes[i..end]).into_owned(),
                });
            };
            out.push(v);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8(out).map_err(|_| UrlError::BadEscape {
        url: url.to_string(),
        escape: "non-UTF-8 bytes".to_string(),
    })
}

/// The debug console to dial: the agent URL with its port replaced by the debug port.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ConsoleTarget {
    Vsock {
        cid: u32,
        port: u32,
    },
    HybridVsock {
        /// The socket as the host names it (for messages).
        host_path: PathBuf,
        /// Where the socket is on this machine (under `KATA_HOST_ROOT`).
        socket: PathBuf,
        port: u32,
    },
}

impl ConsoleTarget {
    pub fn new(agent: &AgentUrl, host: &HostRoot, debug_port: u32) -> Self {
        match agent {
            AgentUrl::Vsock { cid, .. } => Self::Vsock {
                cid: *cid,
                port: debug_port,
            },
            AgentUrl::HybridVsock { path, .. } => Self::HybridVsock {
                host_path: path.clone(),
                socket: host.join(path),
                port: debug_port,
            },
        }
    }
}

impl fmt::Display for ConsoleTarget {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Vsock { cid, port } => write!(f, "vsock://{cid}:{port}"),
            Self::HybridVsock {
                host_path, port, ..
            } => write!(f, "hvsock://{}:{port}", host_path.display()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn vsock_url_parses() {
        assert_eq!(
            parse_agent_url("vsock://3:1024\n"),
            Ok(AgentUrl::Vsock { cid: 3, port: 1024 })
        );
        assert_eq!(
            parse_agent_url("vsock://4294967295:1"),
            Ok(AgentUrl::Vsock {
                cid: u32::MAX,
                port: 1
            })
        );
    }

    #[test]
    fn hybrid_url_parses() {
        assert_eq!(
            parse_agent_url("hvsock:///run/vc/firecracker/abc/root/kata.hvsock:1024\n"),
            Ok(AgentUrl::HybridVsock {
                path: PathBuf::from("/run/vc/firecracker/abc/root/kata.hvsock"),
                port: 1024
            })
        );
        assert_eq!(
            parse_agent_url("hvsock:///tmp/a%20b.sock:2"),
            Ok(AgentUrl::HybridVsock {
                path: PathBuf::from("/tmp/a b.sock"),
                port: 2
            })
        );
    }

    #[test]
    fn bad_urls_are_explained() {
        let cases = [
            ("", "empty agent URL"),
            ("\n", "empty agent URL"),
            ("unix:///run/x.sock", "schema unix not found"),
            ("mock://x", "schema mock not found"),
            ("justtext", "has no scheme"),
            ("vsock://3", "Invalid vsock scheme: vsock://3"),
            ("vsock://3:4:5", "Invalid vsock scheme"),
            ("vsock:3:4", "Invalid vsock scheme"),
            ("vsock://x:1024", "Invalid vsock cid: x"),
            ("vsock://3:-1", "Invalid vsock port: -1"),
            ("vsock://3:4294967296", "Invalid vsock port: 4294967296"),
            ("hvsock:///run/x.sock", "Invalid hybrid vsock scheme"),
            ("hvsock:///run/a:b.sock:1024", "Invalid hybrid vsock scheme"),
            (
                "hvsock://host/run/x.sock:1024",
                "Invalid hybrid vsock scheme",
            ),
            ("hvsock:///run/x.sock:port", "Invalid vsock port: port"),
            ("hvsock:///run/%zz.sock:1", "invalid URL escape \"%zz\""),
            ("vsock://3:1024\n\n", "Invalid vsock port"),
        ];
        for (url, want) in cases {
            let err = parse_agent_url(url).expect_err(url).to_string();
            assert!(err.contains(want), "{url:?}: {err:?} lacks {want:?}");
        }
    }

    #[test]
    fn debug_port_defaults_and_range() {
        assert_eq!(debug_port(0), Ok(1026));
        assert_eq!(debug_port(1), Ok(1));
        assert_eq!(debug_port(u64::from(u32::MAX)), Ok(u32::MAX));
        assert_eq!(debug_port(1 << 32), Err(PortOutOfRange(1 << 32)));
        assert!(
            PortOutOfRange(1 << 32)
                .to_string()
                .contains("4294967296 is out of range")
        );
    }

    #[test]
    fn target_replaces_port_and_reroots_path() {
        let host = HostRoot::new("/fake");
        let agent = parse_agent_url("hvsock:///run/kata.hvsock:1024").unwrap();
        let t = ConsoleTarget::new(&agent, &host, 1026);
        assert_eq!(
            t,
            ConsoleTarget::HybridVsock {
                host_path: PathBuf::from("/run/kata.hvsock"),
                socket: PathBuf::from("/fake/run/kata.hvsock"),
                port: 1026
            }
        );
        assert_eq!(t.to_string(), "hvsock:///run/kata.hvsock:1026");
        let v = ConsoleTarget::new(&parse_agent_url("vsock://7:1024").unwrap(), &host, 9);
        assert_eq!(v.to_string(), "vsock://7:9");
    }

    proptest! {
        #[test]
        fn parser_never_panics(s in "\\PC*") {
            let _ = parse_agent_url(&s);
        }

        #[test]
        fn vsock_round_trip(cid: u32, port: u32) {
            let url = format!("vsock://{cid}:{port}\n");
            prop_assert_eq!(parse_agent_url(&url), Ok(AgentUrl::Vsock { cid, port }));
        }

        #[test]
        fn hybrid_round_trip(path in "(/[a-zA-Z0-9_.-]{1,12}){1,5}", port: u32) {
            let url = format!("hvsock://{path}:{port}");
            prop_assert_eq!(
                parse_agent_url(&url),
                Ok(AgentUrl::HybridVsock { path: PathBuf::from(&path), port })
            );
        }
    }
}
