//! Misbehaving peers for the fault matrix (`tests/faults.rs`): every way the far end of a
//! Unix socket can let a client command down, set up at any socket path, plus a runner that
//! executes the real binary and records its exit, output, wall time and peak RSS.
//!
//! The peers speak raw bytes on purpose: they must stay broken in the same way whatever the
//! protocol on top (HTTP/1.1 for the shim-monitor API, HTTP/2 for the factory's gRPC).
#![allow(dead_code)]

use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::os::unix::fs::PermissionsExt;
use std::os::unix::net::{UnixListener, UnixStream};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// The uid and gid the permission cases drop to (`nobody`, `nogroup`).
pub const NOBODY: u32 = 65534;

/// One way the peer misbehaves.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Peer {
    /// A socket file with no listener behind it (a crashed shim): `ECONNREFUSED`.
    Refused,
    /// No socket at all (the sandbox directory exists, the socket does not).
    Missing,
    /// A regular file where the socket should be.
    RegularFile,
    /// A live socket of mode 0600 owned by root; the command runs as `nobody`.
    PermissionDenied,
    /// A live socket inside a directory without search permission for the caller (mode
    /// 0700, owned by root); the command runs as `nobody`.
    PermissionDeniedDir,
    /// Accepts, reads the request, never answers.
    Hang,
    /// Listens but never accepts: the connection sits in the backlog.
    NoAccept,
    /// Answers with bytes that are not the protocol.
    Garbage,
    /// Accepts, reads the request and closes without a byte.
    EarlyClose,
    /// Sends a success header promising 100000 bytes, a few of them, then closes.
    CloseMidBody,
    /// A success header promising a terabyte, then body bytes as fast as the client reads
    /// them, for ever.
    HugeBody,
    /// A status line followed by header lines that never end.
    HugeHeaders,
    /// Line protocols (the hybrid-vsock `CONNECT` handshake): half a reply line, then close.
    HalfReply,
    /// Line protocols: bytes without a newline, for ever.
    EndlessLine,
    /// Line protocols: a correct `OK <port>` reply, then close.
    OkThenClose,
    /// Line protocols: a correct `OK <port>` reply, then garbage, then close.
    OkThenGarbage,
}

impl Peer {
    /// The peers for request/response protocols (HTTP/1.1, gRPC).
    pub const ALL: [Peer; 12] = [
        Peer::Refused,
        Peer::Missing,
        Peer::RegularFile,
        Peer::PermissionDenied,
        Peer::PermissionDeniedDir,
        Peer::Hang,
        Peer::NoAccept,
        Peer::Garbage,
        Peer::EarlyClose,
        Peer::CloseMidBody,
        Peer::HugeBody,
        Peer::HugeHeaders,
    ];

    /// The peers for a line-based handshake (a VMM's hybrid-vsock socket).
    pub const LINE: [Peer; 13] = [
        Peer::Refused,
        Peer::Missing,
        Peer::RegularFile,
        Peer::PermissionDenied,
        Peer::Hang,
        Peer::NoAccept,
        Peer::Garbage,
        Peer::EarlyClose,
        Peer::HalfReply,
        Peer::EndlessLine,
        Peer::HugeBody,
        Peer::OkThenClose,
        Peer::OkThenGarbage,
    ];

    /// The command must run as `nobody` for this fault to show (root bypasses permissions).
    pub fn needs_nobody(self) -> bool {
        matches!(self, Peer::PermissionDenied | Peer::PermissionDeniedDir)
    }
}

/// A peer installed at a socket path; stops serving (and lets hung connections go) on drop.
pub struct FaultPeer {
    pub socket: PathBuf,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
    /// Kept open so a `NoAccept` socket keeps its backlog.
    _listener: Option<UnixListener>,
}

impl FaultPeer {
    /// Installs `peer` at `socket`, creating the parent directories.
    pub fn install(socket: &Path, peer: Peer) -> Self {
        let dir = socket.parent().expect("socket has a parent");
        std::fs::create_dir_all(dir).unwrap();
        open_up(dir);
        let _ = std::fs::remove_file(socket);
        let stop = Arc::new(AtomicBool::new(false));
        let mut me = Self {
            socket: socket.to_path_buf(),
            stop: stop.clone(),
            thread: None,
            _listener: None,
        };
        match peer {
            Peer::Missing => {}
            Peer::RegularFile => std::fs::write(socket, b"not a socket\n").unwrap(),
            Peer::Refused => {
                // Binding creates the file; dropping the listener leaves it behind unserved.
                drop(bind(socket));
            }
            Peer::NoAccept => me._listener = Some(bind(socket)),
            Peer::PermissionDenied => {
                me.thread = Some(serve(bind(socket), Peer::Garbage, stop));
                std::fs::set_permissions(socket, std::fs::Permissions::from_mode(0o600)).unwrap();
            }
            Peer::PermissionDeniedDir => {
                me.thread = Some(serve(bind(socket), Peer::Garbage, stop));
                std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700)).unwrap();
            }
            other => me.thread = Some(serve(bind(socket), other, stop)),
        }
        me
    }
}

