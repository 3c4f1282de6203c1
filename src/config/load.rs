//! Finding, reading and decoding the configuration (spec §2.1–§2.3, §2.7).

use std::fs;
use std::io;
use std::path::{Path, PathBuf};

use toml::{Table, Value};

use super::raw::{AGENT_KEYS, HYPERVISOR_KEYS, RawFile};
use super::{BUILTIN_CONFIG, Config, ConfigSource, LoadNote, NoteLevel};
use crate::errors::{op_path, os_text};
use crate::paths::{DEFAULT_CONFIG, HostRoot, SYSCONF_CONFIG};

/// What to do with configured assets (kernel, image, hypervisor binary, ...) that the host
/// lacks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AssetPolicy {
    /// Fail loading, naming the key and the path (the Go behaviour, Q10 wording fixed).
    Require,
    /// Keep going and list them in [`Config::missing_assets`] (`check`, the built-in default).
    Report,
}

/// A configuration that could not be loaded. The message names the file and, where there
/// is one, the key.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct LoadError {
    pub message: String,
}

impl LoadError {
    pub(super) fn new(message: impl Into<String>) -> Self {
        Self {
            message: message.into(),
        }
    }

    pub(super) fn in_file(file: &str, message: impl std::fmt::Display) -> Self {
        Self::new(format!("{file}: {message}"))
    }
}

/// Loads the configuration: `explicit` (taken as given) or the first of the two search
/// paths that exists under `host`; the built-in default when neither exists.
pub fn load(
    host: &HostRoot,
    explicit: Option<&Path>,
    policy: AssetPolicy,
) -> Result<Config, LoadError> {
    let (source, text, dropin_dir) = match explicit {
        Some(p) => {
            let abs = absolute(p).map_err(|e| LoadError::new(os_text(&e)))?;
            let resolved = match fs::canonicalize(&abs) {
                Ok(r) => r,
                Err(e) if e.kind() == io::ErrorKind::NotFound => {
                    return Err(LoadError::new(format!(
                        "Cannot find usable config file (file {} does not exist)",
                        abs.display()
                    )));
                }
                Err(e) => return Err(LoadError::new(op_path("lstat", &abs, &e))),
            };
            let text = fs::read_to_string(&resolved)
                .map_err(|e| LoadError::new(op_path("open", &resolved, &e)))?;
            let dir = resolved.parent().map(|d| d.join("config.d"));
            (ConfigSource::File(resolved), text, dir)
        }
        None => match find_default(host)? {
            Some(resolved) => {
                let on_disk = host.join(&resolved);
                let text = fs::read_to_string(&on_disk)
                    .map_err(|e| LoadError::new(op_path("open", &resolved, &e)))?;
                let dir = on_disk.parent().map(|d| d.join("config.d"));
                (ConfigSource::File(resolved), text, dir)
            }
            None => (ConfigSource::BuiltIn, BUILTIN_CONFIG.to_string(), None),
        },
    };
    let display = match &source {
        ConfigSource::File(p) => p.display().to_string(),
        ConfigSource::BuiltIn => "built-in default configuration".to_string(),
    };
    let mut notes = Vec::new();
    let mut table = decode_file(&display, &text)?;
    if let Some(dir) = dropin_dir {
        for file in dropin_files(&dir)? {
            let shown = file.display().to_string();
            let text = fs::read_to_string(&file).map_err(|e| {
                LoadError::new(format!("error reading file \"{shown}\": {}", os_text(&e)))
            })?;
            let dropin = decode_file(&shown, &text).map_err(|e| {
                LoadError::new(format!("error decoding drop-in file: {}", e.message))
            })?;
            for key in unknown_keys(&dropin) {
                notes.push(LoadNote {
                    level: NoteLevel::Warning,
                    message: format!("warning: undecoded keys in \"{shown}\": [{key}]"),
                });
            }
            merge_tables(&mut table, dropin);
        }
    }
    let policy = if source == ConfigSource::BuiltIn {
        AssetPolicy::Report
    } else {
        policy
    };
    let raw: RawFile = Value::Table(table)
        .try_into()
        .map_err(|e: toml::de::Error| LoadError::in_file(&display, e.message().trim()))?;
    super::build::build(host, source, &display, raw, policy, notes)
}

