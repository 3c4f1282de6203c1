//! The local terminal for `exec`: raw mode that keeps CS8 (spec Q37) and comes back on
//! every way out (spec Q32): normal return (guard drop), a panic (hook; the release
//! profile aborts on panic, so `Drop` alone would not run), and SIGTERM/SIGHUP/SIGINT
//! (the session catches them, restores, then dies by the same signal).

use std::os::fd::{AsFd, AsRawFd, BorrowedFd, RawFd};
use std::sync::{Mutex, Once};

use nix::sys::termios::{
    self, ControlFlags, InputFlags, LocalFlags, OutputFlags, SetArg, SpecialCharacterIndices,
    Termios,
};

#[derive(Debug, thiserror::Error)]
pub enum TerminalError {
    // spec Q31: the Go tool panicked here (`provided file is not a console`, exit 2).
    #[error(
        "standard input is not a terminal: the interactive console needs one (run it from a terminal, e.g. with `ssh -t`), or give a command to run instead: kata-runtime exec SANDBOX_ID -- COMMAND [ARGS...]"
    )]
    NotATerminal,
    #[error("cannot read the terminal settings of standard input: {0}")]
    Get(nix::Error),
    #[error("cannot put the terminal in raw mode: {0}")]
    Set(nix::Error),
}

/// The settings to restore, kept where the panic hook can find them.
static SAVED: Mutex<Option<(RawFd, libc::termios)>> = Mutex::new(None);
static HOOK: Once = Once::new();

/// True when `fd` is a terminal.
pub fn is_terminal(fd: BorrowedFd<'_>) -> bool {
    nix::unistd::isatty(fd).unwrap_or(false)
}

/// Raw mode as the Go tool sets it (containerd/console), with CS8 set rather than cleared
/// (spec Q37). OPOST stays on, as in the Go tool, so local messages can use `\n`.
pub fn make_raw(t: &mut Termios) {
    t.input_flags &= !(InputFlags::IGNBRK
        | InputFlags::BRKINT
        | InputFlags::PARMRK
        | InputFlags::ISTRIP
        | InputFlags::INLCR
        | InputFlags::IGNCR
        | InputFlags::ICRNL
        | InputFlags::IXON);
    t.local_flags &= !(LocalFlags::ECHO
        | LocalFlags::ECHONL
        | LocalFlags::ICANON
        | LocalFlags::ISIG
        | LocalFlags::IEXTEN);
    t.control_flags &= !(ControlFlags::CSIZE | ControlFlags::PARENB);
    t.control_flags |= ControlFlags::CS8;
    t.output_flags |= OutputFlags::OPOST;
    t.control_chars[SpecialCharacterIndices::VMIN as usize] = 1;
    t.control_chars[SpecialCharacterIndices::VTIME as usize] = 0;
}

/// The terminal in raw mode; dropping it restores the saved settings.
pub struct RawTerminal {
    fd: RawFd,
    original: Termios,
}

impl RawTerminal {
    /// Saves the settings of `fd`, installs the panic hook, and switches to raw mode.
    pub fn enter(fd: BorrowedFd<'_>) -> Result<Self, TerminalError> {
        if !is_terminal(fd) {
            return Err(TerminalError::NotATerminal);
        }
        let original = termios::tcgetattr(fd).map_err(TerminalError::Get)?;
        install_panic_hook();
        *SAVED.lock().unwrap_or_else(|p| p.into_inner()) =
            Some((fd.as_raw_fd(), libc::termios::from(original.clone())));
        let mut raw = original.clone();
        make_raw(&mut raw);
        if let Err(e) = termios::tcsetattr(fd, SetArg::TCSANOW, &raw) {
            SAVED.lock().unwrap_or_else(|p| p.into_inner()).take();
            return Err(TerminalError::Set(e));
        }
        Ok(Self {
            fd: fd.as_raw_fd(),
            original,
        })
    }

    /// Restores the saved settings now (also done on drop).
    pub fn restore(&self) {
        SAVED.lock().unwrap_or_else(|p| p.into_inner()).take();
        // SAFETY: `self.fd` is one of the process's standard descriptors, which stay open
        // for the life of the process; the borrow does not outlive this call.
        let fd = unsafe { BorrowedFd::borrow_raw(self.fd) };
        // TCSANOW: a pty whose reader is gone must not make us wait for output to drain.
        let _ = termios::tcsetattr(fd.as_fd(), SetArg::TCSANOW, &self.original);
    }
}

impl Drop for RawTerminal {
    fn drop(&mut self) {
        self.restore();
    }
}

/// Restores whatever [`RawTerminal::enter`] saved, if it is still saved.
pub fn restore_saved() {
    let saved = match SAVED.try_lock() {
        Ok(mut g) => g.take(),
        Err(std::sync::TryLockError::Poisoned(p)) => p.into_inner().take(),
        // Held by the thread that is panicking inside enter/restore: nothing safe to do.
        Err(std::sync::TryLockError::WouldBlock) => None,
    };
    if let Some((fd, t)) = saved {
        // SAFETY: `t` is a complete termios read by tcgetattr and `fd` is a standard
        // descriptor that is still open; tcsetattr only reads the struct.
        unsafe {
            libc::tcsetattr(fd, libc::TCSANOW, &t);
        }
    }
}