impl FaultPeer {
    /// A well-behaved HTTP/1.1 peer that answers every request with 200 and `body` (the
    /// shim side of a test whose fault is further on, e.g. at the VMM).
    pub fn http_ok(socket: &Path, body: &'static str) -> Self {
        let dir = socket.parent().expect("socket has a parent");
        std::fs::create_dir_all(dir).unwrap();
        open_up(dir);
        let _ = std::fs::remove_file(socket);
        let stop = Arc::new(AtomicBool::new(false));
        let listener = bind(socket);
        // Open to everyone: the fault under test is elsewhere, also for commands run as nobody.
        std::fs::set_permissions(socket, std::fs::Permissions::from_mode(0o666)).unwrap();
        listener.set_nonblocking(true).unwrap();
        let flag = stop.clone();
        let thread = std::thread::spawn(move || {
            while !flag.load(Ordering::SeqCst) {
                match listener.accept() {
                    Ok((mut stream, _)) => {
                        read_request(&mut stream);
                        let _ = write!(
                            stream,
                            "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                            body.len()
                        );
                    }
                    Err(_) => std::thread::sleep(Duration::from_millis(5)),
                }
            }
        });
        Self {
            socket: socket.to_path_buf(),
            stop,
            thread: Some(thread),
            _listener: None,
        }
    }
}

impl Drop for FaultPeer {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

fn bind(socket: &Path) -> UnixListener {
    UnixListener::bind(socket).unwrap_or_else(|e| panic!("bind {}: {e}", socket.display()))
}

/// Accept loop on its own thread; each connection gets a thread running `peer`.
fn serve(listener: UnixListener, peer: Peer, stop: Arc<AtomicBool>) -> JoinHandle<()> {
    listener.set_nonblocking(true).unwrap();
    std::thread::spawn(move || {
        while !stop.load(Ordering::SeqCst) {
            match listener.accept() {
                Ok((stream, _)) => {
                    let stop = stop.clone();
                    std::thread::spawn(move || misbehave(stream, peer, &stop));
                }
                Err(_) => std::thread::sleep(Duration::from_millis(5)),
            }
        }
    })
}

/// Reads what the client sends first (an HTTP request head, or an HTTP/2 preface and
/// settings), for at most 200 ms.
fn read_request(stream: &mut UnixStream) {
    stream.set_nonblocking(false).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_millis(200)))
        .unwrap();
    let mut buf = Vec::new();
    let mut chunk = [0u8; 4096];
    // An HTTP head ends with an empty line; a hybrid-vsock `CONNECT <port>` is one line.
    loop {
        let http_head = buf.windows(4).any(|w| w == b"\r\n\r\n");
        let connect_line = buf.starts_with(b"CONNECT ") && buf.contains(&b'\n');
        if http_head || connect_line {
            break;
        }
        match stream.read(&mut chunk) {
            Ok(0) | Err(_) => break,
            Ok(n) => buf.extend_from_slice(&chunk[..n]),
        }
    }
}

fn misbehave(mut stream: UnixStream, peer: Peer, stop: &AtomicBool) {
    read_request(&mut stream);
    let _ = stream.set_write_timeout(Some(Duration::from_millis(100)));
    match peer {
        Peer::Hang => {
            while !stop.load(Ordering::SeqCst) {
                std::thread::sleep(Duration::from_millis(10));
            }
        }
        Peer::Garbage => {
            let _ = stream.write_all(b"SSH-2.0-OpenSSH_9.2 \x00\xff\xfe not a shim\r\n\r\n");
            // Keep the connection open a little so the client reads the bytes, not an EOF.
            std::thread::sleep(Duration::from_millis(50));
        }
        Peer::EarlyClose => {}
        Peer::CloseMidBody => {
            let _ = stream.write_all(
                b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 100000\r\n\r\nkata_shim_threads 1\n",
            );
        }
        Peer::HugeBody => {
            let _ = stream.write_all(
                b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 1099511627776\r\n\r\n",
            );
            endless(
                &mut stream,
                stop,
                b"kata_guest_meminfo{item=\"active\"} 1.2345678e+09\n",
            );
        }
        Peer::HugeHeaders => {
            let _ = stream.write_all(b"HTTP/1.1 200 OK\r\n");
            endless(
                &mut stream,
                stop,
                b"X-Filler: aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa\r\n",
            );
        }
        Peer::HalfReply => {
            let _ = stream.write_all(b"OK 10");
        }
        Peer::EndlessLine => endless(&mut stream, stop, b"AAAAAAAAAAAAAAAA"),
        Peer::OkThenClose => {
            let _ = stream.write_all(b"OK 1073741824\n");
        }
        Peer::OkThenGarbage => {
            let _ = stream.write_all(b"OK 1073741824\n\x00\xff\x1b[2J garbage \xfe\xfd\r\n");
            std::thread::sleep(Duration::from_millis(50));
        }
        Peer::Refused
        | Peer::Missing
        | Peer::RegularFile
        | Peer::NoAccept
        | Peer::PermissionDenied
        | Peer::PermissionDeniedDir => unreachable!("no connection for {peer:?}"),
    }
}

