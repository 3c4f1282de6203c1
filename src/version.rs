//! `kata-runtime --version`, `-v` and `version` (spec §1.7).

use std::io::Write;

pub const VERSION: &str = env!("CARGO_PKG_VERSION");
/// Commit recorded by build.rs; empty when built outside git.
pub const COMMIT: &str = env!("KATA_RUNTIME_COMMIT");
pub const OCI_SPEC_VERSION: &str = "1.0.2-dev";
pub const UNKNOWN: &str = "<<unknown>>";

fn or_unknown(s: &str) -> &str {
    if s.is_empty() { UNKNOWN } else { s }
}

/// The commit, or `<<unknown>>` (one placeholder everywhere: Q30).
pub fn commit_or_unknown() -> &'static str {
    or_unknown(COMMIT)
}

pub fn text() -> String {
    format!(
        "kata-runtime  : {}\n   commit   : {}\n   OCI specs: {}\n",
        or_unknown(VERSION),
        commit_or_unknown(),
        or_unknown(OCI_SPEC_VERSION)
    )
}

pub fn print(out: &mut dyn Write) -> anyhow::Result<()> {
    out.write_all(text().as_bytes())?;
    out.flush()?;
    Ok(())
}

#[cfg(test)]
mod tests {
    #[test]
    fn empty_values_show_one_placeholder() {
        // spec Q30: `version` and `env` show the same placeholder for an unknown commit.
        assert_eq!(super::or_unknown(""), "<<unknown>>");
        assert_eq!(super::or_unknown("abc"), "abc");
    }

    #[test]
    fn three_lines() {
        let t = super::text();
        let lines: Vec<&str> = t.lines().collect();
        assert_eq!(lines.len(), 3);
        assert_eq!(lines[0], "kata-runtime  : 3.0.0");
        assert!(lines[1].starts_with("   commit   : "));
        assert_eq!(lines[2], "   OCI specs: 1.0.2-dev");
    }
}
