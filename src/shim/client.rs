//! One HTTP/1.1 exchange with a shim-monitor socket: a fresh connection per request (as the
//! Go client, which disables keep-alive), `Host: shim`, and one deadline for the whole
//! exchange whose expiry names the step that was slow.

use std::io::Write;
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::header::{ACCEPT_ENCODING, CONNECTION, CONTENT_LENGTH, CONTENT_TYPE, HOST, USER_AGENT};
use hyper::{Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use tokio::net::UnixStream;
use tokio::time::{Instant, timeout_at};

use super::{Sandbox, ShimError, Step};

/// The longest path a `sockaddr_un` holds (108 bytes including the terminating NUL).
const SUN_PATH_MAX: usize = 107;

/// The `User-Agent` Go's HTTP client sends; shims see exactly the Go tool's request bytes.
const GO_USER_AGENT: &str = "Go-http-client/1.1";

/// How much of an error body we keep for the message.
const ERROR_BODY_LIMIT: usize = 64 * 1024;

/// The largest answer body buffered whole (`metrics` and `iptables get` stream theirs). Real
/// answers to these requests (agent URL, volume stats, empty set/resize replies) are a few
/// hundred bytes.
pub const BODY_LIMIT: usize = 4 * 1024 * 1024;

/// `GET path_and_query`; the body of a 200 answer, else [`ShimError::Status`] with the shim's text.
pub async fn get(
    sandbox: &Sandbox,
    path_and_query: &str,
    timeout: Duration,
) -> Result<Bytes, ShimError> {
    let ex = Exchange::new(sandbox, "GET", path_and_query, timeout);
    let (resp, _conn) = ex.send(None).await?;
    ex.collect(resp).await
}

/// `PUT path_and_query` with `body` of type `content_type`; the body of a 200 answer.
pub async fn put(
    sandbox: &Sandbox,
    path_and_query: &str,
    content_type: &str,
    body: Bytes,
    timeout: Duration,
) -> Result<Bytes, ShimError> {
    send_body(sandbox, "PUT", path_and_query, content_type, body, timeout).await
}

/// `POST path_and_query` with `body` of type `content_type`; the body of a 200 answer.
pub async fn post(
    sandbox: &Sandbox,
    path_and_query: &str,
    content_type: &str,
    body: Bytes,
    timeout: Duration,
) -> Result<Bytes, ShimError> {
    send_body(sandbox, "POST", path_and_query, content_type, body, timeout).await
}

async fn send_body(
    sandbox: &Sandbox,
    method: &'static str,
    path_and_query: &str,
    content_type: &str,
    body: Bytes,
    timeout: Duration,
) -> Result<Bytes, ShimError> {
    let ex = Exchange::new(sandbox, method, path_and_query, timeout);
    let (resp, _conn) = ex.send(Some((content_type, body))).await?;
    ex.collect(resp).await
}

/// `GET path_and_query` and write a 200 answer's body to `out` chunk by chunk as it arrives,
/// so a large body is never held whole. Nothing is written unless the status is 200.
/// Returns the number of body bytes written.
pub async fn get_to_writer(
    sandbox: &Sandbox,
    path_and_query: &str,
    timeout: Duration,
    out: &mut dyn Write,
) -> Result<u64, ShimError> {
    let ex = Exchange::new(sandbox, "GET", path_and_query, timeout);
    let (resp, _conn) = ex.send(None).await?;
    let resp = ex.check_status(resp).await?;
    let mut body = resp.into_body();
    let mut total = 0u64;
    while let Some(frame) = ex
        .step(Step::ReadingBody, async { body.frame().await.transpose() })
        .await?
    {
        if let Ok(data) = frame.into_data() {
            out.write_all(&data).map_err(ShimError::Output)?;
            total += data.len() as u64;
        }
    }
    Ok(total)
}

/// Aborts the connection task when the exchange is over, whichever way it ended.
struct ConnTask(tokio::task::JoinHandle<()>);

impl Drop for ConnTask {
    fn drop(&mut self) {
        self.0.abort();
    }
}

struct Exchange<'a> {
    sandbox: &'a Sandbox,
    method: &'static str,
    path: &'a str,
    timeout: Duration,
    deadline: Instant,
}

impl<'a> Exchange<'a> {
    fn new(sandbox: &'a Sandbox, method: &'static str, path: &'a str, timeout: Duration) -> Self {
        Self {
            sandbox,
            method,
            path,
            timeout,
            deadline: Instant::now() + timeout,
        }
    }

