//! Dialers for the guest's debug console (spec §5.2, real-peers §4.3): AF_VSOCK through
//! tokio-vsock, and hybrid vsock (a VMM's Unix socket plus the `CONNECT <port>` / `OK`
//! handshake). Attempts are retried with back-off until a deadline, and a failure names
//! the address and the last real cause (spec Q34).

use std::io;
use std::os::fd::OwnedFd;
use std::path::Path;

use nix::fcntl::{FcntlArg, OFlag, fcntl};
use std::time::{Duration, Instant};

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::UnixStream;

use super::url::ConsoleTarget;
use crate::errors::os_text;

/// A connected debug console: a byte stream to the guest shell.
#[derive(Debug)]
pub enum Connection {
    Unix(UnixStream),
    Vsock(tokio_vsock::VsockStream),
}

impl Connection {
    /// The socket as a blocking descriptor, taken out of the async runtime: the copy loops
    /// run on plain threads, which costs fewer system calls per chunk than readiness
    /// polling, and lets each direction block without holding up the other.
    pub fn into_blocking(self) -> io::Result<OwnedFd> {
        let fd: OwnedFd = match self {
            Self::Unix(s) => s.into_std()?.into(),
            Self::Vsock(s) => s.into(),
        };
        let flags = fcntl(&fd, FcntlArg::F_GETFL).map_err(io::Error::from)?;
        let flags = OFlag::from_bits_truncate(flags) & !OFlag::O_NONBLOCK;
        fcntl(&fd, FcntlArg::F_SETFL(flags)).map_err(io::Error::from)?;
        Ok(fd)
    }
}

/// The longest handshake reply accepted; Firecracker's is `OK <u32>\n`.
const MAX_REPLY: usize = 512;

/// How long to keep trying and how long one handshake may take.
#[derive(Debug, Clone, Copy)]
pub struct DialOptions {
    /// Stop starting new attempts after this long (3 s in the Go tool).
    pub connect_timeout: Duration,
    /// How long to wait for the VMM's handshake reply (10 s in the Go tool).
    pub handshake_timeout: Duration,
}

impl Default for DialOptions {
    fn default() -> Self {
        Self {
            connect_timeout: Duration::from_secs(3),
            handshake_timeout: Duration::from_secs(10),
        }
    }
}

/// Why one connection attempt failed.
#[derive(Debug, thiserror::Error)]
pub enum AttemptError {
    #[error("{0}")]
    Connect(String),
    /// Permission denied on the socket: asking again will not help.
    #[error("{0}")]
    Denied(String),
    #[error("timed out after {} waiting for the connection to be accepted", short(*.0))]
    ConnectTimeout(Duration),
    #[error(
        "the VMM closed the connection before answering CONNECT {port} (is the agent's debug console enabled, and listening on port {port}?)"
    )]
    ClosedBeforeReply { port: u32 },
    #[error("the VMM closed the connection in the middle of its reply {partial:?}")]
    ClosedMidReply { partial: String },
    #[error("no handshake reply to CONNECT {port} within {}", short(*.timeout))]
    HandshakeTimeout { port: u32, timeout: Duration },
    // spec Q33: the reply must start with `OK `; the Go tool accepted any line containing OK.
    #[error(
        "handshake failed: the VMM answered {reply:?} to CONNECT {port}, expected \"OK <port>\""
    )]
    Refused { port: u32, reply: String },
    #[error("handshake failed: the VMM's reply is longer than {MAX_REPLY} bytes without a newline")]
    ReplyTooLong,
    #[error("{op}: {text}")]
    Io { op: &'static str, text: String },
}

impl AttemptError {
    /// A refusal will not change by asking again; everything else may be a VM still booting.
    fn is_permanent(&self) -> bool {
        matches!(
            self,
            Self::Refused { .. }
                | Self::ReplyTooLong
                | Self::HandshakeTimeout { .. }
                | Self::Denied(_)
        )
    }
}

/// Every attempt failed: names the address, how long we tried, and the last cause.
#[derive(Debug, thiserror::Error)]
#[error(
    "cannot connect to the debug console at {target} ({attempts} attempt{plural} in {elapsed}): {last}",
    plural = if *.attempts == 1 { "" } else { "s" },
    elapsed = short(*.elapsed)
)]
pub struct DialError {
    pub target: String,
    pub attempts: u32,
    pub elapsed: Duration,
    /// Shown in the message, not as a separate cause (it would be printed twice).
    pub last: AttemptError,
}

