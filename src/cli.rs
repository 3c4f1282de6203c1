//! The command tree (spec §1, Appendix A) and the Go token rules that existing scripts
//! rely on (spec §1.2): single-dash long flags, `--bool=true|false`, and numbers with Go
//! base prefixes.

use std::ffi::OsString;
use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};

pub const NOTES: &str = "NOTES:

- Commands starting \"kata-\" and options starting \"--kata-\" are Kata Containers extensions.

URL:

  The canonical URL for this project is: https://github.com/kata-containers
";

/// How to leave the console and run one command (shown by `exec --help`).
pub const EXEC_NOTES: &str =
    "Standard input must be a terminal. To leave a console that no longer answers, type
Enter, then ~ and . (as in ssh); ~? lists the sequences and ~~ sends one ~. Choose
another escape character with -e (e.g. -e '^]'), or none with -e none.

kata-runtime exec SANDBOX_ID -- COMMAND [ARGS...] runs one command in the guest shell
without a terminal (stdin from /dev/null, stderr merged into stdout), prints its output
and exits with its exit status.";

#[derive(Debug, Parser)]
#[command(
    name = "kata-runtime",
    bin_name = "kata-runtime",
    about = "kata-runtime runtime",
    after_help = NOTES,
    before_help = "kata-runtime is a command line program for running applications packaged\naccording to the Open Container Initiative (OCI).",
    override_usage = "kata-runtime [global options] command [command options] [arguments...]",
    disable_version_flag = true,
    disable_help_subcommand = true,
    subcommand_value_name = "command",
)]
pub struct Cli {
    #[command(flatten)]
    pub global: GlobalArgs,

    #[command(subcommand)]
    pub command: Option<Command>,
}

/// Global options (spec §1.1). They are only accepted before the command, as in Go.
#[derive(Debug, Clone, Args)]
pub struct GlobalArgs {
    /// Kata Containers config file path
    #[arg(
        long = "config",
        visible_alias = "kata-config",
        value_name = "value",
        allow_hyphen_values = true
    )]
    pub config: Option<PathBuf>,

    /// set the log file path where internal debug information is written
    #[arg(
        long,
        value_name = "value",
        default_value = "/dev/null",
        allow_hyphen_values = true
    )]
    pub log: String,

    /// set the format used by logs ('text' (default), or 'json')
    #[arg(
        long = "log-format",
        value_name = "value",
        default_value = "text",
        allow_hyphen_values = true
    )]
    pub log_format: String,

    /// root directory for storage of container state (this should be located in tmpfs)
    #[arg(
        long,
        value_name = "value",
        default_value = "/var/run/kata-containers",
        allow_hyphen_values = true
    )]
    pub root: String,

    /// ignore cgroup permission errors ('true', 'false', or 'auto')
    #[arg(
        long,
        value_name = "value",
        default_value = "auto",
        allow_hyphen_values = true
    )]
    pub rootless: String,

    /// show config file paths that will be checked for (in order)
    #[arg(
        long = "show-default-config-paths",
        visible_alias = "kata-show-default-config-paths"
    )]
    pub show_default_config_paths: bool,

    /// enable systemd cgroup support, expects cgroupsPath to be of form "slice:prefix:name" for e.g. "system.slice:runc:434234"
    #[arg(long = "systemd-cgroup")]
    pub systemd_cgroup: bool,

    /// print the version
    #[arg(short = 'v', long = "version")]
    pub version: bool,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// display version details
    #[command(override_usage = "kata-runtime version [arguments...]")]
    Version {
        #[arg(hide = true)]
        extra: Vec<String>,
    },
    /// tests if system can run Kata Containers
    #[command(visible_alias = "kata-check", after_help = CHECK_LONG_ABOUT)]
    Check(CheckArgs),
    /// display settings. Default to TOML
    #[command(visible_alias = "kata-env")]
    Env(EnvArgs),
    /// Enter into guest by debug console
    #[command(after_help = EXEC_NOTES)]
    Exec(ExecArgs),
    /// gather metrics associated with infrastructure used to run a sandbox
    #[command(override_usage = "metrics <sandbox id>")]
    Metrics(MetricsArgs),
    /// manage vm factory
    Factory(FactoryArgs),
    /// directly assign a volume to Kata Containers to manage
    DirectVolume(DirectVolumeArgs),
    /// get or set iptables within the Kata Containers guest
    Iptables(IptablesArgs),
    /// Shows a list of commands or help for one command
    #[command(visible_alias = "h")]
    Help {
        /// the command (and sub-command) to show help for
        command: Vec<String>,
    },
}

