//! One-shot mode, `exec SANDBOX_ID -- COMMAND [ARGS...]` (beyond the Go tool): type one
//! command line into the guest's shell, framed by markers that only the shell's output can
//! contain, and give back the command's output and exit status.
//!
//! The console is a shell on a pty, so the line we type is echoed, a prompt may come
//! first, and the pty turns `\n` into `\r\n`. The line prints a start marker, runs the
//! command in a subshell with stdin from /dev/null, then prints an end marker with `$?`
//! and exits. Each marker is printed as two `printf` arguments, so the echo of the typed
//! line never contains the joined marker. Everything before the start marker is dropped;
//! if the start marker's line ended in `\r\n`, `\r\n` is turned back into `\n`, which
//! exactly undoes the pty's ONLCR.

use std::hash::{BuildHasher, Hasher};
use std::time::{SystemTime, UNIX_EPOCH};

/// A canonical-mode pty line holds 4095 bytes; a longer line would be cut by the guest.
pub const MAX_LINE: usize = 4000;

const START: &str = "kata-exec-start";
const END: &str = "kata-exec-end";

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum OneShotError {
    #[error(
        "the command line is {0} bytes once quoted; the guest console accepts at most {MAX_LINE}: put the command in a script inside the guest or shorten it"
    )]
    TooLong(usize),
    // The line goes through the guest pty's line discipline (and maybe readline): ^C,
    // ^U, tab, newline... would act there instead of reaching the command.
    #[error(
        "the command contains a control character ({0:?}), which the guest terminal would act on instead of passing it: use printf escapes inside `sh -c '...'` instead"
    )]
    BadChar(char),
}

/// A random token (128 bits from the standard library's OS-seeded hasher keys).
pub fn new_token() -> String {
    let mut out = String::new();
    for i in 0..2u64 {
        let mut h = std::hash::RandomState::new().build_hasher();
        h.write_u64(i);
        h.write_u32(std::process::id());
        h.write_u128(
            SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .map(|d| d.as_nanos())
                .unwrap_or(0),
        );
        out.push_str(&format!("{:016x}", h.finish()));
    }
    out
}

/// Single-quotes `arg` for a POSIX shell.
pub fn shell_quote(arg: &str) -> String {
    if !arg.is_empty()
        && arg
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-_./=:,+@%".contains(&b))
    {
        return arg.to_string();
    }
    format!("'{}'", arg.replace('\'', r"'\''"))
}

/// The line to type into the guest shell (with its final `\n`). Each argument is one
/// word, as with `kubectl exec`: use `-- sh -c '...'` for pipes and redirections.
pub fn command_line(args: &[String], token: &str) -> Result<String, OneShotError> {
    if let Some(c) = args
        .iter()
        .flat_map(|a| a.chars())
        .find(|c| c.is_ascii_control())
    {
        return Err(OneShotError::BadChar(c));
    }
    let words: Vec<String> = args.iter().map(|a| shell_quote(a)).collect();
    let line = format!(
        "printf '%s_%s\\n' {START} {token}; ( {} ) </dev/null; printf '%s_%s:%s\\n' {END} {token} \"$?\"; exit\n",
        words.join(" ")
    );
    if line.len() > MAX_LINE {
        return Err(OneShotError::TooLong(line.len()));
    }
    Ok(line)
}

/// What one chunk of console output produced.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Step {
    /// Command output to print now.
    pub output: Vec<u8>,
    /// The command's exit status, once the end marker has been read.
    pub status: Option<i32>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    BeforeStart,
    /// In the output; `crlf` is true when the pty adds `\r` before `\n`.
    Output {
        crlf: bool,
    },
    Done,
}

/// Incremental parser of the console stream in one-shot mode.
#[derive(Debug)]
pub struct Parser {
    start: Vec<u8>,
    end: Vec<u8>,
    state: State,
    /// Bytes not yet decided on (a possible partial marker or a trailing `\r`).
    held: Vec<u8>,
}

