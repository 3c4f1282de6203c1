//! The top-level algorithm (spec §1.3–§1.5): parse, help and version short-cuts, the
//! pre-command step (log destination, context), dispatch, and mapping the result to an
//! exit code. `main` only calls [`run`].

use std::ffi::OsString;
use std::io::Write;

use clap::{CommandFactory, FromArgMatches};
use slog::{Level, error, info};

use crate::cli::{Cli, Command, normalize_args};
use crate::commands;
use crate::context::Context;
use crate::errors::{Exit, is_broken_pipe};
use crate::logging::{Destination, LogFormat, LogrusDrain, logger};
use crate::paths::{self, HostRoot};
use crate::version;

/// The clap command with the runtime parts (version block) filled in.
pub fn command() -> clap::Command {
    // The version block indents only its first line, as the Go template does (spec §1.7).
    let after = format!(
        "VERSION:\n   {}\nNOTES:{}",
        version::text(),
        crate::cli::NOTES.trim_start_matches("NOTES:")
    );
    Cli::command().after_help(after)
}

/// Runs the program with `args` (including argv[0]) and returns the exit code.
pub fn run<I, T>(args: I) -> i32
where
    I: IntoIterator<Item = T>,
    T: Into<OsString>,
{
    let mut args: Vec<OsString> = args.into_iter().map(Into::into).collect();
    if args.len() > 1
        && args
            .last()
            .is_some_and(|a| a == "--generate-bash-completion")
    {
        args.pop();
        let words: Vec<String> = args
            .iter()
            .skip(1)
            .map(|a| a.to_string_lossy().into_owned())
            .collect();
        let mut out = std::io::stdout().lock();
        for line in completions(&words) {
            if writeln!(out, "{line}").is_err() {
                break;
            }
        }
        return 0;
    }
    let args = normalize_args(args);
    let matches = match command().try_get_matches_from(&args) {
        Ok(m) => m,
        Err(e) => {
            // Usage errors exit 1, as the Go tool's (spec §1.9): scripts compare exit codes.
            let code = match e.kind() {
                clap::error::ErrorKind::DisplayHelp | clap::error::ErrorKind::DisplayVersion => 0,
                _ => 1,
            };
            let _ = e.print();
            return code;
        }
    };
    let cli = match Cli::from_arg_matches(&matches) {
        Ok(c) => c,
        Err(e) => {
            let _ = e.print();
            return 1;
        }
    };
    match dispatch(cli, &args) {
        Ok(()) => 0,
        Err(e) => report(&e),
    }
}

/// Bash completion (spec §1.11): with `--generate-bash-completion` as the last word, the
/// command names, a group's sub-commands, or the flags matching a `-` prefix.
pub fn completions(words: &[String]) -> Vec<String> {
    fn names(cmd: &clap::Command) -> Vec<String> {
        let mut v = Vec::new();
        for sub in cmd.get_subcommands() {
            v.push(sub.get_name().to_string());
            v.extend(sub.get_visible_aliases().map(str::to_string));
        }
        v
    }
    fn flags(cmd: &clap::Command, prefix: &str) -> Vec<String> {
        let mut v = Vec::new();
        for a in cmd.get_arguments().filter(|a| !a.is_hide_set()) {
            for l in a.get_long_and_visible_aliases().unwrap_or_default() {
                let f = format!("--{l}");
                if f.starts_with(prefix) {
                    v.push(f);
                }
            }
        }
        v
    }
    let root = command();
    let positional: Vec<&String> = words.iter().filter(|w| !w.starts_with('-')).collect();
    let Some(first) = positional.first() else {
        return names(&root);
    };
    let Some(cmd) = root.find_subcommand(first.as_str()) else {
        return names(&root);
    };
    if cmd.has_subcommands() {
        let mut v = names(cmd);
        if !v.iter().any(|n| n == "help") {
            v.extend(["help".to_string(), "h".to_string()]);
        }
        return v;
    }
    match words.last() {
        Some(last) if last.starts_with('-') => {
            let mut v = flags(&root, last);
            v.extend(flags(cmd, last));
            v
        }
        _ => Vec::new(),
    }
}

fn report(e: &anyhow::Error) -> i32 {
    if let Some(Exit(code)) = e.downcast_ref::<Exit>() {
        return *code;
    }
    if is_broken_pipe(e) {
        return 0;
    }
    let _ = writeln!(std::io::stderr(), "{e:#}");
    1
}

/// The command and everything after it, as the Go tool logs them (`arguments`): the words
/// after the global options.
fn command_words(args: &[OsString]) -> String {
    const VALUE_FLAGS: &[&str] = &[
        "--config",
        "--kata-config",
        "--log",
        "--log-format",
        "--root",
        "--rootless",
    ];
    let mut i = 1;
    while let Some(a) = args.get(i) {
        let a = a.to_string_lossy();
        if !a.starts_with('-') || a == "--" {
            break;
        }
        i += if VALUE_FLAGS.contains(&a.as_ref()) {
            2
        } else {
            1
        };
    }
    args.iter()
        .skip(i)
        .map(|a| a.to_string_lossy().into_owned())
        .collect::<Vec<_>>()
        .join(" ")
}

