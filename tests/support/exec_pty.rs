//! Runs a program with a pseudo-terminal as its standard input (and, unless asked
//! otherwise, output), so tests can type into it, read what it prints, send it signals and
//! compare the terminal's settings before and after.
#![allow(dead_code)]

use std::io::{Read, Write};
use std::os::fd::{AsFd, AsRawFd, OwnedFd};
use std::os::unix::process::CommandExt;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use nix::poll::{PollFd, PollFlags, PollTimeout, poll};
use nix::sys::termios::{self, InputFlags, LocalFlags, SetArg, SpecialCharacterIndices};

pub struct PtyChild {
    master: std::fs::File,
    /// Kept open by the test so the terminal's settings can be read after the child exits.
    pub slave: OwnedFd,
    pub child: Child,
    /// Everything read from the terminal so far.
    pub seen: Vec<u8>,
    /// The terminal's settings just before the child started.
    pub before: Settings,
}

/// Terminal settings that differ from the kernel's defaults in several fields, so that
/// "restored exactly" cannot be passed by resetting to defaults. (The character size is
/// left alone: the Linux pty driver forces CS8 and clears PARENB on every tcsetattr, so
/// spec Q37 is checked on the termios value in the unit tests instead.)
pub fn unusual_settings(fd: impl AsFd) {
    let mut t = termios::tcgetattr(&fd).unwrap();
    t.input_flags |= InputFlags::IXANY | InputFlags::IUTF8 | InputFlags::IMAXBEL;
    t.local_flags &= !LocalFlags::ECHOCTL;
    t.control_chars[SpecialCharacterIndices::VEOF as usize] = 2;
    t.control_chars[SpecialCharacterIndices::VMIN as usize] = 3;
    t.control_chars[SpecialCharacterIndices::VTIME as usize] = 7;
    termios::tcsetattr(&fd, SetArg::TCSANOW, &t).unwrap();
}

/// The settings as plain fields, for exact comparison.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Settings {
    pub iflag: u32,
    pub oflag: u32,
    pub cflag: u32,
    pub lflag: u32,
    pub cc: Vec<u8>,
    pub line: u8,
}

impl Settings {
    pub fn read(fd: impl AsFd) -> Self {
        let t = libc::termios::from(termios::tcgetattr(&fd).unwrap());
        Self {
            iflag: t.c_iflag,
            oflag: t.c_oflag,
            cflag: t.c_cflag,
            lflag: t.c_lflag,
            cc: t.c_cc.to_vec(),
            line: t.c_line,
        }
    }

    pub fn is_raw(&self) -> bool {
        self.lflag & (libc::ICANON | libc::ECHO | libc::ISIG) == 0
            && self.iflag & (libc::ICRNL | libc::IXON) == 0
    }

    pub fn has_cs8(&self) -> bool {
        self.cflag & libc::CSIZE == libc::CS8 && self.cflag & libc::PARENB == 0
    }
}

impl PtyChild {
    /// Spawns `cmd` with the pty slave as stdin and stderr, and as stdout unless
    /// `stdout` is given.
    pub fn spawn(cmd: &mut Command, stdout: Option<Stdio>) -> Self {
        let pty = nix::pty::openpty(None, None).expect("openpty");
        unusual_settings(&pty.slave);
        let before = Settings::read(&pty.slave);
        cmd.stdin(Stdio::from(pty.slave.try_clone().unwrap()))
            .stderr(Stdio::from(pty.slave.try_clone().unwrap()));
        match stdout {
            Some(s) => cmd.stdout(s),
            None => cmd.stdout(Stdio::from(pty.slave.try_clone().unwrap())),
        };
        // SAFETY: runs in the forked child before exec; setsid and ioctl are
        // async-signal-safe and act only on the child's own descriptors.
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
        let child = cmd.spawn().expect("spawn kata-runtime");
        Self {
            master: std::fs::File::from(pty.master),
            slave: pty.slave,
            child,
            seen: Vec::new(),
            before,
        }
    }

    pub fn settings(&self) -> Settings {
        Settings::read(&self.slave)
    }

    /// Reads what is available within `wait`; false when nothing came.
    fn pump(&mut self, wait: Duration) -> bool {
        let ms = wait.as_millis().min(u16::MAX as u128) as u16;
        let mut fds = [PollFd::new(self.master.as_fd(), PollFlags::POLLIN)];
        match poll(&mut fds, PollTimeout::from(ms)) {
            Ok(n) if n > 0 => {}
            _ => return false,
        }
        let mut buf = [0u8; 65536];
        match self.master.read(&mut buf) {
            Ok(n) if n > 0 => {
                self.seen.extend_from_slice(&buf[..n]);
                true
            }
            _ => false,
        }
    }

    /// Waits until the terminal has shown `needle` (after everything consumed so far is
    /// kept in `seen`); panics with the screen contents on timeout.
    pub fn expect(&mut self, needle: &str, limit: Duration) {
        let start = Instant::now();
        while !String::from_utf8_lossy(&self.seen).contains(needle) {
            if start.elapsed() > limit {
                panic!(
                    "no {needle:?} on the terminal within {limit:?}; it shows {:?}",
                    String::from_utf8_lossy(&self.seen)
                );
            }
            self.pump(Duration::from_millis(50));
        }
    }

    /// Forgets what was read so far.
    pub fn clear(&mut self) {
        self.seen.clear();
    }

    pub fn send(&mut self, bytes: &[u8]) {
        self.master.write_all(bytes).unwrap();
    }

    /// Waits for the child to exit, reading its output meanwhile.
    pub fn wait(&mut self, limit: Duration) -> ExitStatus {
        let start = Instant::now();
        loop {
            if let Some(st) = self.child.try_wait().unwrap() {
                while self.pump(Duration::from_millis(20)) {}
                return st;
            }
            if start.elapsed() > limit {
                let _ = self.child.kill();
                panic!(
                    "kata-runtime did not exit within {limit:?}; the terminal shows {:?}",
                    String::from_utf8_lossy(&self.seen)
                );
            }
            self.pump(Duration::from_millis(20));
        }
    }

    pub fn signal(&self, sig: i32) {
        // SAFETY: kill(2) on the pid of our own child, which has not been reaped yet.
        unsafe {
            libc::kill(self.child.id() as i32, sig);
        }
    }

    pub fn pid(&self) -> i32 {
        self.child.id() as i32
    }

    pub fn master_fd(&self) -> i32 {
        self.master.as_raw_fd()
    }
}

impl Drop for PtyChild {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
