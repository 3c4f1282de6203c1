//! A fake shim-management server for tests: HTTP/1.1 on a Unix socket at
//! `<root>/run/vc/sbs/<id>/shim-monitor.sock` (Go shim) or `<root>/run/kata/<id>/…`
//! (runtime-rs), answering like the real shims (real-peers §1.2–§1.3), recording every request,
//! and misbehaving on demand. It runs on its own thread so tests can drive the real binary.
#![allow(dead_code)]

use std::convert::Infallible;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use http_body_util::combinators::BoxBody;
use http_body_util::{BodyExt, Full, StreamBody};
use hyper::body::{Frame, Incoming};
use hyper::{Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{UnixListener, UnixStream};

/// Which shim the fake pretends to be; decides the socket root and the 404 text.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Go,
    RuntimeRs,
}

impl Kind {
    pub fn root(self) -> &'static str {
        match self {
            Kind::Go => "run/vc/sbs",
            Kind::RuntimeRs => "run/kata",
        }
    }
}

/// How the fake answers.
#[derive(Debug, Clone)]
pub enum Mode {
    /// Real shim behaviour with the canned bodies in [`Canned`].
    Normal,
    /// Every request gets this status and text.
    Status(u16, &'static str),
    /// Read the request, never answer.
    Hang,
    /// Answer with bytes that are not HTTP.
    Garbage,
    /// Send a 200 with `Content-Length: 100000`, a few bytes of body, then close.
    CloseMidBody,
    /// Read the request and close without answering (runtime-rs handler errors).
    Drop,
    /// `/metrics` streams this many bytes of Prometheus text.
    BigMetrics(u64),
}

#[derive(Debug, Clone)]
pub struct Canned {
    pub metrics: &'static str,
    pub iptables: &'static str,
    pub ip6tables: &'static str,
    pub stats: &'static str,
    pub agent_url: &'static str,
}

impl Default for Canned {
    fn default() -> Self {
        Self {
            metrics: "# HELP kata_shim_threads Kata containerd shim v2 process threads.\n# TYPE kata_shim_threads gauge\nkata_shim_threads 12\n",
            iptables: "*filter\n:INPUT ACCEPT [0:0]\nCOMMIT\n",
            ip6tables: "*filter\n:INPUT ACCEPT [0:0]\n-A INPUT -s ::1 -j ACCEPT\nCOMMIT\n",
            stats: r#"{"usage":[{"available":8,"total":10,"used":2,"unit":1},{"available":80,"total":100,"used":20,"unit":2}],"volume_condition":{"message":"OK"}}"#,
            agent_url: "vsock://3:1024",
        }
    }
}

/// One request as the fake saw it.
#[derive(Debug, Clone)]
pub struct Recorded {
    pub method: String,
    pub path: String,
    pub query: Option<String>,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl Recorded {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

pub struct FakeShim {
    pub socket: PathBuf,
    pub requests: Arc<Mutex<Vec<Recorded>>>,
    shutdown: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl FakeShim {
    pub fn start(root: &Path, kind: Kind, id: &str, mode: Mode) -> Self {
        Self::start_with(root, kind, id, mode, Canned::default())
    }

    pub fn start_with(root: &Path, kind: Kind, id: &str, mode: Mode, canned: Canned) -> Self {
        let dir = root.join(kind.root()).join(id);
        std::fs::create_dir_all(&dir).unwrap();
        let socket = dir.join("shim-monitor.sock");
        let _ = std::fs::remove_file(&socket);
        let std_listener = std::os::unix::net::UnixListener::bind(&socket)
            .unwrap_or_else(|e| panic!("bind {}: {e}", socket.display()));
        std_listener.set_nonblocking(true).unwrap();
        let requests = Arc::new(Mutex::new(Vec::new()));
        let (tx, rx) = tokio::sync::oneshot::channel();
        let recs = requests.clone();
        let thread = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_multi_thread()
                .worker_threads(2)
                .enable_all()
                .build()
                .unwrap();
            rt.block_on(async move {
                let listener = UnixListener::from_std(std_listener).unwrap();
                let state = Arc::new(State {
                    kind,
                    mode,
                    canned,
                    requests: recs,
                });
                tokio::select! {
                    _ = rx => {}
                    _ = accept_loop(listener, state) => {}
                }
            });
            rt.shutdown_background();
        });
        Self {
            socket,
            requests,
            shutdown: Some(tx),
            thread: Some(thread),
        }
    }

    pub fn requests(&self) -> Vec<Recorded> {
        self.requests.lock().unwrap().clone()
    }
}

impl Drop for FakeShim {
    fn drop(&mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

struct State {
    kind: Kind,
    mode: Mode,
    canned: Canned,
    requests: Arc<Mutex<Vec<Recorded>>>,
}

async fn accept_loop(listener: UnixListener, state: Arc<State>) {
    loop {
        let Ok((stream, _)) = listener.accept().await else {
            continue;
        };
        let state = state.clone();
        tokio::spawn(async move { handle(stream, state).await });
    }
}

/// Reads one request head (and a body of `Content-Length`) off a raw stream and records it.
async fn read_raw_request(stream: &mut UnixStream, state: &State) {
    let mut buf = Vec::new();
    let mut chunk = [0u8; 4096];
    let head_end = loop {
        if let Some(i) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            break i + 4;
        }
        match stream.read(&mut chunk).await {
            Ok(0) | Err(_) => return,
            Ok(n) => buf.extend_from_slice(&chunk[..n]),
        }
    };
    let head = String::from_utf8_lossy(&buf[..head_end]).into_owned();
    let mut lines = head.split("\r\n");
    let mut first = lines.next().unwrap_or("").split(' ');
    let method = first.next().unwrap_or("").to_string();
    let target = first.next().unwrap_or("").to_string();
    let headers: Vec<(String, String)> = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_string(), v.trim().to_string()))
        .collect();
    let len: usize = headers
        .iter()
        .find(|(k, _)| k.eq_ignore_ascii_case("content-length"))
        .and_then(|(_, v)| v.parse().ok())
        .unwrap_or(0);
    let mut body = buf[head_end..].to_vec();
    while body.len() < len {
        match stream.read(&mut chunk).await {
            Ok(0) | Err(_) => break,
            Ok(n) => body.extend_from_slice(&chunk[..n]),
        }
    }
    let (path, query) = match target.split_once('?') {
        Some((p, q)) => (p.to_string(), Some(q.to_string())),
        None => (target, None),
    };
    state.requests.lock().unwrap().push(Recorded {
        method,
        path,
        query,
        headers,
        body,
    });
}

async fn handle(mut stream: UnixStream, state: Arc<State>) {
    match state.mode {
        Mode::Hang => {
            read_raw_request(&mut stream, &state).await;
            tokio::time::sleep(std::time::Duration::from_secs(3600)).await;
        }
        Mode::Garbage => {
            read_raw_request(&mut stream, &state).await;
            let _ = stream
                .write_all(b"SSH-2.0-OpenSSH_9.2 not an http server\r\n\r\n")
                .await;
        }
        Mode::CloseMidBody => {
            read_raw_request(&mut stream, &state).await;
            let _ = stream
                .write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 100000\r\n\r\nkata_shim_threads 1")
                .await;
            let _ = stream.flush().await;
        }
        Mode::Drop => {
            read_raw_request(&mut stream, &state).await;
        }
        _ => {
            let svc_state = state.clone();
            let svc = hyper::service::service_fn(move |req| {
                let st = svc_state.clone();
                async move { Ok::<_, Infallible>(serve(req, &st).await) }
            });
            let _ = hyper::server::conn::http1::Builder::new()
                .serve_connection(TokioIo::new(stream), svc)
                .await;
        }
    }
}

type Body = BoxBody<Bytes, Infallible>;

fn text(status: u16, body: impl Into<Bytes>) -> Response<Body> {
    Response::builder()
        .status(StatusCode::from_u16(status).unwrap())
        .header("content-type", "text/plain; charset=utf-8")
        .body(Full::new(body.into()).boxed())
        .unwrap()
}

/// Prometheus text of exactly `size` bytes, produced in 64 KiB chunks as the client reads.
fn big_metrics(size: u64) -> Body {
    const CHUNK: usize = 64 * 1024;
    let line = b"kata_guest_meminfo{item=\"active\"} 1.2345678e+09\n";
    let mut block = Vec::with_capacity(CHUNK);
    while block.len() < CHUNK {
        block.extend_from_slice(line);
    }
    block.truncate(CHUNK);
    let block = Bytes::from(block);
    let full = size / CHUNK as u64;
    let rest = (size % CHUNK as u64) as usize;
    let mut chunks: Vec<Bytes> = Vec::new();
    chunks.resize(full as usize, block.clone());
    if rest > 0 {
        chunks.push(block.slice(..rest));
    }
    let stream = tokio_stream::iter(chunks.into_iter().map(|b| Ok(Frame::data(b))));
    StreamBody::new(stream).boxed()
}

async fn serve(req: Request<Incoming>, st: &State) -> Response<Body> {
    let method = req.method().as_str().to_string();
    let path = req.uri().path().to_string();
    let query = req.uri().query().map(str::to_string);
    let headers = req
        .headers()
        .iter()
        .map(|(k, v)| {
            (
                k.to_string(),
                String::from_utf8_lossy(v.as_bytes()).into_owned(),
            )
        })
        .collect();
    let body = req
        .into_body()
        .collect()
        .await
        .map(|c| c.to_bytes().to_vec())
        .unwrap_or_default();
    st.requests.lock().unwrap().push(Recorded {
        method: method.clone(),
        path: path.clone(),
        query,
        headers,
        body,
    });
    if let Mode::Status(code, msg) = st.mode {
        return text(code, msg);
    }
    let c = &st.canned;
    match (st.kind, method.as_str(), path.as_str()) {
        (_, "GET", "/metrics") => match st.mode {
            Mode::BigMetrics(n) => Response::builder()
                .header("content-type", "text/plain; version=0.0.4")
                .body(big_metrics(n))
                .unwrap(),
            _ => text(200, c.metrics),
        },
        (_, "GET", "/agent-url") => text(200, c.agent_url),
        (_, "GET", "/iptables") => text(200, c.iptables),
        (_, "GET", "/ip6tables") => text(200, c.ip6tables),
        (Kind::Go, "PUT", "/iptables" | "/ip6tables") => text(200, ""),
        (Kind::RuntimeRs, "PUT", "/iptables" | "/ip6tables") => text(200, "agent says ok"),
        (Kind::Go, _, "/iptables" | "/ip6tables") => text(501, ""),
        (Kind::Go, _, "/direct-volume/stats") => text(200, c.stats),
        (Kind::RuntimeRs, "POST", "/direct-volume/stats") => {
            text(200, "Usage: [] Volume Condition: None")
        }
        (_, "POST", "/direct-volume/resize") => text(200, ""),
        (Kind::Go, _, _) => text(404, "404 page not found\n"),
        (Kind::RuntimeRs, _, _) => text(404, "URL NOT FOUND"),
    }
}