/// Writes `line` repeated in 64 KiB blocks until the client goes away or the peer stops.
fn endless(stream: &mut UnixStream, stop: &AtomicBool, line: &[u8]) {
    let mut block = Vec::with_capacity(64 * 1024 + line.len());
    while block.len() < 64 * 1024 {
        block.extend_from_slice(line);
    }
    while !stop.load(Ordering::SeqCst) {
        match stream.write_all(&block) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {}
            Err(e) if e.kind() == std::io::ErrorKind::TimedOut => {}
            Err(_) => return,
        }
    }
}

/// Everything under `root`: relative path → (kind and mode, contents of regular files).
/// Two snapshots are equal when nothing was created, removed, changed or left half-written.
pub fn snapshot(root: &Path) -> BTreeMap<PathBuf, (String, Vec<u8>)> {
    let mut out = BTreeMap::new();
    walk(root, root, &mut out);
    out
}

fn walk(root: &Path, dir: &Path, out: &mut BTreeMap<PathBuf, (String, Vec<u8>)>) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for e in entries.flatten() {
        let p = e.path();
        let rel = p.strip_prefix(root).unwrap().to_path_buf();
        let Ok(m) = std::fs::symlink_metadata(&p) else {
            continue;
        };
        let kind = format!("{:?} {:o}", m.file_type(), m.permissions().mode());
        if m.is_dir() {
            out.insert(rel, (kind, Vec::new()));
            walk(root, &p, out);
        } else if m.is_file() {
            out.insert(rel, (kind, std::fs::read(&p).unwrap_or_default()));
        } else {
            out.insert(rel, (kind, Vec::new()));
        }
    }
}

/// Makes `path` and every directory above it up to `/` traversable and readable for others,
/// so that a command run as `nobody` reaches what the test set up.
pub fn open_up(path: &Path) {
    let mut p = Some(path);
    while let Some(dir) = p {
        if let Ok(m) = std::fs::metadata(dir) {
            let mode = m.permissions().mode();
            let want = if m.is_dir() {
                mode | 0o555
            } else {
                mode | 0o444
            };
            if want != mode {
                let _ = std::fs::set_permissions(dir, std::fs::Permissions::from_mode(want));
            }
        }
        p = dir.parent();
    }
}

/// Recursively makes a tree readable (and its directories traversable) for others.
pub fn open_tree(root: &Path) {
    open_up(root);
    let Ok(entries) = std::fs::read_dir(root) else {
        return;
    };
    for e in entries.flatten() {
        let p = e.path();
        let Ok(m) = std::fs::symlink_metadata(&p) else {
            continue;
        };
        if m.is_dir() {
            open_tree(&p);
        } else if m.is_file() {
            let mode = m.permissions().mode() | 0o444;
            let _ = std::fs::set_permissions(&p, std::fs::Permissions::from_mode(mode));
        }
    }
}

/// What one run of the binary did.
#[derive(Debug)]
pub struct Run {
    /// `Some(code)` for a normal exit, `None` when killed by a signal (a panic with
    /// `panic = "abort"`, or our own kill after the guard time).
    pub code: Option<i32>,
    pub signal: Option<i32>,
    /// The first 64 KiB of stdout and the total byte count.
    pub stdout_head: Vec<u8>,
    pub stdout_len: u64,
    pub stderr: String,
    pub elapsed: Duration,
    /// Peak resident set size of the command in KiB, when `/usr/bin/time` is there to
    /// measure it.
    pub max_rss_kib: Option<u64>,
    pub killed_by_guard: bool,
}

impl Run {
    pub fn stdout_text(&self) -> String {
        String::from_utf8_lossy(&self.stdout_head).into_owned()
    }
}

