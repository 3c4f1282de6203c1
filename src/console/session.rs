//! Copy loops between the local terminal and the guest console. Each direction runs on
//! its own thread with blocking reads and writes: the terminal is never switched to
//! non-blocking mode (that would leak into the user's shell), a stalled terminal does not
//! stop keystrokes (and so the escape sequence) from reaching the guest, and a flood of
//! output costs one read and one write per chunk. The async side only waits for the
//! first thread to finish or for a signal.

use std::fs::File;
use std::io::{self, Read, Write};
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::thread;

use nix::sys::signal::Signal;
use tokio::signal::unix::{SignalKind, signal};
use tokio::sync::mpsc;

use super::escape::EscapeFilter;
use super::oneshot::Parser;
use crate::errors::os_text;

/// Size of one read from the console; large enough that a flood of output moves in few
/// system calls.
const CONSOLE_BUF: usize = 256 * 1024;
/// Size of one read from the terminal (keystrokes or a paste).
const TERMINAL_BUF: usize = 16 * 1024;

/// How an interactive session ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// The guest closed the console (e.g. `exit` in the shell).
    GuestClosed,
    /// The user typed the escape sequence.
    Escaped,
    /// The local terminal reached end of file (e.g. it was hung up).
    TerminalClosed,
    /// SIGTERM, SIGHUP or SIGINT arrived: restore the terminal, then die by it.
    Signal(Signal),
}

#[derive(Debug, thiserror::Error)]
pub enum SessionError {
    #[error("reading the debug console failed: {0}")]
    ConsoleRead(String),
    #[error("writing to the debug console failed: {0}")]
    ConsoleWrite(String),
    #[error("reading the terminal failed: {0}")]
    TerminalRead(String),
    // Keeps the io::Error so that a closed pipe (`| head`) ends quietly with 0.
    #[error("writing to standard output failed: {}", os_text(.0))]
    Output(#[source] io::Error),
    #[error("cannot watch for signals: {0}")]
    Signals(String),
    #[error("cannot set up the console connection: {0}")]
    Setup(String),
    #[error(
        "the guest console closed before the command finished (its output so far was printed); the guest shell may have exited or the agent stopped"
    )]
    ClosedEarly,
}

/// Signals a session turns into an orderly end; installed before raw mode is entered.
pub struct Signals {
    term: tokio::signal::unix::Signal,
    hup: tokio::signal::unix::Signal,
    int: tokio::signal::unix::Signal,
}

impl Signals {
    pub fn install() -> Result<Self, SessionError> {
        let mk = |k| signal(k).map_err(|e| SessionError::Signals(os_text(&e)));
        Ok(Self {
            term: mk(SignalKind::terminate())?,
            hup: mk(SignalKind::hangup())?,
            int: mk(SignalKind::interrupt())?,
        })
    }

    async fn recv(&mut self) -> Signal {
        tokio::select! {
            _ = self.term.recv() => Signal::SIGTERM,
            _ = self.hup.recv() => Signal::SIGHUP,
            _ = self.int.recv() => Signal::SIGINT,
        }
    }
}

/// Writes every byte to `fd`, retrying on EINTR.
fn write_all_fd(fd: BorrowedFd<'_>, mut buf: &[u8]) -> io::Result<()> {
    while !buf.is_empty() {
        match nix::unistd::write(fd, buf) {
            Ok(0) => return Err(io::ErrorKind::WriteZero.into()),
            Ok(n) => buf = &buf[n..],
            Err(nix::errno::Errno::EINTR) => {}
            Err(e) => return Err(e.into()),
        }
    }
    Ok(())
}

/// Reads into `buf`, retrying on EINTR.
fn read_retry(r: &mut impl Read, buf: &mut [u8]) -> io::Result<usize> {
    loop {
        match r.read(buf) {
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            other => return other,
        }
    }
}

type Report = mpsc::UnboundedSender<Result<Outcome, SessionError>>;

/// Guest → standard output, until the guest closes.
fn guest_to_stdout(mut conn: File, report: Report) {
    let stdout = io::stdout();
    let mut buf = vec![0u8; CONSOLE_BUF];
    let end = loop {
        let n = match read_retry(&mut conn, &mut buf) {
            Ok(0) => break Ok(Outcome::GuestClosed),
            Ok(n) => n,
            Err(e) => break Err(SessionError::ConsoleRead(os_text(&e))),
        };
        if let Err(e) = write_all_fd(stdout.as_fd(), &buf[..n]) {
            break Err(SessionError::Output(e));
        }
    };
    let _ = report.send(end);
}

/// Terminal → guest through the escape filter, until the user leaves.
fn terminal_to_guest(mut conn: File, mut filter: EscapeFilter, report: Report) {
    let mut stdin = io::stdin().lock();
    let mut buf = vec![0u8; TERMINAL_BUF];
    let mut out = Vec::with_capacity(TERMINAL_BUF);
    let end = loop {
        let n = match read_retry(&mut stdin, &mut buf) {
            Ok(0) => break Ok(Outcome::TerminalClosed),
            Ok(n) => n,
            Err(e) => break Err(SessionError::TerminalRead(os_text(&e))),
        };
        out.clear();
        let req = filter.feed(&buf[..n], &mut out);
        if req.help {
            let _ = write_all_fd(io::stderr().as_fd(), filter.help_text().as_bytes());
        }
        if !out.is_empty()
            && let Err(e) = conn.write_all(&out)
        {
            break Err(SessionError::ConsoleWrite(os_text(&e)));
        }
        if req.disconnect {
            break Ok(Outcome::Escaped);
        }
    };
    let _ = report.send(end);
}

/// The interactive console: terminal ↔ guest until one side ends or a signal arrives. The
/// caller owns the raw-mode guard and restores the terminal after this returns. The copy
/// threads are not joined (one is usually blocked reading the terminal); the process
/// exits right after.
pub async fn interactive(
    conn: OwnedFd,
    escape: Option<u8>,
    signals: &mut Signals,
) -> Result<Outcome, SessionError> {
    let reader = File::from(conn);
    let writer = reader
        .try_clone()
        .map_err(|e| SessionError::Setup(os_text(&e)))?;
    let (report, mut ended) = mpsc::unbounded_channel();
    let r2 = report.clone();
    thread::spawn(move || guest_to_stdout(reader, report));
    thread::spawn(move || terminal_to_guest(writer, EscapeFilter::new(escape), r2));
    tokio::select! {
        end = ended.recv() => end.unwrap_or(Ok(Outcome::GuestClosed)),
        s = signals.recv() => Ok(Outcome::Signal(s)),
    }
}

/// One-shot mode: types `line`, writes the command's output to stdout as it arrives and
/// returns its exit status. Only one direction matters here, so it runs on this thread.
pub fn one_shot(conn: OwnedFd, line: &str, token: &str) -> Result<i32, SessionError> {
    let mut conn = File::from(conn);
    conn.write_all(line.as_bytes())
        .map_err(|e| SessionError::ConsoleWrite(os_text(&e)))?;
    let stdout = io::stdout();
    let mut parser = Parser::new(token);
    let mut buf = vec![0u8; CONSOLE_BUF];
    loop {
        let n =
            read_retry(&mut conn, &mut buf).map_err(|e| SessionError::ConsoleRead(os_text(&e)))?;
        if n == 0 {
            return Err(SessionError::ClosedEarly);
        }
        let step = parser.feed(&buf[..n]);
        write_all_fd(stdout.as_fd(), &step.output).map_err(SessionError::Output)?;
        if let Some(status) = step.status {
            return Ok(status);
        }
    }
}