    /// Runs one step of the exchange against the deadline, mapping failures to that step.
    async fn step<T>(
        &self,
        step: Step,
        fut: impl Future<Output = Result<T, hyper::Error>>,
    ) -> Result<T, ShimError> {
        match timeout_at(self.deadline, fut).await {
            Err(_) => Err(self.timed_out(step)),
            Ok(Err(cause)) => Err(ShimError::Transport {
                id: self.sandbox.id.clone(),
                socket: self.sandbox.host_path.clone(),
                method: self.method,
                path: self.path.to_string(),
                step,
                dialect: self.sandbox.dialect,
                cause,
            }),
            Ok(Ok(v)) => Ok(v),
        }
    }

    fn timed_out(&self, step: Step) -> ShimError {
        ShimError::Timeout {
            id: self.sandbox.id.clone(),
            socket: self.sandbox.host_path.clone(),
            method: self.method,
            path: self.path.to_string(),
            step,
            after: self.timeout,
        }
    }

    async fn send(
        &self,
        body: Option<(&str, Bytes)>,
    ) -> Result<(Response<Incoming>, ConnTask), ShimError> {
        let sb = self.sandbox;
        let len = sb.socket.as_os_str().len();
        if len > SUN_PATH_MAX {
            return Err(ShimError::SocketPathTooLong {
                socket: sb.socket.clone(),
                len,
            });
        }
        let stream = match timeout_at(self.deadline, UnixStream::connect(&sb.socket)).await {
            Err(_) => return Err(self.timed_out(Step::Connecting)),
            Ok(Err(cause)) => {
                return Err(ShimError::Connect {
                    id: sb.id.clone(),
                    socket: sb.host_path.clone(),
                    cause: crate::errors::explain_not_a_socket(&sb.socket, cause),
                });
            }
            Ok(Ok(s)) => s,
        };
        let (mut sender, conn) = self
            .step(
                Step::Handshake,
                // Title-case header names, as Go's client writes them (spec §6.1).
                hyper::client::conn::http1::Builder::new()
                    .title_case_headers(true)
                    .handshake::<_, Full<Bytes>>(TokioIo::new(stream)),
            )
            .await?;
        // The connection is driven by its own task; its errors also surface through
        // `send_request` and the body, so the task's own result is not needed.
        let task = ConnTask(tokio::spawn(async move {
            let _ = conn.await;
        }));

        // The header lines and their order are the Go client's, byte for byte (spec §6.1):
        // Host, User-Agent, [Content-Length, Content-Type,] Accept-Encoding, Connection.
        // Go's HTTP server rejects requests without a Host header (real-peers §1.2).
        let mut req = Request::builder()
            .method(self.method)
            .uri(self.path)
            .header(HOST, "shim")
            .header(USER_AGENT, GO_USER_AGENT);
        let body = match body {
            Some((content_type, bytes)) => {
                req = req
                    .header(CONTENT_LENGTH, bytes.len())
                    .header(CONTENT_TYPE, content_type);
                bytes
            }
            None => Bytes::new(),
        };
        // Shims never compress their answers; the header is sent only to match Go's bytes.
        let req = req
            .header(ACCEPT_ENCODING, "gzip")
            .header(CONNECTION, "close");
        let req = req
            .body(Full::new(body))
            .map_err(|cause| ShimError::Request {
                method: self.method,
                path: self.path.to_string(),
                cause,
            })?;
        let resp = self
            .step(Step::AwaitingHeaders, sender.send_request(req))
            .await?;
        Ok((resp, task))
    }

    /// Passes a 200 answer through; turns anything else into [`ShimError::Status`] carrying
    /// (the start of) the shim's error text (spec Q38: the Go tool printed it and exited 0).
    async fn check_status(
        &self,
        resp: Response<Incoming>,
    ) -> Result<Response<Incoming>, ShimError> {
        let status = resp.status();
        if status == StatusCode::OK {
            return Ok(resp);
        }
        let mut body = resp.into_body();
        let mut text = BytesMut::new();
        // Best effort: a shim that stalls or drops the connection after the status line still
        // gets its status reported.
        while text.len() < ERROR_BODY_LIMIT {
            match timeout_at(self.deadline, body.frame()).await {
                Ok(Some(Ok(frame))) => {
                    if let Ok(data) = frame.into_data() {
                        text.extend_from_slice(&data);
                    }
                }
                _ => break,
            }
        }
        text.truncate(ERROR_BODY_LIMIT);
        Err(ShimError::Status {
            id: self.sandbox.id.clone(),
            socket: self.sandbox.host_path.clone(),
            method: self.method,
            path: self.path.to_string(),
            status: status.as_u16(),
            body: String::from_utf8_lossy(&text).into_owned(),
        })
    }

