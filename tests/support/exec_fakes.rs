//! Fakes for `exec` tests: a shim-monitor socket that answers `/agent-url`, a hybrid-vsock
//! VMM that answers (or botches) the `CONNECT` handshake and then relays a real `/bin/sh`
//! on a pty, a fake guest agent on AF_VSOCK, and a fake host root tying them together.
#![allow(dead_code)]

use std::io::{Read, Write};
use std::os::fd::{AsRawFd, OwnedFd};
use std::os::unix::net::{UnixListener, UnixStream};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::Duration;

/// A fake host root with one sandbox.
pub struct FakeHost {
    pub dir: tempfile::TempDir,
    pub id: String,
}

impl FakeHost {
    pub fn new(id: &str) -> Self {
        Self {
            dir: tempfile::Builder::new().prefix("kx").tempdir().unwrap(),
            id: id.to_string(),
        }
    }

    pub fn root(&self) -> PathBuf {
        self.dir.path().join("r")
    }

    /// `host_path` as it is on this machine.
    pub fn on_disk(&self, host_path: &str) -> PathBuf {
        self.root().join(host_path.trim_start_matches('/'))
    }

    /// The host path of the VMM's hybrid-vsock socket for this sandbox.
    pub fn hvsock_host_path(&self) -> String {
        format!("/run/vc/firecracker/{}/root/kata.hvsock", self.id)
    }

    /// Starts a Go-style shim (under /run/vc/sbs) answering `/agent-url` with `url`.
    pub fn shim(&self, url: &str) -> FakeShim {
        FakeShim::start(
            &self.on_disk(&format!("/run/vc/sbs/{}/shim-monitor.sock", self.id)),
            url.as_bytes().to_vec(),
        )
    }

    /// Starts a fake VMM on this sandbox's hvsock path.
    pub fn vmm(&self, mode: VmmMode) -> FakeVmm {
        FakeVmm::start(&self.on_disk(&self.hvsock_host_path()), mode)
    }

    /// The agent URL a Firecracker sandbox would report.
    pub fn hvsock_url(&self) -> String {
        format!("hvsock://{}:1024\n", self.hvsock_host_path())
    }

    /// The real binary with `KATA_HOST_ROOT` pointing here.
    pub fn command(&self) -> Command {
        let mut c = Command::new(env!("CARGO_BIN_EXE_kata-runtime"));
        c.env("KATA_HOST_ROOT", self.root());
        c
    }
}

fn bind(path: &Path) -> UnixListener {
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    let _ = std::fs::remove_file(path);
    UnixListener::bind(path).unwrap()
}

/// Stops an accept loop: sets the flag, then connects once so `accept` returns.
struct Stopper {
    flag: Arc<AtomicBool>,
    path: PathBuf,
}

impl Drop for Stopper {
    fn drop(&mut self) {
        self.flag.store(true, Ordering::SeqCst);
        let _ = UnixStream::connect(&self.path);
    }
}

/// An HTTP/1.1 shim-monitor server that answers every `GET /agent-url` with one body.
pub struct FakeShim {
    pub requests: Arc<Mutex<Vec<String>>>,
    _stop: Stopper,
}

impl FakeShim {
    pub fn start(path: &Path, body: Vec<u8>) -> Self {
        let listener = bind(path);
        let requests = Arc::new(Mutex::new(Vec::new()));
        let flag = Arc::new(AtomicBool::new(false));
        let (reqs, stop) = (requests.clone(), flag.clone());
        thread::spawn(move || {
            for conn in listener.incoming() {
                if stop.load(Ordering::SeqCst) {
                    return;
                }
                let Ok(mut conn) = conn else { continue };
                let mut head = Vec::new();
                let mut b = [0u8; 1];
                while !head.ends_with(b"\r\n\r\n") {
                    match conn.read(&mut b) {
                        Ok(1) => head.push(b[0]),
                        _ => break,
                    }
                }
                let text = String::from_utf8_lossy(&head).to_string();
                let first = text.lines().next().unwrap_or("").to_string();
                reqs.lock().unwrap().push(first.clone());
                let (status, payload) = if first.starts_with("GET /agent-url ") {
                    ("200 OK", body.clone())
                } else {
                    ("404 Not Found", b"404 page not found\n".to_vec())
                };
                let _ = write!(
                    conn,
                    "HTTP/1.1 {status}\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
                    payload.len()
                );
                let _ = conn.write_all(&payload);
            }
        });
        Self {
            requests,
            _stop: Stopper {
                flag,
                path: path.to_path_buf(),
            },
        }
    }
}

/// How the fake VMM answers `CONNECT`.
#[derive(Clone, Debug)]
pub enum VmmMode {
    /// `OK 1073741824\n` plus `banner` in the same write, then a real `/bin/sh` on a pty.
    Shell { banner: Vec<u8> },
    /// `OK ...\n`, then `bytes` bytes of data, then close (for throughput).
    Stream { bytes: u64 },
    /// Writes these bytes (e.g. `NOT OK\n`) and closes.
    Reply(Vec<u8>),
    /// Reads `CONNECT` and never answers.
    Silent,
    /// Reads `CONNECT` and closes.
    CloseEarly,
}

/// A hybrid-vsock VMM socket.
pub struct FakeVmm {
    /// Every handshake line received (without `\n`).
    pub connects: Arc<Mutex<Vec<String>>>,
    _stop: Stopper,
}