/// `950ms`, `3.0s`, `10s`: durations as people write them.
fn short(d: Duration) -> String {
    if d < Duration::from_secs(1) {
        format!("{}ms", d.as_millis())
    } else if d.subsec_millis() == 0 {
        format!("{}s", d.as_secs())
    } else {
        format!("{:.1}s", d.as_secs_f64())
    }
}

/// Connects to `target`, retrying with back-off (20 ms doubling to 500 ms) until
/// `opts.connect_timeout` has passed (spec Q34: the Go tool spun in a tight loop and then
/// replaced the real cause with a timeout message).
pub async fn dial(target: &ConsoleTarget, opts: DialOptions) -> Result<Connection, DialError> {
    let start = Instant::now();
    let deadline = start + opts.connect_timeout;
    let mut delay = Duration::from_millis(20);
    let mut attempts = 0;
    loop {
        attempts += 1;
        let remaining = deadline.saturating_duration_since(Instant::now());
        let result = attempt(target, opts, remaining.max(Duration::from_millis(100))).await;
        let err = match result {
            Ok(conn) => return Ok(conn),
            Err(e) => e,
        };
        let now = Instant::now();
        if err.is_permanent() || now + delay >= deadline {
            return Err(DialError {
                target: target.to_string(),
                attempts,
                elapsed: now - start,
                last: err,
            });
        }
        tokio::time::sleep(delay).await;
        delay = (delay * 2).min(Duration::from_millis(500));
    }
}

async fn attempt(
    target: &ConsoleTarget,
    opts: DialOptions,
    connect_budget: Duration,
) -> Result<Connection, AttemptError> {
    match target {
        ConsoleTarget::Vsock { cid, port } => {
            let addr = tokio_vsock::VsockAddr::new(*cid, *port);
            match tokio::time::timeout(connect_budget, tokio_vsock::VsockStream::connect(addr))
                .await
            {
                Ok(Ok(s)) => Ok(Connection::Vsock(s)),
                Ok(Err(e)) => Err(AttemptError::Connect(format!(
                    "dial vsock {cid}:{port}: {}",
                    os_text(&e)
                ))),
                Err(_) => Err(AttemptError::ConnectTimeout(connect_budget)),
            }
        }
        ConsoleTarget::HybridVsock {
            host_path,
            socket,
            port,
        } => {
            let mut s = connect_unix(host_path, socket, connect_budget).await?;
            match tokio::time::timeout(opts.handshake_timeout, handshake(&mut s, *port)).await {
                Ok(Ok(_reply)) => Ok(Connection::Unix(s)),
                Ok(Err(e)) => Err(e),
                Err(_) => Err(AttemptError::HandshakeTimeout {
                    port: *port,
                    timeout: opts.handshake_timeout,
                }),
            }
        }
    }
}

async fn connect_unix(
    host_path: &Path,
    socket: &Path,
    budget: Duration,
) -> Result<UnixStream, AttemptError> {
    match tokio::time::timeout(budget, UnixStream::connect(socket)).await {
        Ok(Ok(s)) => Ok(s),
        // Go's wording, with the host path as the user knows it.
        Ok(Err(e)) => {
            let denied = e.kind() == std::io::ErrorKind::PermissionDenied;
            let text = format!(
                "dial unix {}: connect: {}",
                host_path.display(),
                os_text(&crate::errors::explain_not_a_socket(socket, e))
            );
            Err(if denied {
                AttemptError::Denied(text)
            } else {
                AttemptError::Connect(text)
            })
        }
        Err(_) => Err(AttemptError::ConnectTimeout(budget)),
    }
}

/// The hybrid-vsock handshake: send `CONNECT <port>\n`, read the reply one byte at a time
/// up to the newline so that every byte after it (the guest's first prompt) stays in the
/// stream (spec Q33), and require it to start with `OK `. Returns the reply line.
pub async fn handshake<S>(stream: &mut S, port: u32) -> Result<String, AttemptError>
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    let io_err = |op: &'static str, e: io::Error| AttemptError::Io {
        op,
        text: os_text(&e),
    };
    stream
        .write_all(format!("CONNECT {port}\n").as_bytes())
        .await
        .map_err(|e| io_err("write CONNECT", e))?;
    stream
        .flush()
        .await
        .map_err(|e| io_err("write CONNECT", e))?;
    let mut line = Vec::with_capacity(32);
    let mut byte = [0u8; 1];
    loop {
        let n = stream
            .read(&mut byte)
            .await
            .map_err(|e| io_err("read handshake reply", e))?;
        if n == 0 {
            return Err(if line.is_empty() {
                AttemptError::ClosedBeforeReply { port }
            } else {
                AttemptError::ClosedMidReply {
                    partial: String::from_utf8_lossy(&line).into_owned(),
                }
            });
        }
        if byte[0] == b'\n' {
            break;
        }
        if line.len() >= MAX_REPLY {
            return Err(AttemptError::ReplyTooLong);
        }
        line.push(byte[0]);
    }
    check_reply(&line, port)
}