/// Loads configuration text directly (tests, benchmarks): no search, no drop-ins.
pub fn load_from_str(
    host: &HostRoot,
    name: &str,
    text: &str,
    policy: AssetPolicy,
) -> Result<Config, LoadError> {
    let table = decode_file(name, text)?;
    let raw: RawFile = Value::Table(table)
        .try_into()
        .map_err(|e: toml::de::Error| LoadError::in_file(name, e.message().trim()))?;
    super::build::build(
        host,
        ConfigSource::File(PathBuf::from(name)),
        name,
        raw,
        policy,
        Vec::new(),
    )
}

fn absolute(p: &Path) -> io::Result<PathBuf> {
    if p.is_absolute() {
        Ok(p.to_path_buf())
    } else {
        Ok(std::env::current_dir()?.join(p))
    }
}

/// The first search path that exists, resolved. `None` when neither exists; another
/// resolution error (permission denied, a loop) is reported rather than skipped.
fn find_default(host: &HostRoot) -> Result<Option<PathBuf>, LoadError> {
    for candidate in [SYSCONF_CONFIG, DEFAULT_CONFIG] {
        match host.canonicalize(candidate) {
            Ok(p) => return Ok(Some(p)),
            Err(e) if e.kind() == io::ErrorKind::NotFound => continue,
            Err(e) => {
                return Err(LoadError::new(format!(
                    "config file \"{candidate}\" unresolvable: {}",
                    os_text(&e)
                )));
            }
        }
    }
    Ok(None)
}

/// Drop-in files: regular `*.toml` files of `dir`, in name order (Q11: other names and
/// sub-directories are skipped). A missing directory has none.
fn dropin_files(dir: &Path) -> Result<Vec<PathBuf>, LoadError> {
    let entries = match fs::read_dir(dir) {
        Ok(e) => e,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => {
            return Err(LoadError::new(format!(
                "error reading \"{}\" directory: {}",
                dir.display(),
                os_text(&e)
            )));
        }
    };
    let mut files: Vec<PathBuf> = entries
        .filter_map(|e| e.ok())
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|x| x == "toml") && p.is_file())
        .collect();
    files.sort();
    Ok(files)
}

/// Parses one file and type-checks it, so that errors name the file, line and key. Struct
/// keys are then folded to lower case (the Go decoder matches them case-insensitively);
/// the names of `[hypervisor.X]` and `[agent.X]` tables stay as written.
fn decode_file(name: &str, text: &str) -> Result<Table, LoadError> {
    let table: Table = text
        .parse()
        .map_err(|e: toml::de::Error| toml_error(name, text, &e))?;
    if let Err(e) = toml::from_str::<RawFile>(text) {
        return Err(toml_error(name, text, &e));
    }
    Ok(fold_keys(table))
}

fn toml_error(name: &str, text: &str, e: &toml::de::Error) -> LoadError {
    let msg = e.message().trim().replace('\n', " ");
    match e.span() {
        Some(span) => {
            let line = text[..span.start.min(text.len())].matches('\n').count() + 1;
            match key_at(text, line) {
                Some(key) => LoadError::in_file(
                    name,
                    format!("toml: line {line} (last key \"{key}\"): {msg}"),
                ),
                None => LoadError::in_file(name, format!("toml: line {line}: {msg}")),
            }
        }
        None => LoadError::in_file(name, format!("toml: {msg}")),
    }
}