pub const CHECK_LONG_ABOUT: &str = "DESCRIPTION:
   tests if system can run Kata Containers and version is current.

ENVIRONMENT VARIABLES:

- KATA_CHECK_NO_NETWORK: If set to any value, act as if \"--no-network-checks\" was specified.

EXAMPLES:

- Perform basic checks:

  $ kata-runtime check

- Local basic checks only:

  $ kata-runtime check --no-network-checks

- Perform further checks:

  $ sudo kata-runtime check

- Just check if a newer version is available:

  $ kata-runtime check --check-version-only

- List available releases (shows output in format \"version;release-date;url\"):

  $ kata-runtime check --only-list-releases

- List all available releases (includes pre-release versions):

  $ kata-runtime check --only-list-releases --include-all-releases";

#[derive(Debug, Clone, Default, Args)]
pub struct CheckArgs {
    /// Only compare the current and latest available versions (requires network, non-root only)
    #[arg(long = "check-version-only")]
    pub check_version_only: bool,
    /// Don't filter out pre-release release versions
    #[arg(long = "include-all-releases")]
    pub include_all_releases: bool,
    /// Do not run any checks using the network
    #[arg(short = 'n', long = "no-network-checks")]
    pub no_network_checks: bool,
    /// Only list newer available releases (non-root only)
    #[arg(long = "only-list-releases")]
    pub only_list_releases: bool,
    /// perform strict checking
    #[arg(short = 's', long)]
    pub strict: bool,
    /// display the list of checks performed
    #[arg(short = 'v', long)]
    pub verbose: bool,
    /// print one JSON document with every requirement and the verdict (kata-runtime-rs extension)
    #[arg(long)]
    pub json: bool,
    #[arg(hide = true)]
    pub extra: Vec<String>,
}

/// Environment variable that acts as `--no-network-checks`.
pub const NO_NETWORK_ENV: &str = "KATA_CHECK_NO_NETWORK";

impl CheckArgs {
    /// `--no-network-checks`, or `KATA_CHECK_NO_NETWORK` set to any non-empty value, even `0`
    /// or `false` (spec §3.1: "If set to any value").
    pub fn no_network(&self) -> bool {
        self.no_network_checks || std::env::var_os(NO_NETWORK_ENV).is_some_and(|v| !v.is_empty())
    }
}

#[derive(Debug, Clone, Default, Args)]
pub struct EnvArgs {
    /// Format output as JSON
    #[arg(long)]
    pub json: bool,
    #[arg(hide = true)]
    pub extra: Vec<String>,
}

#[derive(Debug, Clone, Default, Args)]
pub struct ExecArgs {
    /// Port that debug console is listening on. (Default: 1026)
    #[arg(long = "kata-debug-port", value_name = "value", default_value = "0", value_parser = parse_go_uint)]
    pub kata_debug_port: u64,
    /// escape character that starts the escape sequence (after Enter), or "none" to disable it
    #[arg(
        short = 'e',
        long = "escape-char",
        value_name = "char",
        default_value = "~"
    )]
    pub escape_char: String,
    /// seconds to wait for a hybrid-vsock VMM to answer CONNECT
    #[arg(
        long = "handshake-timeout",
        value_name = "seconds",
        default_value = "10",
        value_parser = clap::value_parser!(u64).range(1..=3600)
    )]
    pub handshake_timeout: u64,
    /// the sandbox ID (or a unique prefix of it)
    #[arg(value_name = "SANDBOX_ID")]
    pub sandbox_id: Option<String>,
    /// run this command in the guest shell instead of an interactive console
    #[arg(last = true, value_name = "COMMAND")]
    pub command: Vec<String>,
}