impl Parser {
    pub fn new(token: &str) -> Self {
        Self {
            start: format!("{START}_{token}").into_bytes(),
            end: format!("{END}_{token}:").into_bytes(),
            state: State::BeforeStart,
            held: Vec::new(),
        }
    }

    pub fn feed(&mut self, chunk: &[u8]) -> Step {
        let mut step = Step::default();
        self.held.extend_from_slice(chunk);
        loop {
            match self.state {
                State::Done => {
                    self.held.clear();
                    return step;
                }
                State::BeforeStart => {
                    let Some(i) = find(&self.held, &self.start) else {
                        // Keep only what could be the beginning of the marker.
                        let keep = self.start.len().saturating_sub(1).min(self.held.len());
                        self.held.drain(..self.held.len() - keep);
                        return step;
                    };
                    let after = i + self.start.len();
                    let rest = &self.held[after..];
                    let crlf = if rest.starts_with(b"\r\n") {
                        true
                    } else if rest.starts_with(b"\n") {
                        false
                    } else if rest.is_empty() || rest == b"\r" {
                        return step; // the line ending has not arrived yet
                    } else {
                        // The marker without its newline is not ours (cannot happen with
                        // a random token); skip it.
                        self.held.drain(..after);
                        continue;
                    };
                    self.held.drain(..after + if crlf { 2 } else { 1 });
                    self.state = State::Output { crlf };
                }
                State::Output { crlf } => {
                    if let Some(i) = find(&self.held, &self.end) {
                        let digits_start = i + self.end.len();
                        let Some(nl) = self.held[digits_start..].iter().position(|&b| b == b'\n')
                        else {
                            // Emit the output before the marker; wait for the status line.
                            emit(&mut step.output, &self.held[..i], crlf);
                            self.held.drain(..i);
                            return step;
                        };
                        emit(&mut step.output, &self.held[..i], crlf);
                        let digits = &self.held[digits_start..digits_start + nl];
                        let digits = digits.strip_suffix(b"\r").unwrap_or(digits);
                        step.status = Some(
                            std::str::from_utf8(digits)
                                .ok()
                                .and_then(|s| s.parse::<i32>().ok())
                                // A status we cannot read is still a failure.
                                .unwrap_or(255),
                        );
                        self.state = State::Done;
                        continue;
                    }
                    // Hold back a possible partial end marker and a trailing `\r`.
                    let mut keep = partial_suffix(&self.held, &self.end);
                    if crlf && keep == 0 && self.held.last() == Some(&b'\r') {
                        keep = 1;
                    }
                    let cut = self.held.len() - keep;
                    emit(&mut step.output, &self.held[..cut], crlf);
                    self.held.drain(..cut);
                    return step;
                }
            }
        }
    }

    /// True once the start marker has been seen.
    pub fn started(&self) -> bool {
        !matches!(self.state, State::BeforeStart)
    }
}

fn emit(out: &mut Vec<u8>, bytes: &[u8], crlf: bool) {
    if !crlf {
        out.extend_from_slice(bytes);
        return;
    }
    // Copy runs between `\r\n` pairs whole; this is on the path of every output byte.
    let mut rest = bytes;
    while let Some(i) = find(rest, b"\r\n") {
        out.extend_from_slice(&rest[..i]);
        out.push(b'\n');
        rest = &rest[i + 2..];
    }
    out.extend_from_slice(rest);
}

/// First position of `needle` in `hay`: scan for its first byte, then compare.
fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    let (&first, tail) = needle.split_first()?;
    let mut from = 0;
    while let Some(p) = hay[from..].iter().position(|&b| b == first) {
        let at = from + p;
        if hay.len() - at < needle.len() {
            return None;
        }
        if &hay[at + 1..at + needle.len()] == tail {
            return Some(at);
        }
        from = at + 1;
    }
    None
}