/// The dotted key defined on `line` (1-based): the last table header above it plus the
/// key before `=`.
fn key_at(text: &str, line: usize) -> Option<String> {
    let mut header = String::new();
    for (i, l) in text.lines().enumerate() {
        let t = l.trim();
        if i + 1 == line {
            let key = t
                .split_once('=')
                .map(|(k, _)| k.trim().trim_matches('"').to_string());
            return match key {
                Some(k) if !k.is_empty() && !t.starts_with('[') => Some(if header.is_empty() {
                    k
                } else {
                    format!("{header}.{k}")
                }),
                _ => None,
            };
        }
        if t.starts_with('[')
            && !t.starts_with("[[")
            && let Some(end) = t.find(']')
        {
            header = t[1..end].trim().to_string();
        }
    }
    None
}

fn fold_keys(table: Table) -> Table {
    table
        .into_iter()
        .map(|(k, v)| {
            let k = k.to_ascii_lowercase();
            let v = match (k.as_str(), v) {
                ("hypervisor" | "agent", Value::Table(named)) => Value::Table(
                    named
                        .into_iter()
                        .map(|(n, t)| (n, lower_table(t)))
                        .collect(),
                ),
                (_, v) => lower_table(v),
            };
            (k, v)
        })
        .collect()
}

fn lower_table(v: Value) -> Value {
    match v {
        Value::Table(t) => Value::Table(
            t.into_iter()
                .map(|(k, v)| (k.to_ascii_lowercase(), v))
                .collect(),
        ),
        v => v,
    }
}

/// Keys of `[hypervisor.X]`/`[agent.X]` tables that no hypervisor or agent uses.
fn unknown_keys(table: &Table) -> Vec<String> {
    let mut out = Vec::new();
    for (section, known) in [("hypervisor", HYPERVISOR_KEYS), ("agent", AGENT_KEYS)] {
        if let Some(Value::Table(named)) = table.get(section) {
            for (name, t) in named {
                if let Value::Table(t) = t {
                    for k in t.keys().filter(|k| !known.contains(&k.as_str())) {
                        out.push(format!("{section}.{name}.{k}"));
                    }
                }
            }
        }
    }
    out
}

/// Applies a drop-in over the values so far: key by key for every table, so keys absent
/// from the drop-in keep their earlier values; new hypervisor/agent tables are added.
fn merge_tables(base: &mut Table, over: Table) {
    for (k, v) in over {
        match (base.get_mut(&k), v) {
            (Some(Value::Table(b)), Value::Table(o)) => merge_tables(b, o),
            (_, v) => {
                base.insert(k, v);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn key_at_names_table_and_key() {
        let text = "[hypervisor.clh]\npath = \"/x\"\ndefault_memory = \"big\"\n";
        assert_eq!(
            key_at(text, 3).as_deref(),
            Some("hypervisor.clh.default_memory")
        );
    }

    #[test]
    fn type_errors_name_file_line_and_key() {
        let text = "[hypervisor.clh]\ndefault_memory = \"big\"\n";
        let e = decode_file("/c.toml", text).unwrap_err();
        assert!(
            e.message.starts_with(
                "/c.toml: toml: line 2 (last key \"hypervisor.clh.default_memory\"): "
            ),
            "{}",
            e.message
        );
    }

    #[test]
    fn keys_fold_case_but_table_names_do_not() {
        let t = decode_file(
            "x",
            "[RUNTIME]\nEnable_Debug = true\n[hypervisor.Qemu]\nPath = \"/q\"\n",
        )
        .unwrap();
        assert_eq!(t["runtime"]["enable_debug"].as_bool(), Some(true));
        assert_eq!(t["hypervisor"]["Qemu"]["path"].as_str(), Some("/q"));
    }

    #[test]
    fn dropins_merge_key_by_key() {
        let mut base = decode_file(
            "a",
            "[hypervisor.qemu]\npath = \"/q\"\ndefault_memory = 512\n",
        )
        .unwrap();
        let over = decode_file("b", "[hypervisor.qemu]\ndefault_memory = 1024\n").unwrap();
        merge_tables(&mut base, over);
        assert_eq!(base["hypervisor"]["qemu"]["path"].as_str(), Some("/q"));
        assert_eq!(
            base["hypervisor"]["qemu"]["default_memory"].as_integer(),
            Some(1024)
        );
    }
}
