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

/// Connecting to something that is not a socket fails with a bare "connection refused";
/// say what is there instead.
pub fn explain_not_a_socket(path: &Path, cause: io::Error) -> io::Error {
    use std::os::unix::fs::FileTypeExt;
    let Ok(meta) = std::fs::symlink_metadata(path) else {
        return cause;
    };
    let ft = meta.file_type();
    let what = if ft.is_socket() {
        return cause;
    } else if ft.is_file() {
        "a regular file"
    } else if ft.is_dir() {
        "a directory"
    } else if ft.is_symlink() {
        "a symbolic link to something that is not a listening socket"
    } else {
        "a special file"
    };
    io::Error::new(
        cause.kind(),
        format!("{} (the path is {what}, not a socket)", os_text(&cause)),
    )
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
