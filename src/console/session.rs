//! Copy loops between the local terminal and the guest console. Both directions run at
//! once; the terminal side uses two plain threads with blocking reads and writes (so the
//! shared terminal is never switched to non-blocking mode, which would leak into the
//! user's shell), and the console side is async.

use std::io;
use std::os::fd::{AsFd, BorrowedFd};
use std::thread;

use nix::sys::signal::Signal;
use tokio::io::{AsyncReadExt, AsyncWriteExt, ReadHalf, WriteHalf};
use tokio::signal::unix::{SignalKind, signal};
use tokio::sync::mpsc;

use super::dial::Connection;
use super::escape::EscapeFilter;
use super::oneshot::Parser;
use crate::errors::os_text;

/// Size of one read from the console; large enough that a flood of output moves in few
/// system calls and channel hand-offs.
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
    #[error("writing to standard output failed: {0}")]
    Output(String),
    #[error("cannot watch for signals: {0}")]
    Signals(String),
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

/// A thread that writes what it receives to standard output as soon as it arrives, and
/// hands each buffer back for reuse (no allocation per chunk on a flood of output).
struct OutputThread {
    tx: mpsc::Sender<(Vec<u8>, usize)>,
    spare: std::sync::mpsc::Receiver<Vec<u8>>,
    done: thread::JoinHandle<io::Result<()>>,
}

impl OutputThread {
    fn start() -> Self {
        let (tx, mut rx) = mpsc::channel::<(Vec<u8>, usize)>(4);
        let (back, spare) = std::sync::mpsc::channel();
        let done = thread::spawn(move || {
            let stdout = io::stdout();
            while let Some((chunk, n)) = rx.blocking_recv() {
                write_all_fd(stdout.as_fd(), &chunk[..n])?;
                let _ = back.send(chunk);
            }
            Ok(())
        });
        Self { tx, spare, done }
    }

    /// A buffer of [`CONSOLE_BUF`] bytes, reused when one has come back.
    fn buffer(&self) -> Vec<u8> {
        self.spare
            .try_recv()
            .unwrap_or_else(|_| vec![0u8; CONSOLE_BUF])
    }

    /// Queues the first `n` bytes of `buf`; false when the writer has stopped.
    async fn send(&self, buf: Vec<u8>, n: usize) -> bool {
        self.tx.send((buf, n)).await.is_ok()
    }

    /// Waits until everything sent so far is written.
    fn finish(self) -> Result<(), SessionError> {
        drop(self.tx);
        match self.done.join() {
            Ok(Ok(())) => Ok(()),
            Ok(Err(e)) => Err(SessionError::Output(os_text(&e))),
            Err(_) => Err(SessionError::Output("the output thread failed".into())),
        }
    }
}

/// Starts a thread that reads the terminal (standard input) and sends what it reads; an
/// empty chunk means end of file. The thread is left blocked in `read` when the session
/// ends; the process exits soon after.
fn start_input_thread() -> mpsc::Receiver<io::Result<Vec<u8>>> {
    let (tx, rx) = mpsc::channel(4);
    thread::spawn(move || {
        let stdin = io::stdin();
        let mut buf = vec![0u8; TERMINAL_BUF];
        loop {
            let r = match nix::unistd::read(stdin.as_fd(), &mut buf) {
                Ok(n) => Ok(buf[..n].to_vec()),
                Err(nix::errno::Errno::EINTR) => continue,
                Err(e) => Err(io::Error::from(e)),
            };
            let stop = !matches!(&r, Ok(v) if !v.is_empty());
            if tx.blocking_send(r).is_err() || stop {
                return;
            }
        }
    });
    rx
}

/// Copies console → stdout until the console closes.
async fn pump_output(
    mut rd: ReadHalf<Connection>,
    output: &OutputThread,
) -> Result<(), SessionError> {
    loop {
        let mut buf = output.buffer();
        let n = rd
            .read(&mut buf)
            .await
            .map_err(|e| SessionError::ConsoleRead(os_text(&e)))?;
        if n == 0 {
            return Ok(());
        }
        if !output.send(buf, n).await {
            // The writer thread stopped on an error; `finish` reports it.
            return Ok(());
        }
    }
}

/// Copies terminal → console through the escape filter until the user leaves.
async fn pump_input(
    mut input: mpsc::Receiver<io::Result<Vec<u8>>>,
    mut wr: WriteHalf<Connection>,
    mut filter: EscapeFilter,
) -> Result<Outcome, SessionError> {
    let mut out = Vec::with_capacity(TERMINAL_BUF);
    while let Some(chunk) = input.recv().await {
        let chunk = chunk.map_err(|e| SessionError::TerminalRead(os_text(&e)))?;
        if chunk.is_empty() {
            return Ok(Outcome::TerminalClosed);
        }
        out.clear();
        let req = filter.feed(&chunk, &mut out);
        if req.help {
            let _ = write_all_fd(io::stderr().as_fd(), filter.help_text().as_bytes());
        }
        if !out.is_empty() {
            wr.write_all(&out)
                .await
                .map_err(|e| SessionError::ConsoleWrite(os_text(&e)))?;
        }
        if req.disconnect {
            return Ok(Outcome::Escaped);
        }
    }
    Ok(Outcome::TerminalClosed)
}

/// The interactive console: terminal ↔ guest until one side ends. The caller owns the
/// raw-mode guard and restores the terminal after this returns.
pub async fn interactive(
    conn: Connection,
    escape: Option<u8>,
    signals: &mut Signals,
) -> Result<Outcome, SessionError> {
    let (rd, wr) = tokio::io::split(conn);
    let output = OutputThread::start();
    let input = start_input_thread();
    let outcome = {
        let guest = pump_output(rd, &output);
        let local = pump_input(input, wr, EscapeFilter::new(escape));
        tokio::select! {
            r = guest => r.map(|()| Outcome::GuestClosed),
            r = local => r,
            s = signals.recv() => Ok(Outcome::Signal(s)),
        }
    };
    // Whatever the guest said last reaches the terminal before it is restored, unless a
    // signal asked us to stop now.
    match outcome {
        Ok(Outcome::Signal(_)) => outcome,
        _ => {
            let flushed = output.finish();
            let o = outcome?;
            flushed?;
            Ok(o)
        }
    }
}

/// One-shot mode: types `line`, writes the command's output to stdout as it arrives and
/// returns its exit status. Output is written from this task directly: there is no other
/// direction to keep moving, and a hand-off per chunk would cost more than the write.
pub async fn one_shot(conn: Connection, line: &str, token: &str) -> Result<i32, SessionError> {
    let (mut rd, mut wr) = tokio::io::split(conn);
    wr.write_all(line.as_bytes())
        .await
        .map_err(|e| SessionError::ConsoleWrite(os_text(&e)))?;
    wr.flush()
        .await
        .map_err(|e| SessionError::ConsoleWrite(os_text(&e)))?;
    let stdout = io::stdout();
    let mut parser = Parser::new(token);
    let mut buf = vec![0u8; CONSOLE_BUF];
    loop {
        let n = rd
            .read(&mut buf)
            .await
            .map_err(|e| SessionError::ConsoleRead(os_text(&e)))?;
        if n == 0 {
            return Err(SessionError::ClosedEarly);
        }
        let step = parser.feed(&buf[..n]);
        write_all_fd(stdout.as_fd(), &step.output)
            .map_err(|e| SessionError::Output(os_text(&e)))?;
        if let Some(status) = step.status {
            return Ok(status);
        }
    }
}