/// Restores the terminal before the default panic output (which then reads normally) and
/// before `panic = "abort"` ends the process.
fn install_panic_hook() {
    HOOK.call_once(|| {
        let previous = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            restore_saved();
            previous(info);
        }));
    });
}

/// Ends the process by `sig` with its default action, so the parent sees the same status
/// as if the signal had not been caught. Call after restoring the terminal.
pub fn die_by_signal(sig: nix::sys::signal::Signal) -> ! {
    use nix::sys::signal::{SigHandler, SigSet, SigmaskHow, signal};
    // SAFETY: installing SIG_DFL runs no handler code; tokio's handler is simply replaced.
    unsafe {
        let _ = signal(sig, SigHandler::SigDfl);
    }
    let mut set = SigSet::empty();
    set.add(sig);
    let _ = nix::sys::signal::pthread_sigmask(SigmaskHow::SIG_UNBLOCK, Some(&set), None);
    let _ = nix::sys::signal::raise(sig);
    // Only reached if the signal is ignored in a way we cannot undo: exit as shells report it.
    std::process::exit(128 + sig as i32)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The saved settings are process-wide: tests that enter raw mode take turns.
    pub(super) static SERIAL: Mutex<()> = Mutex::new(());

    #[test]
    fn raw_mode_keeps_cs8_and_output_processing() {
        let pty = nix::pty::openpty(None, None).expect("openpty");
        let mut t = termios::tcgetattr(&pty.slave).unwrap();
        // Start from 7-bit with parity, to see CS8 set rather than cleared (spec Q37).
        t.control_flags &= !ControlFlags::CSIZE;
        t.control_flags |= ControlFlags::CS7 | ControlFlags::PARENB;
        make_raw(&mut t);
        assert_eq!(t.control_flags & ControlFlags::CSIZE, ControlFlags::CS8);
        assert!(!t.control_flags.contains(ControlFlags::PARENB));
        assert!(t.output_flags.contains(OutputFlags::OPOST));
        assert!(
            !t.local_flags
                .intersects(LocalFlags::ECHO | LocalFlags::ICANON | LocalFlags::ISIG)
        );
        assert!(
            !t.input_flags
                .intersects(InputFlags::ICRNL | InputFlags::IXON)
        );
        assert_eq!(t.control_chars[SpecialCharacterIndices::VMIN as usize], 1);
    }

    #[test]
    fn enter_refuses_a_non_terminal() {
        let (r, _w) = nix::unistd::pipe().unwrap();
        assert!(matches!(
            RawTerminal::enter(r.as_fd()),
            Err(TerminalError::NotATerminal)
        ));
    }

    #[test]
    fn guard_restores_the_exact_settings() {
        let _turn = SERIAL.lock().unwrap_or_else(|p| p.into_inner());
        let pty = nix::pty::openpty(None, None).expect("openpty");
        let mut t = termios::tcgetattr(&pty.slave).unwrap();
        t.control_chars[SpecialCharacterIndices::VEOF as usize] = 2;
        t.input_flags |= InputFlags::IXANY;
        termios::tcsetattr(&pty.slave, SetArg::TCSANOW, &t).unwrap();
        let before = libc::termios::from(termios::tcgetattr(&pty.slave).unwrap());
        {
            let _g = RawTerminal::enter(pty.slave.as_fd()).unwrap();
            let raw = termios::tcgetattr(&pty.slave).unwrap();
            assert!(!raw.local_flags.contains(LocalFlags::ICANON));
        }
        let after = libc::termios::from(termios::tcgetattr(&pty.slave).unwrap());
        assert_eq!(before.c_iflag, after.c_iflag);
        assert_eq!(before.c_oflag, after.c_oflag);
        assert_eq!(before.c_cflag, after.c_cflag);
        assert_eq!(before.c_lflag, after.c_lflag);
        assert_eq!(before.c_cc, after.c_cc);
    }
}

#[cfg(test)]
mod panic_tests {
    use super::*;

    #[test]
    fn panic_hook_restores_the_terminal_before_the_guard_drops() {
        let _turn = super::tests::SERIAL
            .lock()
            .unwrap_or_else(|p| p.into_inner());
        let pty = nix::pty::openpty(None, None).expect("openpty");
        let before = libc::termios::from(termios::tcgetattr(&pty.slave).unwrap());
        let guard = RawTerminal::enter(pty.slave.as_fd()).unwrap();
        // With panic = "abort" no destructor runs: only the hook can restore. Keep the
        // guard alive across the panic to see the hook do it.
        let r = std::panic::catch_unwind(|| panic!("test panic in a raw terminal"));
        assert!(r.is_err());
        let after = libc::termios::from(termios::tcgetattr(&pty.slave).unwrap());
        assert_eq!(before.c_lflag, after.c_lflag);
        assert_eq!(before.c_iflag, after.c_iflag);
        assert_eq!(before.c_cflag, after.c_cflag);
        std::mem::forget(guard);
    }
}