    /// The whole body of a 200 answer, at most [`BODY_LIMIT`] bytes: a peer that streams
    /// without end must not make us buffer until the deadline (hundreds of MiB on a fast
    /// socket).
    async fn collect(&self, resp: Response<Incoming>) -> Result<Bytes, ShimError> {
        let resp = self.check_status(resp).await?;
        let mut body = resp.into_body();
        let mut text = BytesMut::new();
        while let Some(frame) = self
            .step(Step::ReadingBody, async { body.frame().await.transpose() })
            .await?
        {
            if let Ok(data) = frame.into_data() {
                if text.len() + data.len() > BODY_LIMIT {
                    return Err(ShimError::TooLarge {
                        id: self.sandbox.id.clone(),
                        socket: self.sandbox.host_path.clone(),
                        method: self.method,
                        path: self.path.to_string(),
                        limit: BODY_LIMIT,
                    });
                }
                text.extend_from_slice(&data);
            }
        }
        Ok(text.freeze())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::paths::HostRoot;
    use crate::shim::{Dialect, resolve_sandbox};
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    /// A one-shot server: reads the request head, answers `reply`, returns the request text.
    async fn serve_once(listener: tokio::net::UnixListener, reply: &'static [u8]) -> String {
        let (mut s, _) = listener.accept().await.unwrap();
        let mut buf = Vec::new();
        let mut chunk = [0u8; 1024];
        while !buf.windows(4).any(|w| w == b"\r\n\r\n") {
            let n = s.read(&mut chunk).await.unwrap();
            if n == 0 {
                break;
            }
            buf.extend_from_slice(&chunk[..n]);
        }
        s.write_all(reply).await.unwrap();
        String::from_utf8_lossy(&buf).into_owned()
    }

    #[tokio::test]
    async fn get_sends_host_shim_and_returns_the_body_or_the_status_text() {
        let t = tempfile::tempdir().unwrap();
        let host = HostRoot::new(t.path());
        let dir = t.path().join("run/vc/sbs/sb1");
        std::fs::create_dir_all(&dir).unwrap();
        let sock = dir.join("shim-monitor.sock");
        let listener = tokio::net::UnixListener::bind(&sock).unwrap();
        let sb = resolve_sandbox(&host, "sb1").unwrap();
        assert_eq!(sb.dialect, Dialect::GoShim);

        let server = tokio::spawn(serve_once(
            listener,
            b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhello",
        ));
        let body = get(&sb, "/agent-url", Duration::from_secs(3))
            .await
            .unwrap();
        assert_eq!(&body[..], b"hello");
        let head = server.await.unwrap();
        assert_eq!(
            head,
            "GET /agent-url HTTP/1.1\r\nHost: shim\r\nUser-Agent: Go-http-client/1.1\r\nAccept-Encoding: gzip\r\nConnection: close\r\n\r\n",
            "the request bytes are the Go client's (spec §6.1)"
        );

        std::fs::remove_file(&sock).unwrap();
        let listener = tokio::net::UnixListener::bind(&sock).unwrap();
        tokio::spawn(serve_once(
            listener,
            b"HTTP/1.1 500 Internal Server Error\r\nContent-Length: 4\r\n\r\nboom",
        ));
        let err = get(&sb, "/agent-url", Duration::from_secs(3))
            .await
            .unwrap_err();
        assert!(err.is_status());
        assert_eq!(
            err.to_string(),
            "the shim of sandbox sb1 (/run/vc/sbs/sb1/shim-monitor.sock) answered GET /agent-url with HTTP 500: boom"
        );
    }

    #[tokio::test]
    async fn put_sends_the_go_clients_header_lines_in_order() {
        let t = tempfile::tempdir().unwrap();
        let host = HostRoot::new(t.path());
        let dir = t.path().join("run/vc/sbs/sb1");
        std::fs::create_dir_all(&dir).unwrap();
        let listener = tokio::net::UnixListener::bind(dir.join("shim-monitor.sock")).unwrap();
        let sb = resolve_sandbox(&host, "sb1").unwrap();
        let server = tokio::spawn(serve_once(
            listener,
            b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n",
        ));
        put(
            &sb,
            "/iptables",
            "application/octet-stream",
            Bytes::from_static(b"rules"),
            Duration::from_secs(3),
        )
        .await
        .unwrap();
        let head = server.await.unwrap();
        assert!(
            head.starts_with(
                "PUT /iptables HTTP/1.1\r\nHost: shim\r\nUser-Agent: Go-http-client/1.1\r\nContent-Length: 5\r\nContent-Type: application/octet-stream\r\nAccept-Encoding: gzip\r\nConnection: close\r\n\r\n"
            ),
            "{head}"
        );
    }
}