#[derive(Debug, Clone, Default, Args)]
pub struct MetricsArgs {
    /// the sandbox ID (or a unique prefix of it)
    #[arg(value_name = "sandbox id")]
    pub sandbox_id: Option<String>,
    #[arg(hide = true)]
    pub extra: Vec<String>,
}

#[derive(Debug, Args)]
#[command(
    override_usage = "kata-runtime factory command [command options] [arguments...]",
    subcommand_value_name = "command",
    disable_help_subcommand = true
)]
pub struct FactoryArgs {
    #[command(subcommand)]
    pub command: Option<FactorySub>,
}

/// A `factory` sub-command, or the group's own `help`/`h` (spec §1.5).
#[derive(Debug, Clone, Subcommand)]
pub enum FactorySub {
    #[command(flatten)]
    Run(FactoryCommand),
    /// Shows a list of commands or help for one command
    #[command(visible_alias = "h")]
    Help {
        /// the sub-command to show help for
        command: Vec<String>,
    },
}

#[derive(Debug, Clone, Subcommand)]
pub enum FactoryCommand {
    /// initialize a VM factory based on kata-runtime configuration
    #[command(override_usage = "kata-runtime factory init [arguments...]")]
    Init,
    /// destroy the VM factory
    #[command(override_usage = "kata-runtime factory destroy [arguments...]")]
    Destroy,
    /// query the status of VM factory
    #[command(override_usage = "kata-runtime factory status [arguments...]")]
    Status,
}

#[derive(Debug, Args)]
#[command(
    override_usage = "kata-runtime direct-volume command [command options] [arguments...]",
    subcommand_value_name = "command",
    disable_help_subcommand = true
)]
pub struct DirectVolumeArgs {
    #[command(subcommand)]
    pub command: Option<DirectVolumeSub>,
}

/// A `direct-volume` sub-command, or the group's own `help`/`h` (spec §1.5).
#[derive(Debug, Clone, Subcommand)]
pub enum DirectVolumeSub {
    #[command(flatten)]
    Run(DirectVolumeCommand),
    /// Shows a list of commands or help for one command
    #[command(visible_alias = "h")]
    Help {
        /// the sub-command to show help for
        command: Vec<String>,
    },
}

#[derive(Debug, Clone, Subcommand)]
pub enum DirectVolumeCommand {
    /// add a direct assigned block volume device to the Kata Containers runtime
    Add(VolumeAddArgs),
    /// remove a direct assigned block volume device from the Kata Containers runtime
    Remove(VolumePathArgs),
    /// get the filesystem stat of a direct assigned volume
    Stats(VolumePathArgs),
    /// resize a direct assigned block volume
    Resize(VolumeResizeArgs),
}

#[derive(Debug, Clone, Default, Args)]
pub struct VolumeAddArgs {
    /// the target volume path the volume is published to
    #[arg(long = "volume-path", value_name = "value", allow_hyphen_values = true)]
    pub volume_path: Option<String>,
    /// the mount info for the Kata Containers runtime to manage the volume
    #[arg(long = "mount-info", value_name = "value", allow_hyphen_values = true)]
    pub mount_info: Option<String>,
    #[arg(hide = true)]
    pub extra: Vec<String>,
}

#[derive(Debug, Clone, Default, Args)]
pub struct VolumePathArgs {
    /// the target volume path the volume is published to
    #[arg(long = "volume-path", value_name = "value", allow_hyphen_values = true)]
    pub volume_path: Option<String>,
    #[arg(hide = true)]
    pub extra: Vec<String>,
}

