//! Error text helpers: OS errors in the Go tool's wording (`open /x: no such file or
//! directory`), which scripts and people recognise, and the exit-code mapping.

use std::io;
use std::path::Path;

/// The OS error text without Rust's `(os error N)` suffix, lower-cased as Go prints it.
pub fn os_text(err: &io::Error) -> String {
    let s = match err.raw_os_error() {
        Some(code) => {
            let full = io::Error::from_raw_os_error(code).to_string();
            match full.rfind(" (os error") {
                Some(i) => full[..i].to_string(),
                None => full,
            }
        }
        None => err.to_string(),
    };
    let mut chars = s.chars();
    match chars.next() {
        Some(c) => c.to_lowercase().collect::<String>() + chars.as_str(),
        None => s,
    }
}

/// `op path: text`, e.g. `open /etc/x: permission denied`.
pub fn op_path(op: &str, path: &Path, err: &io::Error) -> String {
    format!("{op} {}: {}", path.display(), os_text(err))
}

/// True when `err` (or anything in its chain) is a broken pipe on stdout.
pub fn is_broken_pipe(err: &anyhow::Error) -> bool {
    err.chain().any(|e| {
        e.downcast_ref::<io::Error>()
            .is_some_and(|io| io.kind() == io::ErrorKind::BrokenPipe)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn os_text_matches_go_wording() {
        let e = io::Error::from_raw_os_error(libc::ENOENT);
        assert_eq!(os_text(&e), "no such file or directory");
        assert_eq!(
            op_path("open", Path::new("/x"), &e),
            "open /x: no such file or directory"
        );
    }
}

/// A command that has already said everything it has to say and wants this exit code
/// (e.g. `check` after printing its verdict).
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("exit status {0}")]
pub struct Exit(pub i32);
