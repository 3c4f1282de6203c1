//! The VM cache gRPC client (`factory status|destroy`, tests, benchmarks): tonic over the
//! Unix socket `vm_cache_endpoint`, with a custom connector since gRPC's own URI schemes
//! are TCP. Errors keep the Go tool's shape (`rpc error: code = … desc = …`) and name the
//! socket.

use std::io;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use hyper_util::rt::TokioIo;
use tokio::net::UnixStream;
use tonic::transport::{Channel, Endpoint};

use crate::cache::cache_service_client::CacheServiceClient;
use crate::errors::os_text;

/// Time allowed to connect to the server.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
/// Time allowed for one call.
pub const CALL_TIMEOUT: Duration = Duration::from_secs(60);
/// Replaces [`CALL_TIMEOUT`] (and caps [`CONNECT_TIMEOUT`]), in milliseconds: a monitoring
/// script's `factory status` need not wait a minute for a wedged server (or a test).
pub const TIMEOUT_ENV: &str = "KATA_FACTORY_TIMEOUT_MS";

/// The call timeout: `KATA_FACTORY_TIMEOUT_MS` when set to a positive number, else 60 s.
pub fn call_timeout() -> Duration {
    std::env::var(TIMEOUT_ENV)
        .ok()
        .and_then(|v| v.trim().parse::<u64>().ok())
        .filter(|&ms| ms > 0)
        .map(Duration::from_millis)
        .unwrap_or(CALL_TIMEOUT)
}

/// Why a call to the VM cache server failed.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    /// Nothing listens on the socket (or it does not exist).
    #[error("dial unix {}: connect: {}", .path.display(), os_text(.source))]
    Connect { path: PathBuf, source: io::Error },
    /// Something else went wrong on the way (timeouts, HTTP/2 errors).
    #[error("{path}: {message}", path = .path.display())]
    Transport { path: PathBuf, message: String },
    /// The server answered with an error status.
    #[error("rpc error: code = {code:?} desc = {message}")]
    Status { code: tonic::Code, message: String },
}

impl ClientError {
    /// True when the socket file exists but nobody accepts on it: a server that died
    /// without cleaning up (e.g. killed with SIGKILL).
    pub fn is_stale_socket(&self) -> bool {
        matches!(self, ClientError::Connect { source, .. }
            if source.raw_os_error() == Some(libc::ECONNREFUSED))
    }

    /// True when the socket file does not exist.
    pub fn is_missing_socket(&self) -> bool {
        matches!(self, ClientError::Connect { source, .. }
            if source.kind() == io::ErrorKind::NotFound)
    }

    fn from_status(
        path: &Path,
        timeout: Duration,
        started: Instant,
        st: tonic::Status,
    ) -> ClientError {
        // A transport failure after connecting comes back as a status whose source is the
        // hyper or io error: report that one instead of tonic's summary.
        if let Some(e) = find_io_error(&st) {
            return ClientError::Transport {
                path: path.to_path_buf(),
                message: os_text(e),
            };
        }
        // A status with a source was made here (a timeout, an HTTP/2 error), not sent by
        // the server: say so and name the socket.
        if std::error::Error::source(&st).is_some() {
            // Only a call that really used up its time is a timeout; a peer that closes or
            // answers garbage fails fast with a Cancelled status too.
            let timed_out = started.elapsed() + Duration::from_millis(50) >= timeout;
            let message = if st.code() == tonic::Code::Cancelled && timed_out {
                format!(
                    "no answer within {} ms (is the VM cache server wedged? set {TIMEOUT_ENV} to wait longer)",
                    timeout.as_millis()
                )
            } else {
                let mut text = st.message().to_string();
                let mut cur = std::error::Error::source(&st);
                while let Some(c) = cur {
                    let c_text = c.to_string();
                    if !text.contains(&c_text) {
                        text.push_str(": ");
                        text.push_str(&c_text);
                    }
                    cur = c.source();
                }
                format!("{text} (is it a VM cache server socket?)")
            };
            return ClientError::Transport {
                path: path.to_path_buf(),
                message,
            };
        }
        ClientError::Status {
            code: st.code(),
            message: st.message().to_string(),
        }
    }
}