#[derive(Debug, Clone, Default, Args)]
pub struct VolumeResizeArgs {
    /// the target volume path the volume is published to
    #[arg(long = "volume-path", value_name = "value", allow_hyphen_values = true)]
    pub volume_path: Option<String>,
    /// the new size of the volume
    #[arg(long, value_name = "value", default_value = "0", value_parser = parse_go_uint)]
    pub size: u64,
    #[arg(hide = true)]
    pub extra: Vec<String>,
}

#[derive(Debug, Args)]
#[command(
    override_usage = "kata-runtime iptables command [command options] [arguments...]",
    subcommand_value_name = "command",
    disable_help_subcommand = true
)]
pub struct IptablesArgs {
    #[command(subcommand)]
    pub command: Option<IptablesSub>,
}

/// A `iptables` sub-command, or the group's own `help`/`h` (spec §1.5).
#[derive(Debug, Clone, Subcommand)]
pub enum IptablesSub {
    #[command(flatten)]
    Run(IptablesCommand),
    /// Shows a list of commands or help for one command
    #[command(visible_alias = "h")]
    Help {
        /// the sub-command to show help for
        command: Vec<String>,
    },
}

#[derive(Debug, Clone, Subcommand)]
pub enum IptablesCommand {
    /// get iptables from the Kata Containers guest
    Get(IptablesGetArgs),
    /// set iptables in a specifc Kata Containers guest based on file
    Set(IptablesSetArgs),
}

#[derive(Debug, Clone, Default, Args)]
pub struct IptablesGetArgs {
    /// the target sandbox for getting the iptables
    #[arg(long = "sandbox-id", value_name = "value", allow_hyphen_values = true)]
    pub sandbox_id: Option<String>,
    /// indicate we're requesting ipv6 iptables
    #[arg(long)]
    pub v6: bool,
    #[arg(hide = true)]
    pub extra: Vec<String>,
}

#[derive(Debug, Clone, Default, Args)]
pub struct IptablesSetArgs {
    /// the target sandbox for setting the iptables
    #[arg(long = "sandbox-id", value_name = "value", allow_hyphen_values = true)]
    pub sandbox_id: Option<String>,
    /// indicate we're requesting ipv6 iptables
    #[arg(long)]
    pub v6: bool,
    /// the file with the iptables rules to set
    #[arg(value_name = "FILE")]
    pub file: Option<PathBuf>,
    #[arg(hide = true)]
    pub extra: Vec<String>,
}

/// Parses an unsigned number the way Go's `strconv.ParseUint(s, 0, 64)` does: `0x`, `0o`,
/// `0b` prefixes, a leading `0` for octal, and `_` between digits when a prefix is given.
pub fn parse_go_uint(s: &str) -> Result<u64, String> {
    let err = || format!("invalid value \"{s}\": parse error");
    let lower = s.to_ascii_lowercase();
    let (radix, digits, prefixed) = if let Some(r) = lower.strip_prefix("0x") {
        (16, r, true)
    } else if let Some(r) = lower.strip_prefix("0o") {
        (8, r, true)
    } else if let Some(r) = lower.strip_prefix("0b") {
        (2, r, true)
    } else if lower.len() > 1 && lower.starts_with('0') {
        (8, &lower[1..], true)
    } else {
        (10, lower.as_str(), false)
    };
    if digits.is_empty() || digits.starts_with('_') && !prefixed {
        return Err(err());
    }
    if digits.contains('_') {
        // Go accepts underscores only with a base prefix, between digits.
        if !prefixed || digits.starts_with('_') || digits.ends_with('_') || digits.contains("__") {
            return Err(err());
        }
    }
    let clean: String = digits.chars().filter(|&c| c != '_').collect();
    u64::from_str_radix(&clean, radix).map_err(|_| err())
}

