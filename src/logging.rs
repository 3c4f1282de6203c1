//! Logging with slog in the Go tool's logrus layout (spec §1.8): `time`, `level`, `msg`,
//! then the fields sorted by key (`arch`, `command`, `name`, `pid`, `source`, ...), or one
//! JSON object a line with `--log-format json`. Syslog is best effort (fixes Q2): a host
//! without `/dev/log` loses nothing but the syslog copy.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::fs::OpenOptions;
use std::io::{self, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::os::unix::net::UnixDatagram;
use std::path::{Path, PathBuf};
use std::sync::{Mutex, OnceLock};

use slog::{Drain, KV, Level, Logger, OwnedKVList, Record, o};

/// The record layout.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogFormat {
    Text,
    Json,
}

impl LogFormat {
    pub fn parse(s: &str) -> Result<Self, String> {
        match s {
            "text" => Ok(LogFormat::Text),
            "json" => Ok(LogFormat::Json),
            other => Err(format!(
                "unknown log-format \"{other}\" (use \"text\" or \"json\")"
            )),
        }
    }
}

/// Where records go.
pub enum Destination {
    Stderr,
    File(std::fs::File),
    Sink,
}

impl Destination {
    /// `--log`: `""` is stderr, `/dev/null` writes nothing, anything else is opened for
    /// append (created with mode 0640).
    pub fn open(path: &str) -> Result<Self, String> {
        match path {
            "" => Ok(Destination::Stderr),
            "/dev/null" => Ok(Destination::Sink),
            p => OpenOptions::new()
                .create(true)
                .append(true)
                .mode(0o640)
                .custom_flags(libc::O_SYNC)
                .open(p)
                .map(Destination::File)
                .map_err(|e| crate::errors::op_path("open", Path::new(p), &e)),
        }
    }
}

/// The drain: formats a record and writes it, plus a best-effort syslog copy.
pub struct LogrusDrain {
    dest: Mutex<Destination>,
    format: LogFormat,
    level: Level,
    syslog: Option<Syslog>,
}

/// The syslog destination and the one datagram socket used for every record, created on the
/// first record (no record, no socket).
struct Syslog {
    path: PathBuf,
    socket: OnceLock<Option<UnixDatagram>>,
}

impl LogrusDrain {
    pub fn new(
        dest: Destination,
        format: LogFormat,
        level: Level,
        syslog: Option<PathBuf>,
    ) -> Self {
        Self {
            dest: Mutex::new(dest),
            format,
            level,
            syslog: syslog.map(|path| Syslog {
                path,
                socket: OnceLock::new(),
            }),
        }
    }
}

/// logrus level names.
fn level_name(l: Level) -> &'static str {
    match l {
        Level::Critical => "fatal",
        Level::Error => "error",
        Level::Warning => "warning",
        Level::Info => "info",
        Level::Debug => "debug",
        Level::Trace => "trace",
    }
}

/// A record's fields with their types kept, so JSON logs show numbers and booleans as
/// logrus does (`"pid":1234`), not as strings.
pub type Fields = BTreeMap<String, serde_json::Value>;

struct Collect(Fields);

impl Collect {
    fn put(&mut self, key: slog::Key, v: impl Into<serde_json::Value>) -> slog::Result {
        self.0.insert(key.to_string(), v.into());
        Ok(())
    }
}

impl slog::Serializer for Collect {
    fn emit_arguments(&mut self, key: slog::Key, val: &std::fmt::Arguments) -> slog::Result {
        self.put(key, val.to_string())
    }
    fn emit_bool(&mut self, key: slog::Key, val: bool) -> slog::Result {
        self.put(key, val)
    }
    fn emit_u8(&mut self, key: slog::Key, val: u8) -> slog::Result {
        self.put(key, val)
    }
    fn emit_u16(&mut self, key: slog::Key, val: u16) -> slog::Result {
        self.put(key, val)
    }
    fn emit_u32(&mut self, key: slog::Key, val: u32) -> slog::Result {
        self.put(key, val)
    }
    fn emit_u64(&mut self, key: slog::Key, val: u64) -> slog::Result {
        self.put(key, val)
    }
    fn emit_usize(&mut self, key: slog::Key, val: usize) -> slog::Result {
        self.put(key, val as u64)
    }
    fn emit_i8(&mut self, key: slog::Key, val: i8) -> slog::Result {
        self.put(key, val)
    }
    fn emit_i16(&mut self, key: slog::Key, val: i16) -> slog::Result {
        self.put(key, val)
    }
    fn emit_i32(&mut self, key: slog::Key, val: i32) -> slog::Result {
        self.put(key, val)
    }
    fn emit_i64(&mut self, key: slog::Key, val: i64) -> slog::Result {
        self.put(key, val)
    }
    fn emit_isize(&mut self, key: slog::Key, val: isize) -> slog::Result {
        self.put(key, val as i64)
    }
}

impl Drain for LogrusDrain {
    type Ok = ();
    type Err = slog::Never;

