//! The context every command receives: host root, global options, logger. Built once by
//! the pre-command step in [`crate::app`]; nothing reads a global.

use std::cell::Cell;

use anyhow::Context as _;
use slog::{Logger, info, warn};

use crate::cli::GlobalArgs;
use crate::config::{self, AssetPolicy, Config, ConfigSource, NoteLevel};
use crate::paths::{self, HostRoot};

pub struct Context {
    pub host: HostRoot,
    pub global: GlobalArgs,
    pub log: Logger,
    announced_builtin: Cell<bool>,
}

impl Context {
    pub fn new(host: HostRoot, global: GlobalArgs, log: Logger) -> Self {
        Self {
            host,
            global,
            log,
            announced_builtin: Cell::new(false),
        }
    }

    /// Loads the configuration (`--config`, else the search paths under the host root,
    /// else the built-in default, which is announced once on stderr).
    pub fn load_config(&self, policy: AssetPolicy) -> anyhow::Result<Config> {
        let cfg = config::load(&self.host, self.global.config.as_deref(), policy)?;
        if cfg.source == ConfigSource::BuiltIn && !self.announced_builtin.replace(true) {
            eprintln!(
                "kata-runtime: no configuration file at {} or {}; using the built-in default (Kata Containers 3.0.0 qemu configuration)",
                paths::SYSCONF_CONFIG,
                paths::DEFAULT_CONFIG
            );
        }
        for note in &cfg.notes {
            match note.level {
                NoteLevel::Info => info!(self.log, "{}", note.message; "source" => "katautils"),
                NoteLevel::Warning => warn!(self.log, "{}", note.message; "source" => "katautils"),
            }
        }
        info!(self.log, "loaded configuration"; "file" => cfg.path_for_display(), "format" => "TOML", "source" => "katautils");
        Ok(cfg)
    }

    /// Standard output for results.
    pub fn stdout(&self) -> std::io::StdoutLock<'static> {
        std::io::stdout().lock()
    }
}

/// Runs `f` on a current-thread tokio runtime, for the commands that talk to peers.
pub fn block_on<F: std::future::Future>(f: F) -> anyhow::Result<F::Output> {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("cannot start the async runtime")?;
    Ok(rt.block_on(f))
}
