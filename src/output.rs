//! Writers for `env`'s two output formats, from one ordered value tree:
//! TOML in the layout of the Go tool's encoder (BurntSushi/toml v1.2.0, spec §4.3) and JSON as
//! Go's `encoding/json` writes it with two-space indentation and HTML escaping (spec §4.4).
//!
//! Scripts depend on the layout (`kata-collect-data.sh` takes the line after `[Image]`), so the
//! writers reproduce it rather than using a general-purpose serializer.

use std::fmt::Write as _;

/// One value of the tree.
#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    /// A Go nil slice: omitted in TOML, `null` in JSON.
    Null,
    Bool(bool),
    Int(i64),
    UInt(u64),
    Str(String),
    Array(Vec<Value>),
    Table(Table),
}

impl From<bool> for Value {
    fn from(v: bool) -> Self {
        Value::Bool(v)
    }
}

impl From<u32> for Value {
    fn from(v: u32) -> Self {
        Value::UInt(u64::from(v))
    }
}

impl From<u64> for Value {
    fn from(v: u64) -> Self {
        Value::UInt(v)
    }
}

impl From<i64> for Value {
    fn from(v: i64) -> Self {
        Value::Int(v)
    }
}

impl From<&str> for Value {
    fn from(v: &str) -> Self {
        Value::Str(v.to_string())
    }
}

impl From<String> for Value {
    fn from(v: String) -> Self {
        Value::Str(v)
    }
}

impl From<Table> for Value {
    fn from(v: Table) -> Self {
        Value::Table(v)
    }
}

/// A table whose keys keep the order they were added in (Go struct field order).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Table(Vec<(String, Value)>);

impl Table {
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds `key = value` and returns the table, for building trees in one expression.
    pub fn with(mut self, key: &str, value: impl Into<Value>) -> Self {
        self.0.push((key.to_string(), value.into()));
        self
    }

    pub fn entries(&self) -> &[(String, Value)] {
        &self.0
    }
}

// ---------------------------------------------------------------------------------------
// TOML
// ---------------------------------------------------------------------------------------

/// The table as the Go tool's TOML encoder writes it: plain keys first, then sub-tables as
/// `[A.B]` headers; two spaces of indentation per level; one blank line before every
/// top-level header (but not at the very start); nil values omitted.
pub fn to_toml(root: &Table) -> String {
    let mut w = TomlWriter { out: String::new() };
    w.table_body(&mut Vec::new(), root);
    w.out
}

struct TomlWriter {
    out: String,
}

fn is_table_array(v: &Value) -> bool {
    matches!(v, Value::Array(items) if !items.is_empty() && items.iter().all(|i| matches!(i, Value::Table(_))))
}

impl TomlWriter {
    /// A blank line, unless nothing has been written yet.
    fn blank_line(&mut self) {
        if !self.out.is_empty() {
            self.out.push('\n');
        }
    }

    fn indent(&mut self, levels: usize) {
        for _ in 0..levels {
            self.out.push_str("  ");
        }
    }

    fn table_body(&mut self, path: &mut Vec<String>, table: &Table) {
        // Plain keys first, in order.
        for (k, v) in table.entries() {
            if matches!(v, Value::Null | Value::Table(_)) || is_table_array(v) {
                continue;
            }
            self.indent(path.len());
            push_key(&mut self.out, k);
            self.out.push_str(" = ");
            inline_value(&mut self.out, v);
            self.out.push('\n');
        }
        // Then tables and arrays of tables, in order.
        for (k, v) in table.entries() {
            path.push(k.clone());
            match v {
                Value::Table(t) => {
                    if path.len() == 1 {
                        self.blank_line();
                    }
                    self.indent(path.len() - 1);
                    self.out.push('[');
                    push_path(&mut self.out, path);
                    self.out.push_str("]\n");
                    self.table_body(path, t);
                }
                Value::Array(items) if is_table_array(v) => {
                    for item in items {
                        if let Value::Table(t) = item {
                            self.blank_line();
                            self.indent(path.len() - 1);
                            self.out.push_str("[[");
                            push_path(&mut self.out, path);
                            self.out.push_str("]]\n");
                            self.table_body(path, t);
                        }
                    }
                }
                _ => {}
            }
            path.pop();
        }
    }
}

fn push_path(out: &mut String, path: &[String]) {
    for (i, k) in path.iter().enumerate() {
        if i > 0 {
            out.push('.');
        }
        push_key(out, k);
    }
}

/// Bare keys as they are; any other key quoted.
fn push_key(out: &mut String, key: &str) {
    let bare = !key.is_empty()
        && key
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-');
    if bare {
        out.push_str(key);
    } else {
        toml_string(out, key);
    }
}