/// Reads a pipe to its end, keeping the first 64 KiB.
fn drain(mut r: impl Read + Send + 'static) -> JoinHandle<(Vec<u8>, u64)> {
    std::thread::spawn(move || {
        let mut head = Vec::new();
        let mut total = 0u64;
        let mut buf = vec![0u8; 64 * 1024];
        loop {
            match r.read(&mut buf) {
                Ok(0) | Err(_) => break,
                Ok(n) => {
                    if head.len() < 64 * 1024 {
                        let keep = n.min(64 * 1024 - head.len());
                        head.extend_from_slice(&buf[..keep]);
                    }
                    total += n as u64;
                }
            }
        }
        (head, total)
    })
}

/// GNU time, which reports a child's peak RSS. `wait4` on our own child cannot: Linux
/// carries the RSS high-water mark of the spawning process across `exec`, so a child of a
/// big test process looks big.
pub const GNU_TIME: &str = "/usr/bin/time";

/// Runs `bin args` with `envs` (stdin closed, stdout and stderr captured), optionally as
/// `nobody`, under GNU time when it exists, killing the whole process group after `guard`
/// so a missing timeout fails the test instead of hanging it.
pub fn run(
    bin: &Path,
    args: &[String],
    envs: &[(&str, String)],
    as_nobody: bool,
    guard: Duration,
) -> Run {
    let report = tempfile::Builder::new()
        .prefix("kfr")
        .tempdir_in("/tmp")
        .unwrap();
    let report_file = report.path().join("time.txt");
    let timed = Path::new(GNU_TIME).is_file();
    let mut cmd = if timed {
        open_up(report.path());
        std::fs::set_permissions(report.path(), std::fs::Permissions::from_mode(0o777)).unwrap();
        let mut c = Command::new(GNU_TIME);
        c.arg("-f")
            .arg("rss_kib=%M")
            .arg("-o")
            .arg(&report_file)
            .arg(bin);
        c
    } else {
        Command::new(bin)
    };
    cmd.args(args)
        .envs(envs.iter().map(|(k, v)| (k, v)))
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .process_group(0);
    if as_nobody {
        // std clears the supplementary groups when root changes the uid.
        cmd.uid(NOBODY).gid(NOBODY);
    }
    let start = Instant::now();
    let mut child = cmd.spawn().expect("spawn kata-runtime");
    let out = drain(child.stdout.take().unwrap());
    let err = drain(child.stderr.take().unwrap());
    let pgid = child.id() as libc::pid_t;
    let mut killed_by_guard = false;
    let status = loop {
        if let Some(st) = child.try_wait().unwrap() {
            break st;
        }
        if start.elapsed() > guard && !killed_by_guard {
            // SAFETY: kill(2) on our child's own process group (it was made a group leader
            // by `process_group(0)` and has not been reaped, so the id is still ours).
            unsafe { libc::kill(-pgid, libc::SIGKILL) };
            killed_by_guard = true;
        }
        std::thread::sleep(Duration::from_millis(2));
    };
    let elapsed = start.elapsed();
    let (stdout_head, stdout_len) = out.join().unwrap();
    let (stderr, _) = err.join().unwrap();
    use std::os::unix::process::ExitStatusExt;
    let (mut code, mut signal) = (status.code(), status.signal());
    let mut max_rss_kib = None;
    if timed && !killed_by_guard {
        let text = std::fs::read_to_string(&report_file).unwrap_or_default();
        for line in text.lines() {
            if let Some(v) = line.strip_prefix("rss_kib=") {
                max_rss_kib = v.trim().parse().ok();
            } else if let Some(v) = line.strip_prefix("Command terminated by signal ") {
                code = None;
                signal = v.trim().parse().ok();
            }
        }
    }
    Run {
        code,
        signal,
        stdout_head,
        stdout_len,
        stderr: String::from_utf8_lossy(&stderr).into_owned(),
        elapsed,
        max_rss_kib,
        killed_by_guard,
    }
}

/// True when `nobody` can run `bin`; otherwise the reason it cannot (for a skip message).
pub fn nobody_can_run(bin: &Path) -> Result<(), String> {
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } != 0 {
        return Err("not running as root, so cannot switch to nobody".into());
    }
    let r = run(
        bin,
        &["--version".to_string()],
        &[],
        true,
        Duration::from_secs(30),
    );
    if r.code == Some(0) {
        Ok(())
    } else {
        Err(format!(
            "nobody cannot run {} (exit {:?}: {})",
            bin.display(),
            r.code,
            r.stderr.trim()
        ))
    }
}