impl FakeVmm {
    pub fn start(path: &Path, mode: VmmMode) -> Self {
        let listener = bind(path);
        let connects = Arc::new(Mutex::new(Vec::new()));
        let flag = Arc::new(AtomicBool::new(false));
        let (seen, stop) = (connects.clone(), flag.clone());
        thread::spawn(move || {
            for conn in listener.incoming() {
                if stop.load(Ordering::SeqCst) {
                    return;
                }
                let Ok(conn) = conn else { continue };
                let (seen, mode) = (seen.clone(), mode.clone());
                thread::spawn(move || serve_vmm(conn, mode, seen));
            }
        });
        Self {
            connects,
            _stop: Stopper {
                flag,
                path: path.to_path_buf(),
            },
        }
    }
}

fn serve_vmm(mut conn: UnixStream, mode: VmmMode, seen: Arc<Mutex<Vec<String>>>) {
    let mut line = Vec::new();
    let mut b = [0u8; 1];
    while conn.read(&mut b).map(|n| n == 1).unwrap_or(false) && b[0] != b'\n' {
        line.push(b[0]);
    }
    seen.lock()
        .unwrap()
        .push(String::from_utf8_lossy(&line).into_owned());
    match mode {
        VmmMode::Shell { banner } => {
            let mut first = b"OK 1073741824\n".to_vec();
            first.extend(banner);
            if conn.write_all(&first).is_ok() {
                relay_shell(conn);
            }
        }
        VmmMode::Stream { bytes } => {
            if conn.write_all(b"OK 1073741824\n").is_err() {
                return;
            }
            let chunk = vec![b'x'; 64 * 1024];
            let mut left = bytes;
            while left > 0 {
                let n = left.min(chunk.len() as u64) as usize;
                if conn.write_all(&chunk[..n]).is_err() {
                    return;
                }
                left -= n as u64;
            }
        }
        VmmMode::Reply(r) => {
            let _ = conn.write_all(&r);
        }
        VmmMode::Silent => {
            // Hold the connection open until the client gives up.
            let _ = conn.read(&mut [0u8; 1]);
        }
        VmmMode::CloseEarly => {}
    }
}

/// Runs `/bin/sh` on a new pty (as the agent does: new session, pty as controlling
/// terminal) and copies bytes both ways between it and `conn` until either side ends.
pub fn relay_shell<S>(conn: S)
where
    S: Read + Write + TryCloneStream + Send + 'static,
{
    let pty = nix::pty::openpty(None, None).expect("openpty");
    let slave = pty.slave;
    let mut cmd = Command::new("/bin/sh");
    cmd.env_clear()
        .env("PATH", "/usr/local/bin:/usr/bin:/bin")
        .env("PS1", "guest$ ")
        .env("TERM", "dumb")
        .stdin(Stdio::from(slave.try_clone().unwrap()))
        .stdout(Stdio::from(slave.try_clone().unwrap()))
        .stderr(Stdio::from(slave.try_clone().unwrap()));
    // SAFETY: runs in the forked child before exec and calls only async-signal-safe
    // functions (setsid, ioctl) on the child's own descriptors.
    unsafe {
        cmd.pre_exec(|| {
            if libc::setsid() < 0 {
                return Err(std::io::Error::last_os_error());
            }
            if libc::ioctl(0, libc::TIOCSCTTY as _, 0) < 0 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
    let mut child = cmd.spawn().expect("spawn /bin/sh");
    // Close every copy of the slave here, or reading the master never ends (EIO).
    drop(cmd);
    drop(slave);
    let master: OwnedFd = pty.master;
    let mut m_read = std::fs::File::from(master.try_clone().unwrap());
    let mut m_write = std::fs::File::from(master);
    let mut c_read = conn.try_clone_stream();
    let mut c_write = conn;
    let pid = child.id() as i32;
    let to_shell = thread::spawn(move || {
        let mut buf = vec![0u8; 64 * 1024];
        loop {
            match c_read.read(&mut buf) {
                Ok(0) | Err(_) => break,
                Ok(n) => {
                    if m_write.write_all(&buf[..n]).is_err() {
                        break;
                    }
                }
            }
        }
        // The client left: end the shell, as the agent does when the stream closes.
        // SAFETY: plain kill(2) on our own child's pid; it is reaped only after this thread.
        unsafe {
            libc::kill(pid, libc::SIGKILL);
        }
    });
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        match m_read.read(&mut buf) {
            Ok(0) | Err(_) => break, // EIO once the shell and its children are gone
            Ok(n) => {
                if c_write.write_all(&buf[..n]).is_err() {
                    break;
                }
            }
        }
    }
    c_write.shutdown_both();
    let _ = child.wait();
    let _ = to_shell.join();
}

/// Streams the relay can split into a reader and a writer.
pub trait TryCloneStream: Sized {
    fn try_clone_stream(&self) -> Self;
    fn shutdown_both(&self);
}

impl TryCloneStream for UnixStream {
    fn try_clone_stream(&self) -> Self {
        self.try_clone().unwrap()
    }
    fn shutdown_both(&self) {
        let _ = self.shutdown(std::net::Shutdown::Both);
    }
}

/// Raw file descriptor of anything, for messages.
pub fn raw(fd: &impl AsRawFd) -> i32 {
    fd.as_raw_fd()
}

/// Waits up to `limit` for `cond`.
pub fn wait_for(limit: Duration, mut cond: impl FnMut() -> bool) -> bool {
    let start = std::time::Instant::now();
    while start.elapsed() < limit {
        if cond() {
            return true;
        }
        thread::sleep(Duration::from_millis(10));
    }
    cond()
}