fn find_io_error<'a>(e: &'a (dyn std::error::Error + 'static)) -> Option<&'a io::Error> {
    let mut cur: Option<&(dyn std::error::Error + 'static)> = Some(e);
    while let Some(err) = cur {
        if let Some(io) = err.downcast_ref::<io::Error>() {
            return Some(io);
        }
        cur = err.source();
    }
    None
}

/// A connected client for the server at `path` (the socket's path on this machine).
pub struct CacheClient {
    path: PathBuf,
    timeout: Duration,
    inner: CacheServiceClient<Channel>,
}

impl CacheClient {
    /// Connects now, so that an absent server is reported as such (the Go client connects
    /// lazily and reports it at the first call, with the same text).
    pub async fn connect(path: &Path) -> Result<CacheClient, ClientError> {
        Self::connect_as(path, path).await
    }

    /// Connects to the socket at `path` on this machine; messages name it `shown` (the
    /// path as the host sees it, when a host root is in use).
    pub async fn connect_as(path: &Path, shown: &Path) -> Result<CacheClient, ClientError> {
        // The URI is a placeholder: the connector below ignores it and dials the socket.
        let timeout = call_timeout();
        let endpoint = Endpoint::from_static("http://localhost")
            .connect_timeout(CONNECT_TIMEOUT.min(timeout))
            .timeout(timeout);
        let sock = path.to_path_buf();
        let path = shown;
        let channel = endpoint
            .connect_with_connector(tower::service_fn(move |_| {
                let sock = sock.clone();
                async move {
                    let stream = UnixStream::connect(&sock)
                        .await
                        .map_err(|e| crate::errors::explain_not_a_socket(&sock, e))?;
                    Ok::<_, io::Error>(TokioIo::new(stream))
                }
            }))
            .await
            .map_err(|e| match find_io_error(&e) {
                Some(io) => ClientError::Connect {
                    path: path.to_path_buf(),
                    source: copy_io_error(io),
                },
                None => ClientError::Transport {
                    path: path.to_path_buf(),
                    message: e.to_string(),
                },
            })?;
        Ok(CacheClient {
            path: path.to_path_buf(),
            timeout,
            inner: CacheServiceClient::new(channel),
        })
    }

    pub async fn status(&mut self) -> Result<crate::cache::GrpcStatus, ClientError> {
        let started = Instant::now();
        self.inner
            .status(())
            .await
            .map(|r| r.into_inner())
            .map_err(|s| ClientError::from_status(&self.path, self.timeout, started, s))
    }

    pub async fn config(&mut self) -> Result<crate::cache::GrpcVmConfig, ClientError> {
        let started = Instant::now();
        self.inner
            .config(())
            .await
            .map(|r| r.into_inner())
            .map_err(|s| ClientError::from_status(&self.path, self.timeout, started, s))
    }

    pub async fn get_base_vm(&mut self) -> Result<crate::cache::GrpcVm, ClientError> {
        let started = Instant::now();
        self.inner
            .get_base_vm(())
            .await
            .map(|r| r.into_inner())
            .map_err(|s| ClientError::from_status(&self.path, self.timeout, started, s))
    }

    pub async fn quit(&mut self) -> Result<(), ClientError> {
        let started = Instant::now();
        self.inner
            .quit(())
            .await
            .map(drop)
            .map_err(|s| ClientError::from_status(&self.path, self.timeout, started, s))
    }
}

/// An owned copy of `e` that keeps its errno.
fn copy_io_error(e: &io::Error) -> io::Error {
    match e.raw_os_error() {
        Some(code) => io::Error::from_raw_os_error(code),
        None => io::Error::new(e.kind(), e.to_string()),
    }
}