fn inline_value(out: &mut String, v: &Value) {
    match v {
        Value::Null => {}
        Value::Bool(b) => out.push_str(if *b { "true" } else { "false" }),
        Value::Int(i) => {
            let _ = write!(out, "{i}");
        }
        Value::UInt(u) => {
            let _ = write!(out, "{u}");
        }
        Value::Str(s) => toml_string(out, s),
        Value::Array(items) => {
            out.push('[');
            let mut first = true;
            for item in items.iter().filter(|i| !matches!(i, Value::Null)) {
                if !first {
                    out.push_str(", ");
                }
                first = false;
                inline_value(out, item);
            }
            out.push(']');
        }
        Value::Table(t) => {
            out.push('{');
            let mut first = true;
            for (k, v) in t
                .entries()
                .iter()
                .filter(|(_, v)| !matches!(v, Value::Null))
            {
                if !first {
                    out.push_str(", ");
                }
                first = false;
                push_key(out, k);
                out.push_str(" = ");
                inline_value(out, v);
            }
            out.push('}');
        }
    }
}

/// A basic TOML string: `\"`, `\\`, `\b`, `\t`, `\n`, `\f`, `\r`; other C0 controls and DEL
/// as `\u00xx`; everything else (non-ASCII included) raw.
fn toml_string(out: &mut String, s: &str) {
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\u{8}' => out.push_str("\\b"),
            '\t' => out.push_str("\\t"),
            '\n' => out.push_str("\\n"),
            '\u{c}' => out.push_str("\\f"),
            '\r' => out.push_str("\\r"),
            c if (c as u32) < 0x20 || c == '\u{7f}' => {
                let _ = write!(out, "\\u{:04x}", c as u32);
            }
            c => out.push(c),
        }
    }
    out.push('"');
}

// ---------------------------------------------------------------------------------------
// JSON
// ---------------------------------------------------------------------------------------

/// The value as Go's `json.Encoder` with `SetIndent("", "  ")` writes it, final newline
/// included. Strings are HTML-escaped as Go does by default (spec Q29, kept for
/// compatibility): `<<unknown>>` is written `\u003c\u003cunknown\u003e\u003e`.
pub fn to_json(v: &Value) -> String {
    let mut out = String::new();
    json_value(&mut out, v, 0);
    out.push('\n');
    out
}

fn json_indent(out: &mut String, depth: usize) {
    out.push('\n');
    for _ in 0..depth {
        out.push_str("  ");
    }
}

fn json_value(out: &mut String, v: &Value, depth: usize) {
    match v {
        Value::Null => out.push_str("null"),
        Value::Bool(b) => out.push_str(if *b { "true" } else { "false" }),
        Value::Int(i) => {
            let _ = write!(out, "{i}");
        }
        Value::UInt(u) => {
            let _ = write!(out, "{u}");
        }
        Value::Str(s) => json_string(out, s),
        Value::Array(items) => {
            if items.is_empty() {
                out.push_str("[]");
                return;
            }
            out.push('[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                json_indent(out, depth + 1);
                json_value(out, item, depth + 1);
            }
            json_indent(out, depth);
            out.push(']');
        }
        Value::Table(t) => {
            if t.entries().is_empty() {
                out.push_str("{}");
                return;
            }
            out.push('{');
            for (i, (k, item)) in t.entries().iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                json_indent(out, depth + 1);
                json_string(out, k);
                out.push_str(": ");
                json_value(out, item, depth + 1);
            }
            json_indent(out, depth);
            out.push('}');
        }
    }
}

/// A JSON string as Go's encoding/json writes it, quotes included (request bodies that must
/// match the Go tool's bytes).
pub fn go_json_string(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    json_string(&mut out, s);
    out
}

