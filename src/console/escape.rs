//! The escape sequence that leaves a hung console, as in ssh (spec Q32: the Go tool had
//! none): the escape character right after Enter (or as the first byte of the session),
//! then `.` disconnects, `?` lists the sequences, and the escape character twice sends it
//! once. Anything else is forwarded unchanged.

/// The default escape character, as in ssh.
pub const DEFAULT_ESCAPE: u8 = b'~';

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "invalid escape character {0:?}: give one ASCII character (e.g. ~), a control character as ^X (e.g. ^]), or \"none\" to disable the escape sequence"
)]
pub struct BadEscapeChar(pub String);

/// Parses `-e/--escape-char`: one ASCII character, `^X` for a control character, or
/// `none` (no escape sequence: every byte goes to the guest).
pub fn parse_escape_char(s: &str) -> Result<Option<u8>, BadEscapeChar> {
    if s.eq_ignore_ascii_case("none") {
        return Ok(None);
    }
    let bad = || BadEscapeChar(s.to_string());
    match s.as_bytes() {
        [b] if b.is_ascii() && *b != b'\r' && *b != b'\n' => Ok(Some(*b)),
        [b'^', c] if (b'@'..=b'_').contains(&c.to_ascii_uppercase()) => {
            let c = c.to_ascii_uppercase();
            if c == b'M' || c == b'J' {
                // Enter itself cannot start a sequence that begins after Enter.
                Err(bad())
            } else {
                Ok(Some(c & 0x1f))
            }
        }
        _ => Err(bad()),
    }
}

/// How a key is shown in the help text.
pub fn display_escape(c: u8) -> String {
    if c < 0x20 {
        format!("^{}", (c | 0x40) as char)
    } else {
        (c as char).to_string()
    }
}

/// What the user asked for with the escape sequence in one chunk of input.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Requests {
    /// `<esc>.`: close the console (the rest of the chunk is dropped).
    pub disconnect: bool,
    /// `<esc>?`: show the help text.
    pub help: bool,
}

/// Stateful filter over the bytes typed on the terminal.
#[derive(Debug, Clone)]
pub struct EscapeFilter {
    escape: Option<u8>,
    at_line_start: bool,
    pending: bool,
}

impl EscapeFilter {
    pub fn new(escape: Option<u8>) -> Self {
        Self {
            escape,
            at_line_start: true,
            pending: false,
        }
    }

    /// Appends the bytes to forward to `out` and reports escape requests.
    pub fn feed(&mut self, input: &[u8], out: &mut Vec<u8>) -> Requests {
        let mut req = Requests::default();
        let Some(esc) = self.escape else {
            out.extend_from_slice(input);
            return req;
        };
        for &b in input {
            if self.pending {
                self.pending = false;
                match b {
                    b'.' => {
                        req.disconnect = true;
                        return req;
                    }
                    b'?' => {
                        req.help = true;
                        // Still at the start of a line: another sequence may follow.
                        continue;
                    }
                    _ if b == esc => {
                        out.push(esc);
                        self.at_line_start = false;
                        continue;
                    }
                    _ => out.push(esc),
                }
            } else if self.at_line_start && b == esc {
                self.pending = true;
                continue;
            }
            out.push(b);
            self.at_line_start = b == b'\r' || b == b'\n';
        }
        req
    }