/// Long flags that are booleans somewhere in the tree (for `--flag=true|false`).
const BOOL_FLAGS: &[&str] = &[
    "show-default-config-paths",
    "kata-show-default-config-paths",
    "systemd-cgroup",
    "version",
    "help",
    "check-version-only",
    "include-all-releases",
    "no-network-checks",
    "only-list-releases",
    "strict",
    "verbose",
    "json",
    "v6",
];

/// Every long flag name in the tree (for single-dash spellings such as `-volume-path`).
const LONG_FLAGS: &[&str] = &[
    "config",
    "kata-config",
    "log",
    "log-format",
    "root",
    "rootless",
    "kata-debug-port",
    "escape-char",
    "handshake-timeout",
    "volume-path",
    "mount-info",
    "size",
    "sandbox-id",
];

/// Rewrites Go spellings into ones clap accepts: `-name[=v]` → `--name[=v]` for long
/// flags, `--bool=true` → `--bool`, `--bool=false` → dropped. Stops at `--`.
pub fn normalize_args<I, T>(args: I) -> Vec<OsString>
where
    I: IntoIterator<Item = T>,
    T: Into<OsString>,
{
    let mut out = Vec::new();
    let mut iter = args.into_iter().map(Into::into);
    if let Some(argv0) = iter.next() {
        out.push(argv0);
    }
    let mut value_next = false;
    for arg in iter.by_ref() {
        if value_next {
            value_next = false;
            out.push(arg);
            continue;
        }
        let Some(s) = arg.to_str() else {
            out.push(arg);
            continue;
        };
        if s == "--" {
            out.push(arg);
            break;
        }
        let body = s.strip_prefix("--").or_else(|| s.strip_prefix('-'));
        let Some(body) = body.filter(|b| !b.is_empty()) else {
            out.push(arg);
            continue;
        };
        let (name, value) = match body.split_once('=') {
            Some((n, v)) => (n, Some(v)),
            None => (body, None),
        };
        if BOOL_FLAGS.contains(&name) && name.len() > 1 {
            match value.map(parse_go_bool) {
                None => out.push(format!("--{name}").into()),
                Some(Some(true)) => out.push(format!("--{name}").into()),
                Some(Some(false)) => {}
                Some(None) => out.push(arg),
            }
        } else if LONG_FLAGS.contains(&name) {
            out.push(format!("--{body}").into());
            // Go takes the next token as the value even when it starts with `-`.
            value_next = value.is_none();
        } else {
            out.push(arg);
        }
    }
    out.extend(iter);
    out
}