/// Length of the longest proper prefix of `needle` that `hay` ends with.
fn partial_suffix(hay: &[u8], needle: &[u8]) -> usize {
    (1..needle.len().min(hay.len() + 1))
        .rev()
        .find(|&n| hay.ends_with(&needle[..n]))
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn onlcr(b: &[u8]) -> Vec<u8> {
        let mut v = Vec::new();
        for &c in b {
            if c == b'\n' {
                v.push(b'\r');
            }
            v.push(c);
        }
        v
    }

    /// What a shell on a pty would send back for `output` and `status`.
    fn console_stream(token: &str, output: &[u8], status: i32, crlf: bool) -> Vec<u8> {
        let line = command_line(&["x".to_string()], token).unwrap();
        let mut s = b"guest# ".to_vec();
        s.extend(line.as_bytes()); // the echo
        let mut body = format!("{START}_{token}\n").into_bytes();
        body.extend(output);
        body.extend(format!("{END}_{token}:{status}\n").as_bytes());
        if crlf {
            body = onlcr(&body);
        }
        s.extend(body);
        s
    }

    #[test]
    fn quotes_words() {
        assert_eq!(shell_quote("ls"), "ls");
        assert_eq!(shell_quote("a b"), "'a b'");
        assert_eq!(shell_quote("it's"), r"'it'\''s'");
        assert_eq!(shell_quote(""), "''");
        assert_eq!(shell_quote("$HOME"), "'$HOME'");
    }

    #[test]
    fn line_has_markers_split_and_is_bounded() {
        let t = "abc";
        let line = command_line(&["echo".into(), "hi there".into()], t).unwrap();
        assert!(!line.contains("kata-exec-start_abc"));
        assert!(!line.contains("kata-exec-end_abc"));
        assert!(line.contains("( echo 'hi there' ) </dev/null"));
        assert!(line.ends_with("exit\n"));
        assert_eq!(
            command_line(&["a\nb".into()], t),
            Err(OneShotError::BadChar('\n'))
        );
        assert_eq!(
            command_line(&["a\tb".into()], t),
            Err(OneShotError::BadChar('\t'))
        );
        assert!(command_line(&["\u{3}".into()], t).is_err());
        assert!(matches!(
            command_line(&["x".repeat(5000)], t),
            Err(OneShotError::TooLong(_))
        ));
    }

    #[test]
    fn tokens_differ() {
        assert_ne!(new_token(), new_token());
        assert_eq!(new_token().len(), 32);
    }

    #[test]
    fn parses_a_whole_stream() {
        let s = console_stream("tok", b"hello\nworld\n", 3, true);
        let mut p = Parser::new("tok");
        let step = p.feed(&s);
        assert_eq!(step.output, b"hello\nworld\n");
        assert_eq!(step.status, Some(3));
    }

    #[test]
    fn output_without_final_newline_and_own_crlf() {
        let s = console_stream("tok", b"a\r\nb", 0, true);
        let mut p = Parser::new("tok");
        let step = p.feed(&s);
        assert_eq!(step.output, b"a\r\nb");
        assert_eq!(step.status, Some(0));
    }

    proptest! {
        #[test]
        fn any_output_any_chunking(output in proptest::collection::vec(any::<u8>(), 0..300),
                                   status in 0i32..256, crlf: bool,
                                   cuts in proptest::collection::vec(1usize..40, 0..30)) {
            let token = "0123456789abcdef";
            let s = console_stream(token, &output, status, crlf);
            let mut p = Parser::new(token);
            let mut got = Vec::new();
            let mut st = None;
            let mut rest: &[u8] = &s;
            for c in cuts {
                let c = c.min(rest.len());
                let step = p.feed(&rest[..c]);
                got.extend(step.output);
                st = st.or(step.status);
                rest = &rest[c..];
            }
            let step = p.feed(rest);
            got.extend(step.output);
            st = st.or(step.status);
            prop_assert_eq!(got, output);
            prop_assert_eq!(st, Some(status));
        }
    }
}