    /// Help text for `<esc>?` (lines end with CR LF: the terminal is raw).
    pub fn help_text(&self) -> String {
        let e = self.escape.map(display_escape).unwrap_or_default();
        format!(
            "\r\nSupported escape sequences (after Enter):\r\n {e}.   - close the console\r\n {e}?   - this message\r\n {e}{e}   - send the escape character\r\n"
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn run(f: &mut EscapeFilter, input: &[u8]) -> (Vec<u8>, Requests) {
        let mut out = Vec::new();
        let r = f.feed(input, &mut out);
        (out, r)
    }

    #[test]
    fn parses_escape_flag() {
        assert_eq!(parse_escape_char("~"), Ok(Some(b'~')));
        assert_eq!(parse_escape_char("none"), Ok(None));
        assert_eq!(parse_escape_char("NONE"), Ok(None));
        assert_eq!(parse_escape_char("^]"), Ok(Some(0x1d)));
        assert_eq!(parse_escape_char("^a"), Ok(Some(0x01)));
        assert_eq!(parse_escape_char("#"), Ok(Some(b'#')));
        for bad in ["", "ab", "é", "^M", "^1", "\n"] {
            assert!(parse_escape_char(bad).is_err(), "{bad:?}");
        }
        assert!(
            parse_escape_char("ab")
                .unwrap_err()
                .to_string()
                .contains("\"none\"")
        );
    }

    #[test]
    fn enter_tilde_dot_disconnects() {
        let mut f = EscapeFilter::new(Some(b'~'));
        let (out, r) = run(&mut f, b"ls\r~.rest");
        assert_eq!(out, b"ls\r");
        assert!(r.disconnect);
    }

    #[test]
    fn first_bytes_of_session_count_as_line_start() {
        let mut f = EscapeFilter::new(Some(b'~'));
        assert!(run(&mut f, b"~.").1.disconnect);
    }

    #[test]
    fn sequence_split_across_reads() {
        let mut f = EscapeFilter::new(Some(b'~'));
        assert_eq!(run(&mut f, b"x\r"), (b"x\r".to_vec(), Requests::default()));
        assert_eq!(run(&mut f, b"~"), (Vec::new(), Requests::default()));
        assert!(run(&mut f, b".").1.disconnect);
    }

    #[test]
    fn tilde_inside_a_line_is_plain() {
        let mut f = EscapeFilter::new(Some(b'~'));
        let (out, r) = run(&mut f, b"cd ~.\r");
        assert_eq!(out, b"cd ~.\r");
        assert!(!r.disconnect);
    }

    #[test]
    fn double_escape_sends_one_and_other_keys_pass() {
        let mut f = EscapeFilter::new(Some(b'~'));
        assert_eq!(run(&mut f, b"~~.").0, b"~.");
        let mut f = EscapeFilter::new(Some(b'~'));
        assert_eq!(run(&mut f, b"~x\r~/").0, b"~x\r~/");
    }

    #[test]
    fn help_is_reported_and_line_start_kept() {
        let mut f = EscapeFilter::new(Some(b'~'));
        let (out, r) = run(&mut f, b"~?~.");
        assert!(out.is_empty());
        assert!(r.help && r.disconnect);
        assert!(f.help_text().contains("~.   - close the console"));
    }

    #[test]
    fn disabled_filter_passes_everything() {
        let mut f = EscapeFilter::new(None);
        assert_eq!(run(&mut f, b"\r~.").0, b"\r~.");
    }

    proptest! {
        #[test]
        fn input_without_escape_char_is_unchanged(input in proptest::collection::vec(any::<u8>().prop_filter("no ~", |b| *b != b'~'), 0..256)) {
            let mut f = EscapeFilter::new(Some(b'~'));
            let (out, r) = run(&mut f, &input);
            prop_assert_eq!(out, input);
            prop_assert_eq!(r, Requests::default());
        }

        #[test]
        fn chunking_does_not_matter(input in proptest::collection::vec(prop_oneof![Just(b'~'), Just(b'.'), Just(b'\r'), Just(b'?'), any::<u8>()], 0..128), cut in 0usize..128) {
            let cut = cut.min(input.len());
            let mut whole = EscapeFilter::new(Some(b'~'));
            let (a, ra) = run(&mut whole, &input);
            let mut parts = EscapeFilter::new(Some(b'~'));
            let (mut b, rb1) = run(&mut parts, &input[..cut]);
            if rb1.disconnect {
                prop_assert!(ra.disconnect);
                prop_assert_eq!(a, b);
            } else {
                let (b2, rb2) = run(&mut parts, &input[cut..]);
                b.extend(b2);
                prop_assert_eq!(a, b);
                prop_assert_eq!(ra.disconnect, rb2.disconnect);
                prop_assert_eq!(ra.help, rb1.help || rb2.help);
            }
        }
    }
}