/// Go's `strconv.ParseBool`.
pub fn parse_go_bool(s: &str) -> Option<bool> {
    match s {
        "1" | "t" | "T" | "TRUE" | "true" | "True" => Some(true),
        "0" | "f" | "F" | "FALSE" | "false" | "False" => Some(false),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    fn parse(args: &[&str]) -> Cli {
        let mut v = vec!["kata-runtime"];
        v.extend_from_slice(args);
        Cli::try_parse_from(normalize_args(v)).unwrap_or_else(|e| panic!("{args:?}: {e}"))
    }

    #[test]
    fn command_tree_is_consistent() {
        Cli::command().debug_assert();
    }

    #[test]
    fn go_uint_prefixes() {
        assert_eq!(parse_go_uint("010"), Ok(8));
        assert_eq!(parse_go_uint("0x1_0"), Ok(16));
        assert_eq!(parse_go_uint("0b11"), Ok(3));
        assert_eq!(parse_go_uint("0o17"), Ok(15));
        assert_eq!(parse_go_uint("1026"), Ok(1026));
        assert_eq!(parse_go_uint("0"), Ok(0));
        assert!(parse_go_uint("1_0").is_err());
        assert!(parse_go_uint("-1").is_err());
        assert!(parse_go_uint("").is_err());
        assert!(parse_go_uint("0x").is_err());
    }

    #[test]
    fn global_flag_spellings() {
        for spelling in [
            &["--config", "/c.toml", "env"][..],
            &["--kata-config", "/c.toml", "env"],
            &["-config", "/c.toml", "env"],
            &["--config=/c.toml", "env"],
            &["-kata-config=/c.toml", "env"],
        ] {
            assert_eq!(
                parse(spelling).global.config,
                Some(PathBuf::from("/c.toml")),
                "{spelling:?}"
            );
        }
        let c = parse(&[
            "--log",
            "/l",
            "--log-format",
            "json",
            "--root",
            "/r",
            "--rootless",
            "true",
            "--systemd-cgroup",
            "env",
        ]);
        assert_eq!(
            (c.global.log.as_str(), c.global.log_format.as_str()),
            ("/l", "json")
        );
        assert_eq!(
            (c.global.root.as_str(), c.global.rootless.as_str()),
            ("/r", "true")
        );
        assert!(c.global.systemd_cgroup);
        assert!(
            parse(&["--show-default-config-paths"])
                .global
                .show_default_config_paths
        );
        assert!(
            parse(&["--kata-show-default-config-paths"])
                .global
                .show_default_config_paths
        );
        assert!(
            parse(&["-show-default-config-paths=true"])
                .global
                .show_default_config_paths
        );
        assert!(
            !parse(&["--systemd-cgroup=false", "env"])
                .global
                .systemd_cgroup
        );
        assert!(parse(&["-v"]).global.version);
        assert!(parse(&["--version"]).global.version);
        let c = parse(&["env"]);
        assert_eq!(
            (c.global.log.as_str(), c.global.log_format.as_str()),
            ("/dev/null", "text")
        );
        assert_eq!(c.global.rootless, "auto");
    }

    #[test]
    fn command_aliases() {
        assert!(matches!(parse(&["check"]).command, Some(Command::Check(_))));
        assert!(matches!(
            parse(&["kata-check"]).command,
            Some(Command::Check(_))
        ));
        assert!(matches!(parse(&["env"]).command, Some(Command::Env(_))));
        assert!(matches!(
            parse(&["kata-env"]).command,
            Some(Command::Env(_))
        ));
        assert!(matches!(parse(&["h"]).command, Some(Command::Help { .. })));
        assert!(matches!(
            parse(&["help", "check"]).command,
            Some(Command::Help { .. })
        ));
        assert!(matches!(
            parse(&["version"]).command,
            Some(Command::Version { .. })
        ));
    }

    #[test]
    fn check_flags() {
        let Some(Command::Check(c)) = parse(&[
            "check",
            "-n",
            "-s",
            "-v",
            "--check-version-only",
            "--include-all-releases",
            "--only-list-releases",
            "--json",
        ])
        .command
        else {
            panic!()
        };
        assert!(c.no_network_checks && c.strict && c.verbose && c.check_version_only);
        assert!(c.include_all_releases && c.only_list_releases && c.json);
        let Some(Command::Check(c)) =
            parse(&["kata-check", "--no-network-checks", "--strict", "--verbose"]).command
        else {
            panic!()
        };
        assert!(c.no_network_checks && c.strict && c.verbose);
        let Some(Command::Check(c)) = parse(&["check", "-strict=true", "-verbose=false"]).command
        else {
            panic!()
        };
        assert!(c.strict && !c.verbose);
    }

    #[test]
    fn env_and_exec_and_metrics_flags() {
        let Some(Command::Env(e)) = parse(&["env", "-json"]).command else {
            panic!()
        };
        assert!(e.json);
        let Some(Command::Exec(e)) = parse(&["exec", "--kata-debug-port", "0x10", "abc"]).command
        else {
            panic!()
        };
        assert_eq!(
            (e.kata_debug_port, e.sandbox_id.as_deref()),
            (16, Some("abc"))
        );
        let Some(Command::Exec(e)) =
            parse(&["exec", "abc", "-kata-debug-port=010", "--", "uname", "-a"]).command
        else {
            panic!()
        };
        assert_eq!(e.kata_debug_port, 8);
        assert_eq!(e.command, vec!["uname", "-a"]);
        let Some(Command::Exec(e)) = parse(&["exec", "-e", "none", "abc"]).command else {
            panic!()
        };
        assert_eq!(e.escape_char, "none");
        assert_eq!(e.handshake_timeout, 10);
        let Some(Command::Exec(e)) =
            parse(&["exec", "abc", "-handshake-timeout", "2", "-e", "^]"]).command
        else {
            panic!()
        };
        assert_eq!((e.handshake_timeout, e.escape_char.as_str()), (2, "^]"));
        assert!(
            Cli::try_parse_from(normalize_args([
                "kata-runtime",
                "exec",
                "--handshake-timeout",
                "0",
                "x"
            ]))
            .is_err()
        );
        let Some(Command::Metrics(m)) = parse(&["metrics", "sb1"]).command else {
            panic!()
        };
        assert_eq!(m.sandbox_id.as_deref(), Some("sb1"));
    }

    #[test]
    fn group_commands_and_leaf_flags_after_positionals() {
        let Some(Command::Iptables(IptablesArgs {
            command: Some(IptablesSub::Run(IptablesCommand::Set(s))),
        })) = parse(&["iptables", "set", "rules.txt", "--sandbox-id", "X", "--v6"]).command
        else {
            panic!()
        };
        assert_eq!((s.sandbox_id.as_deref(), s.v6), (Some("X"), true));
        assert_eq!(s.file, Some(PathBuf::from("rules.txt")));
        let Some(Command::Iptables(IptablesArgs {
            command: Some(IptablesSub::Run(IptablesCommand::Get(g))),
        })) = parse(&["iptables", "get", "-sandbox-id", "-odd", "-v6=true"]).command
        else {
            panic!()
        };
        assert_eq!((g.sandbox_id.as_deref(), g.v6), (Some("-odd"), true));
        let Some(Command::DirectVolume(DirectVolumeArgs {
            command: Some(DirectVolumeSub::Run(DirectVolumeCommand::Add(a))),
        })) = parse(&[
            "direct-volume",
            "add",
            "-volume-path",
            "/v",
            "--mount-info={\"device\":\"/d\"}",
        ])
        .command
        else {
            panic!()
        };
        assert_eq!(a.volume_path.as_deref(), Some("/v"));
        assert_eq!(a.mount_info.as_deref(), Some("{\"device\":\"/d\"}"));
        let Some(Command::DirectVolume(DirectVolumeArgs {
            command: Some(DirectVolumeSub::Run(DirectVolumeCommand::Resize(r))),
        })) = parse(&[
            "direct-volume",
            "resize",
            "--volume-path",
            "/v",
            "--size",
            "0x1_0",
        ])
        .command
        else {
            panic!()
        };
        assert_eq!(r.size, 16);
        for sub in ["remove", "stats"] {
            assert!(matches!(
                parse(&["direct-volume", sub, "--volume-path", "/v"]).command,
                Some(Command::DirectVolume(DirectVolumeArgs { command: Some(_) }))
            ));
        }
        for sub in ["init", "destroy", "status"] {
            assert!(matches!(
                parse(&["factory", sub]).command,
                Some(Command::Factory(FactoryArgs { command: Some(_) }))
            ));
        }
        assert!(matches!(
            parse(&["factory"]).command,
            Some(Command::Factory(FactoryArgs { command: None }))
        ));
    }

    #[test]
    fn unknown_commands_and_misplaced_globals_are_errors() {
        for bad in [
            &["nosuch"][..],
            &["factory", "nosuch"],
            &["direct-volume", "nosuch"],
            &["iptables", "x"],
            &["env", "--config", "/x"],
        ] {
            let mut v = vec!["kata-runtime"];
            v.extend_from_slice(bad);
            assert!(Cli::try_parse_from(normalize_args(v)).is_err(), "{bad:?}");
        }
    }
}