/// Pure check of one reply line (without its `\n`).
pub fn check_reply(line: &[u8], port: u32) -> Result<String, AttemptError> {
    let text = String::from_utf8_lossy(line);
    let text = text.strip_suffix('\r').unwrap_or(&text);
    if text.starts_with("OK ") {
        Ok(text.to_string())
    } else {
        Err(AttemptError::Refused {
            port,
            reply: text.to_string(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use std::path::PathBuf;

    #[tokio::test]
    async fn handshake_keeps_the_bytes_after_the_ok_line() {
        let (mut client, mut vmm) = tokio::io::duplex(1024);
        let server = tokio::spawn(async move {
            let mut line = [0u8; 13];
            vmm.read_exact(&mut line).await.unwrap();
            assert_eq!(&line, b"CONNECT 1026\n");
            // spec Q33: the Go tool lost a prompt sent together with the OK line.
            vmm.write_all(b"OK 1073741824\nguest$ ").await.unwrap();
            vmm
        });
        let reply = handshake(&mut client, 1026).await.unwrap();
        assert_eq!(reply, "OK 1073741824");
        let _vmm = server.await.unwrap();
        let mut rest = [0u8; 7];
        client.read_exact(&mut rest).await.unwrap();
        assert_eq!(&rest, b"guest$ ");
    }

    async fn answer(reply: &'static [u8]) -> Result<String, AttemptError> {
        let (mut client, mut vmm) = tokio::io::duplex(4096);
        tokio::spawn(async move {
            let mut b = [0u8; 64];
            let _ = vmm.read(&mut b).await;
            let _ = vmm.write_all(reply).await;
        });
        handshake(&mut client, 7).await
    }

    #[tokio::test]
    async fn handshake_failures_are_told_apart() {
        assert!(matches!(
            answer(b"NOT OK\n").await,
            Err(AttemptError::Refused { .. })
        ));
        assert!(matches!(
            answer(b"OKAY\n").await,
            Err(AttemptError::Refused { .. })
        ));
        assert!(matches!(
            answer(b"").await,
            Err(AttemptError::ClosedBeforeReply { port: 7 })
        ));
        assert!(matches!(
            answer(b"OK 12").await,
            Err(AttemptError::ClosedMidReply { .. })
        ));
        assert!(matches!(
            answer(&[b'O'; 600]).await,
            Err(AttemptError::ReplyTooLong)
        ));
        assert_eq!(answer(b"OK 5\r\n").await.unwrap(), "OK 5");
    }

    #[tokio::test]
    async fn dial_retries_until_the_deadline_and_keeps_the_cause() {
        let dir = tempfile::tempdir().unwrap();
        let target = ConsoleTarget::HybridVsock {
            host_path: PathBuf::from("/run/missing.hvsock"),
            socket: dir.path().join("missing.hvsock"),
            port: 1026,
        };
        let opts = DialOptions {
            connect_timeout: Duration::from_millis(300),
            handshake_timeout: Duration::from_secs(1),
        };
        let err = match dial(&target, opts).await {
            Err(e) => e,
            Ok(_) => panic!("connected to a missing socket"),
        };
        assert!(err.attempts > 2, "{err}");
        let text = err.to_string();
        assert!(
            text.starts_with(
                "cannot connect to the debug console at hvsock:///run/missing.hvsock:1026 ("
            ),
            "{text}"
        );
        assert!(
            text.ends_with("dial unix /run/missing.hvsock: connect: no such file or directory"),
            "{text}"
        );
    }

    #[test]
    fn durations_read_naturally() {
        assert_eq!(short(Duration::from_millis(955)), "955ms");
        assert_eq!(short(Duration::from_secs(3)), "3s");
        assert_eq!(short(Duration::from_millis(3040)), "3.0s");
    }

    proptest! {
        #[test]
        fn reply_accepted_iff_it_starts_with_ok_space(line in proptest::collection::vec(any::<u8>().prop_filter("no newline", |b| *b != b'\n'), 0..40)) {
            let ok = check_reply(&line, 1).is_ok();
            prop_assert_eq!(ok, line.starts_with(b"OK "));
        }
    }
}
