//! `os-release` parsing for `env`'s `Host.Distro` (spec §4.2): `NAME` and `VERSION_ID` from
//! `/etc/os-release`, then `/usr/lib/os-release` for whatever is still missing.
//!
//! Values are shell-unquoted as os-release(5) defines them (spec Q26: the Go tool cut values
//! at a second `=` and did not strip single quotes).

use crate::paths::{ETC_OS_RELEASE, HostRoot, USR_LIB_OS_RELEASE};

/// The distribution facts `env` shows; `None` when no file had the key (or it was empty).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Distro {
    pub name: Option<String>,
    pub version: Option<String>,
}

/// The first non-empty `NAME=` and `VERSION_ID=` values of one file's text.
pub fn parse(text: &str) -> Distro {
    let mut d = Distro::default();
    for line in text.lines() {
        let Some((key, raw)) = line.trim_start().split_once('=') else {
            continue;
        };
        let slot = match key {
            "NAME" => &mut d.name,
            "VERSION_ID" => &mut d.version,
            _ => continue,
        };
        if slot.is_none() {
            let v = unquote(raw);
            if !v.is_empty() {
                *slot = Some(v);
            }
        }
    }
    d
}

/// Shell-style unquoting of one assignment value: `"..."` (with `\"`, `\\`, `\$`, `` \` ``
/// escapes), `'...'` (literal) and unquoted text (`\x` is `x`), concatenated; an unquoted
/// space or `#` ends the value. An unterminated quote takes the rest of the line.
pub fn unquote(raw: &str) -> String {
    let mut out = String::new();
    let mut chars = raw.trim().chars();
    while let Some(c) = chars.next() {
        match c {
            '"' => {
                while let Some(c) = chars.next() {
                    match c {
                        '"' => break,
                        '\\' => match chars.next() {
                            Some(n @ ('"' | '\\' | '$' | '`')) => out.push(n),
                            Some(n) => {
                                out.push('\\');
                                out.push(n);
                            }
                            None => out.push('\\'),
                        },
                        c => out.push(c),
                    }
                }
            }
            '\'' => {
                for c in chars.by_ref() {
                    if c == '\'' {
                        break;
                    }
                    out.push(c);
                }
            }
            '\\' => {
                if let Some(n) = chars.next() {
                    out.push(n);
                }
            }
            c if c.is_whitespace() || c == '#' => break,
            c => out.push(c),
        }
    }
    out
}

/// Reads `Host.Distro` under the host root. A missing file is skipped (as the Go tool does);
/// an unreadable one is reported through `warn` and skipped too, so that `env` still prints
/// everything else.
pub fn read(host: &HostRoot, warn: &mut dyn FnMut(String)) -> Distro {
    let mut d = Distro::default();
    for file in [ETC_OS_RELEASE, USR_LIB_OS_RELEASE] {
        if d.name.is_some() && d.version.is_some() {
            break;
        }
        match super::read_host_file_lossy_opt(host, file) {
            Ok(Some(text)) => {
                let found = parse(&text);
                if d.name.is_none() {
                    d.name = found.name;
                }
                if d.version.is_none() {
                    d.version = found.version;
                }
            }
            Ok(None) => {}
            Err(e) => warn(format!(
                "cannot read the distribution name and version: {e}"
            )),
        }
    }
    d
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn first_values_win_and_quotes_go() {
        let d = parse(
            "PRETTY_NAME=\"Debian GNU/Linux 12 (bookworm)\"\nNAME=\"Debian GNU/Linux\"\nVERSION_ID=\"12\"\nNAME=Other\n",
        );
        assert_eq!(d.name.as_deref(), Some("Debian GNU/Linux"));
        assert_eq!(d.version.as_deref(), Some("12"));
    }

    #[test]
    fn q26_equals_signs_and_single_quotes_are_kept_whole() {
        let d = parse("NAME='Acme=Linux \"Pro\"'\nVERSION_ID=1.2=beta\n");
        assert_eq!(d.name.as_deref(), Some("Acme=Linux \"Pro\""));
        assert_eq!(d.version.as_deref(), Some("1.2=beta"));
        assert_eq!(unquote(r#""a \"b\" \$c \\ \n""#), r#"a "b" $c \ \n"#);
        assert_eq!(unquote("plain # comment"), "plain");
        assert_eq!(unquote("\"unterminated"), "unterminated");
        assert_eq!(unquote("a\"b c\"'d'"), "ab cd");
    }

    #[test]
    fn empty_or_absent_values_are_none() {
        assert_eq!(parse("NAME=\nVERSION=1\n"), Distro::default());
        assert_eq!(parse(""), Distro::default());
        // Only exact keys count.
        assert_eq!(parse("XNAME=a\nNAMES=b\n").name, None);
    }

    proptest::proptest! {
        #[test]
        fn parse_never_panics(text in "\\PC{0,300}") {
            let _ = parse(&text);
        }
    }
}
