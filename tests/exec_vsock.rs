//! `kata-runtime exec` over real AF_VSOCK, using the kernel's loopback transport (CID 1,
//! `vsock_loopback`). The test probes first and skips, saying why, where the kernel or
//! the container lacks it (real-peers §4.4).

#[path = "support/exec_fakes.rs"]
mod fakes;

use std::fs::File;
use std::io::{Read, Write};
use std::os::fd::{AsFd, AsRawFd, OwnedFd};
use std::process::Stdio;
use std::thread;
use std::time::Duration;

use fakes::{FakeHost, TryCloneStream};
use nix::poll::{PollFd, PollFlags, PollTimeout, poll};
use nix::sys::socket::{
    AddressFamily, Backlog, SockFlag, SockType, VsockAddr, accept, bind, connect, getsockopt,
    listen, shutdown, socket, sockopt,
};

const VMADDR_CID_ANY: u32 = u32::MAX;
const VMADDR_CID_LOCAL: u32 = 1;
const ID: &str = "sb-vsock-loopback";

/// A listener on (any CID, `port`), or why there is none.
fn listener(port: u32) -> Result<OwnedFd, String> {
    let fd = socket(
        AddressFamily::Vsock,
        SockType::Stream,
        SockFlag::SOCK_CLOEXEC,
        None,
    )
    .map_err(|e| format!("socket(AF_VSOCK): {e}"))?;
    bind(fd.as_raw_fd(), &VsockAddr::new(VMADDR_CID_ANY, port))
        .map_err(|e| format!("bind vsock port {port}: {e}"))?;
    listen(&fd, Backlog::new(4).unwrap()).map_err(|e| format!("listen: {e}"))?;
    Ok(fd)
}

/// Connects to (CID 1, `port`) within `limit`.
fn connect_local(port: u32, limit: Duration) -> Result<OwnedFd, String> {
    let fd = socket(
        AddressFamily::Vsock,
        SockType::Stream,
        SockFlag::SOCK_CLOEXEC | SockFlag::SOCK_NONBLOCK,
        None,
    )
    .map_err(|e| format!("socket(AF_VSOCK): {e}"))?;
    match connect(fd.as_raw_fd(), &VsockAddr::new(VMADDR_CID_LOCAL, port)) {
        Ok(()) => return Ok(fd),
        Err(nix::errno::Errno::EINPROGRESS) => {}
        Err(e) => return Err(format!("connect to CID 1 port {port}: {e}")),
    }
    let mut fds = [PollFd::new(fd.as_fd(), PollFlags::POLLOUT)];
    let ms = PollTimeout::try_from(limit.as_millis() as i32).unwrap();
    match poll(&mut fds, ms) {
        Ok(n) if n > 0 => {}
        _ => {
            return Err(format!(
                "connect to CID 1 port {port} did not complete within {limit:?}"
            ));
        }
    }
    match getsockopt(&fd, sockopt::SocketError) {
        Ok(0) => Ok(fd),
        Ok(e) => Err(format!(
            "connect to CID 1 port {port}: {}",
            nix::errno::Errno::from_raw(e)
        )),
        Err(e) => Err(format!("getsockopt: {e}")),
    }
}

/// The vsock loopback works here: a listener and a connection to CID 1.
fn probe(port: u32) -> Result<OwnedFd, String> {
    let l = listener(port)?;
    let _c = connect_local(port, Duration::from_secs(2))?;
    let mut fds = [PollFd::new(l.as_fd(), PollFlags::POLLIN)];
    match poll(&mut fds, PollTimeout::from(2000u16)) {
        Ok(n) if n > 0 => {
            let _accepted = accept(&l).map_err(|e| format!("accept: {e}"))?;
            Ok(l)
        }
        _ => Err("the listener saw no connection from CID 1".into()),
    }
}

/// A connected vsock socket as a stream for the fake agent's relay.
struct VsockConn(File);

impl Read for VsockConn {
    fn read(&mut self, b: &mut [u8]) -> std::io::Result<usize> {
        self.0.read(b)
    }
}

impl Write for VsockConn {
    fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
        self.0.write(b)
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl TryCloneStream for VsockConn {
    fn try_clone_stream(&self) -> Self {
        VsockConn(self.0.try_clone().unwrap())
    }
    fn shutdown_both(&self) {
        let _ = shutdown(self.0.as_raw_fd(), nix::sys::socket::Shutdown::Both);
    }
}

#[test]
fn exec_over_vsock_loopback() {
    let port = 20000 + std::process::id() % 40000;
    let l = match probe(port) {
        Ok(l) => l,
        Err(why) => {
            eprintln!(
                "SKIPPED exec_over_vsock_loopback: AF_VSOCK loopback (CID 1) is not usable here: {why} (needs the vsock_loopback transport, Linux >= 5.6)"
            );
            return;
        }
    };
    // The fake agent: one shell per connection, as the agent's debug console does.
    thread::spawn(move || {
        while let Ok(fd) = accept(&l) {
            thread::spawn(move || fakes::relay_shell(VsockConn(File::from(fd))));
        }
    });
    let host = FakeHost::new(ID);
    let _shim = host.shim("vsock://1:1024\n");
    let out = host
        .command()
        .args(["exec", "--kata-debug-port", &port.to_string(), ID, "--"])
        .args(["sh", "-c", "echo over-vsock; exit 4"])
        .stdin(Stdio::null())
        .output()
        .unwrap();
    assert_eq!(
        out.status.code(),
        Some(4),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(String::from_utf8_lossy(&out.stdout), "over-vsock\n");
}

#[test]
fn vsock_connect_failure_names_the_address() {
    // Needs only AF_VSOCK sockets; CID 1 with nobody listening, or no vsock at all, must
    // fail within the connect window with the address in the message.
    let host = FakeHost::new(ID);
    let _shim = host.shim("vsock://1:1024\n");
    let port = 60000 + std::process::id() % 5000;
    let out = host
        .command()
        .args([
            "exec",
            "--kata-debug-port",
            &port.to_string(),
            ID,
            "--",
            "true",
        ])
        .stdin(Stdio::null())
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains(&format!(
            "cannot connect to the debug console at vsock://1:{port}"
        )),
        "{err}"
    );
}