/// Go's JSON string escaping: `\"`, `\\`, `\n`, `\r`, `\t`; other controls as `\u00xx`;
/// `<`, `>`, `&`, U+2028 and U+2029 as `\uXXXX`.
pub fn json_string(out: &mut String, s: &str) {
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            '<' | '>' | '&' | '\u{2028}' | '\u{2029}' => {
                let _ = write!(out, "\\u{:04x}", c as u32);
            }
            c if (c as u32) < 0x20 => {
                let _ = write!(out, "\\u{:04x}", c as u32);
            }
            c => out.push(c),
        }
    }
    out.push('"');
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> Table {
        Table::new()
            .with(
                "Kernel",
                Table::new().with("Path", "/k").with("Parameters", ""),
            )
            .with("Meta", Table::new().with("Version", "1.0.26"))
            .with(
                "Runtime",
                Table::new()
                    .with("Config", Table::new().with("Path", "/c.toml"))
                    .with("Path", "/bin/kata")
                    .with("Experimental", Value::Null)
                    .with(
                        "Version",
                        Table::new().with("OCI", "1.0.2-dev").with(
                            "Version",
                            Table::new().with("Semver", "3.0.0").with("Major", 3u64),
                        ),
                    )
                    .with("Debug", false),
            )
            .with(
                "Host",
                Table::new()
                    .with(
                        "AvailableGuestProtections",
                        Value::Array(vec!["tdx".into()]),
                    )
                    .with("Kernel", "6.1")
                    .with("Distro", Table::new().with("Name", "<<unknown>>"))
                    .with("SupportVSocks", true),
            )
    }

    #[test]
    fn toml_layout_matches_the_go_encoder() {
        let expected = r#"[Kernel]
  Path = "/k"
  Parameters = ""

[Meta]
  Version = "1.0.26"

[Runtime]
  Path = "/bin/kata"
  Debug = false
  [Runtime.Config]
    Path = "/c.toml"
  [Runtime.Version]
    OCI = "1.0.2-dev"
    [Runtime.Version.Version]
      Semver = "3.0.0"
      Major = 3

[Host]
  AvailableGuestProtections = ["tdx"]
  Kernel = "6.1"
  SupportVSocks = true
  [Host.Distro]
    Name = "<<unknown>>"
"#;
        assert_eq!(to_toml(&sample()), expected);
    }

    #[test]
    fn json_layout_matches_go_encoding_json() {
        let expected = r#"{
  "Kernel": {
    "Path": "/k",
    "Parameters": ""
  },
  "Meta": {
    "Version": "1.0.26"
  },
  "Runtime": {
    "Config": {
      "Path": "/c.toml"
    },
    "Path": "/bin/kata",
    "Experimental": null,
    "Version": {
      "OCI": "1.0.2-dev",
      "Version": {
        "Semver": "3.0.0",
        "Major": 3
      }
    },
    "Debug": false
  },
  "Host": {
    "AvailableGuestProtections": [
      "tdx"
    ],
    "Kernel": "6.1",
    "Distro": {
      "Name": "\u003c\u003cunknown\u003e\u003e"
    },
    "SupportVSocks": true
  }
}
"#;
        assert_eq!(to_json(&Value::Table(sample())), expected);
    }

    #[test]
    fn string_escapes() {
        let mut t = String::new();
        toml_string(&mut t, "a\"b\\c\u{8}\t\n\u{c}\r\u{1}\u{7f}é<&>");
        assert_eq!(t, r#""a\"b\\c\b\t\n\f\r\u0001\u007fé<&>""#);
        let mut j = String::new();
        json_string(
            &mut j,
            "a\"b\\c\u{8}\t\n\u{c}\r\u{1}\u{7f}é<&>\u{2028}\u{2029}",
        );
        assert_eq!(
            j,
            // Go leaves DEL raw in JSON.
            "\"a\\\"b\\\\c\\u0008\\t\\n\\u000c\\r\\u0001\u{7f}é\\u003c\\u0026\\u003e\\u2028\\u2029\""
        );
    }

    #[test]
    fn empty_and_odd_shapes() {
        let t = Table::new()
            .with("A", Value::Array(vec![]))
            .with("my key", 1i64)
            .with(
                "List",
                Value::Array(vec![
                    Value::Table(Table::new().with("Name", "x")),
                    Value::Table(Table::new().with("Name", "y")),
                ]),
            )
            .with("E", Table::new());
        assert_eq!(
            to_toml(&t),
            "A = []\n\"my key\" = 1\n\n[[List]]\n  Name = \"x\"\n\n[[List]]\n  Name = \"y\"\n\n[E]\n"
        );
        assert_eq!(
            to_json(&Value::Table(t)),
            "{\n  \"A\": [],\n  \"my key\": 1,\n  \"List\": [\n    {\n      \"Name\": \"x\"\n    },\n    {\n      \"Name\": \"y\"\n    }\n  ],\n  \"E\": {}\n}\n"
        );
    }

    #[test]
    fn written_toml_parses_back() {
        let text = to_toml(&sample());
        let v: toml::Table = text.parse().unwrap();
        assert_eq!(
            v["Runtime"]["Version"]["Version"]["Major"].as_integer(),
            Some(3)
        );
        assert_eq!(v["Host"]["Distro"]["Name"].as_str(), Some("<<unknown>>"));
        let j: serde_json::Value = serde_json::from_str(&to_json(&Value::Table(sample()))).unwrap();
        assert_eq!(j["Host"]["Distro"]["Name"], "<<unknown>>");
    }

    proptest::proptest! {
        #[test]
        fn any_string_reads_back_from_both_formats(s in "\\PC{0,40}|[\\x00-\\x7f]{0,40}") {
            let t = Table::new().with("S", Table::new().with("V", s.as_str()));
            let back: toml::Table = to_toml(&t).parse().unwrap();
            proptest::prop_assert_eq!(back["S"]["V"].as_str(), Some(s.as_str()));
            let j: serde_json::Value = serde_json::from_str(&to_json(&Value::Table(t))).unwrap();
            proptest::prop_assert_eq!(j["S"]["V"].as_str(), Some(s.as_str()));
        }
    }
}