    fn log(&self, record: &Record, values: &OwnedKVList) -> Result<(), slog::Never> {
        if !record.level().is_at_least(self.level) {
            return Ok(());
        }
        let mut fields = Collect(BTreeMap::new());
        // Logger fields first, then the record's own: a per-call field wins (spec §1.8).
        let _ = values.serialize(record, &mut fields);
        let _ = record.kv().serialize(record, &mut fields);
        let msg = record.msg().to_string();
        let time = rfc3339_now();
        let line = match self.format {
            LogFormat::Text => text_line(&time, record.level(), &msg, &fields.0),
            LogFormat::Json => json_line(&time, record.level(), &msg, &fields.0),
        };
        if let Ok(mut dest) = self.dest.lock() {
            let _ = match &mut *dest {
                Destination::Stderr => io::stderr().write_all(line.as_bytes()),
                Destination::File(f) => f.write_all(line.as_bytes()),
                Destination::Sink => Ok(()),
            };
        }
        if let Some(syslog) = &self.syslog
            && let Some(socket) = syslog.socket.get_or_init(|| UnixDatagram::unbound().ok())
        {
            send_syslog(
                socket,
                &syslog.path,
                record.level(),
                &text_line(&time, record.level(), &msg, &fields.0),
            );
        }
        Ok(())
    }
}

/// Go `%q`-style quoting when a value has characters outside logrus's safe set.
fn needs_quoting(s: &str) -> bool {
    s.chars()
        .any(|c| !(c.is_ascii_alphanumeric() || "-._/@^+".contains(c)))
}

fn quote(s: &str) -> String {
    serde_json::to_string(s).unwrap_or_else(|_| format!("\"{s}\""))
}

pub fn text_line(time: &str, level: Level, msg: &str, fields: &Fields) -> String {
    let mut line = format!("time=\"{time}\" level={}", level_name(level));
    if !msg.is_empty() {
        let _ = write!(line, " msg={}", quote(msg));
    }
    for (k, v) in fields {
        match v {
            serde_json::Value::String(v) if needs_quoting(v) => {
                let _ = write!(line, " {k}={}", quote(v));
            }
            serde_json::Value::String(v) => {
                let _ = write!(line, " {k}={v}");
            }
            other => {
                let _ = write!(line, " {k}={other}");
            }
        }
    }
    line.push('\n');
    line
}

pub fn json_line(time: &str, level: Level, msg: &str, fields: &Fields) -> String {
    let mut map: BTreeMap<&str, serde_json::Value> = fields
        .iter()
        .map(|(k, v)| (k.as_str(), v.clone()))
        .collect();
    map.insert("level", level_name(level).into());
    map.insert("msg", msg.into());
    map.insert("time", time.into());
    let mut line = serde_json::to_string(&map).unwrap_or_default();
    line.push('\n');
    line
}

/// Syslog severity per level, facility user (spec Q52: the Go tool used kern by mistake).
fn send_syslog(socket: &UnixDatagram, path: &Path, level: Level, text: &str) {
    let severity = match level {
        Level::Critical | Level::Error => 3,
        Level::Warning => 4,
        Level::Info => 6,
        Level::Debug | Level::Trace => 7,
    };
    let pri = 8 + severity; // LOG_USER
    let msg = format!("<{pri}>kata[{}]: {}", std::process::id(), text.trim_end());
    let _ = socket.send_to(msg.as_bytes(), path);
}

/// Local time as RFC 3339 with seconds and the zone offset, like logrus.
pub fn rfc3339_now() -> String {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs() as libc::time_t)
        .unwrap_or(0);
    // SAFETY: `tm` is a plain C struct for which all-zero bytes are a valid value.
    let mut tm: libc::tm = unsafe { std::mem::zeroed() };
    // SAFETY: both pointers refer to live, properly aligned locals for the whole call.
    if unsafe { libc::localtime_r(&now, &mut tm) }.is_null() {
        return String::new();
    }
    let off = tm.tm_gmtoff;
    let zone = if off == 0 {
        "Z".to_string()
    } else {
        let sign = if off < 0 { '-' } else { '+' };
        let off = off.abs();
        format!("{sign}{:02}:{:02}", off / 3600, (off % 3600) / 60)
    };
    format!(
        "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}{zone}",
        tm.tm_year + 1900,
        tm.tm_mon + 1,
        tm.tm_mday,
        tm.tm_hour,
        tm.tm_min,
        tm.tm_sec
    )
}

/// The root logger with the base fields every record carries.
pub fn logger(drain: LogrusDrain, command: Option<&str>) -> Logger {
    let base = Logger::root(
        drain.fuse(),
        o!(
            "name" => "kata-runtime",
            "source" => "runtime",
            "arch" => crate::host::go_arch(),
            "pid" => std::process::id(),
        ),
    );
    match command {
        Some(c) => base.new(o!("command" => c.to_string())),
        None => base,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn text_layout_sorts_fields_and_quotes_when_needed() {
        let mut f = Fields::new();
        f.insert("name".to_string(), "vmx".into());
        f.insert("description".to_string(), "Virtualization support".into());
        f.insert("pid".to_string(), 42u32.into());
        let line = text_line("T", Level::Error, "CPU property not found", &f);
        assert_eq!(
            line,
            "time=\"T\" level=error msg=\"CPU property not found\" description=\"Virtualization support\" name=vmx pid=42\n"
        );
    }

    #[test]
    fn json_layout_has_level_msg_time() {
        let mut f = Fields::new();
        f.insert("arch".to_string(), "amd64".into());
        f.insert("pid".to_string(), 42u32.into());
        let v: serde_json::Value =
            serde_json::from_str(&json_line("T", Level::Info, "m", &f)).unwrap();
        assert_eq!(v["pid"], 42, "numbers stay numbers, as logrus writes them");
        assert_eq!(v["level"], "info");
        assert_eq!(v["msg"], "m");
        assert_eq!(v["arch"], "amd64");
    }

    #[test]
    fn log_format_is_validated() {
        assert_eq!(LogFormat::parse("json"), Ok(LogFormat::Json));
        assert!(
            LogFormat::parse("xml")
                .unwrap_err()
                .contains("unknown log-format \"xml\"")
        );
    }
}