fn dispatch(cli: Cli, args: &[OsString]) -> anyhow::Result<()> {
    let g = &cli.global;
    if g.version {
        return version::print(&mut std::io::stdout().lock());
    }
    if g.show_default_config_paths {
        let mut out = std::io::stdout().lock();
        writeln!(out, "{}", paths::SYSCONF_CONFIG)?;
        writeln!(out, "{}", paths::DEFAULT_CONFIG)?;
        return Ok(());
    }
    let Some(cmd) = cli.command else {
        command().print_help()?;
        return Ok(());
    };
    // Help and version never need a configuration, a log file or anything else (fixes Q3).
    if let Some(words) = help_words(&cmd) {
        return help(&words);
    }
    if let Command::Version { .. } = cmd {
        return version::print(&mut std::io::stdout().lock());
    }

    let format = LogFormat::parse(&g.log_format).map_err(anyhow::Error::msg)?;
    if !g.rootless.is_empty()
        && !g.rootless.eq_ignore_ascii_case("auto")
        && crate::cli::parse_go_bool(&g.rootless).is_none()
    {
        anyhow::bail!(
            "invalid --rootless value \"{}\": use true, false or auto",
            g.rootless
        );
    }
    let host = HostRoot::from_env();
    let name = command_name(&cmd);
    let syslog = Some(host.join("/dev/log"));
    let log = match &cmd {
        // `check` logs to stderr; `--log` is for the other commands (spec §1.4).
        Command::Check(a) => {
            let level = if a.verbose {
                Level::Info
            } else {
                Level::Warning
            };
            logger(
                LogrusDrain::new(Destination::Stderr, LogFormat::Text, level, None),
                None,
            )
        }
        _ => {
            let dest = Destination::open(&g.log).map_err(anyhow::Error::msg)?;
            logger(
                LogrusDrain::new(dest, format, Level::Info, syslog),
                Some(name),
            )
        }
    };
    let ctx = Context::new(host, cli.global.clone(), log);
    info!(ctx.log, ""; "version" => version::VERSION, "commit" => version::commit_or_unknown(), "arguments" => format!("\"{}\"", command_words(args)));
    let result = commands::run(&ctx, cmd);
    if let Err(e) = &result
        && e.downcast_ref::<Exit>().is_none()
        && !is_broken_pipe(e)
    {
        error!(ctx.log, "{e:#}");
    }
    result
}

fn command_name(cmd: &Command) -> &'static str {
    match cmd {
        Command::Version { .. } => "version",
        Command::Check(_) => "check",
        Command::Env(_) => "env",
        Command::Exec(_) => "exec",
        Command::Metrics(_) => "metrics",
        Command::Factory(_) => "factory",
        Command::DirectVolume(_) => "direct-volume",
        Command::Iptables(_) => "iptables",
        Command::Help { .. } => "help",
    }
}

/// The command path whose help a help form asks for: `help [CMD [SUB]]`, a group named
/// without a sub-command, or `GROUP help|h [SUB]`. `None` for everything else.
pub fn help_words(cmd: &Command) -> Option<Vec<String>> {
    use crate::cli::{
        DirectVolumeArgs, DirectVolumeSub, FactoryArgs, FactorySub, IptablesArgs, IptablesSub,
    };
    let group = |name: &str, rest: Option<&Vec<String>>| {
        let mut v = vec![name.to_string()];
        v.extend(rest.into_iter().flatten().cloned());
        Some(v)
    };
    match cmd {
        Command::Help { command } => Some(command.clone()),
        Command::Factory(FactoryArgs { command: None }) => group("factory", None),
        Command::Factory(FactoryArgs {
            command: Some(FactorySub::Help { command }),
        }) => group("factory", Some(command)),
        Command::DirectVolume(DirectVolumeArgs { command: None }) => group("direct-volume", None),
        Command::DirectVolume(DirectVolumeArgs {
            command: Some(DirectVolumeSub::Help { command }),
        }) => group("direct-volume", Some(command)),
        Command::Iptables(IptablesArgs { command: None }) => group("iptables", None),
        Command::Iptables(IptablesArgs {
            command: Some(IptablesSub::Help { command }),
        }) => group("iptables", Some(command)),
        _ => None,
    }
}

/// `help [CMD [SUB]]`: the help of that command, with no configuration needed.
pub fn help(words: &[String]) -> anyhow::Result<()> {
    let mut cmd = command();
    if words.is_empty() {
        cmd.print_help()?;
        return Ok(());
    }
    let mut current = &mut cmd;
    for w in words {
        match current.find_subcommand_mut(w) {
            Some(sub) => current = sub,
            None => anyhow::bail!("Invalid command \"{w}\""),
        }
    }
    // Render through a parse so the usage line carries the full command path.
    let mut argv: Vec<String> = vec!["kata-runtime".into()];
    argv.extend(words.iter().cloned());
    argv.push("--help".into());
    match command().try_get_matches_from(argv) {
        Err(e) if e.kind() == clap::error::ErrorKind::DisplayHelp => {
            e.print()?;
            Ok(())
        }
        _ => {
            current.print_help()?;
            Ok(())
        }
    }
}
