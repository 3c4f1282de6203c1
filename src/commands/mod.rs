//! One module per command; [`run`] dispatches.

pub mod check;
pub mod direct_volume;
pub mod env;
pub mod exec;
pub mod factory;
pub mod iptables;
pub mod metrics;

use clap::CommandFactory as _;

use crate::cli::{Command, DirectVolumeArgs, FactoryArgs, IptablesArgs};
use crate::context::Context;

pub fn run(ctx: &Context, cmd: Command) -> anyhow::Result<()> {
    match cmd {
        Command::Check(a) => check::run(ctx, &a),
        Command::Env(a) => env::run(ctx, &a),
        Command::Exec(a) => exec::run(ctx, &a),
        Command::Metrics(a) => metrics::run(ctx, &a),
        Command::Factory(FactoryArgs { command: Some(c) }) => factory::run(ctx, &c),
        Command::DirectVolume(DirectVolumeArgs { command: Some(c) }) => direct_volume::run(ctx, &c),
        Command::Iptables(IptablesArgs { command: Some(c) }) => iptables::run(ctx, &c),
        // A group without a sub-command shows the group's help (exit 0, as the Go tool).
        Command::Factory(_) => group_help("factory"),
        Command::DirectVolume(_) => group_help("direct-volume"),
        Command::Iptables(_) => group_help("iptables"),
        Command::Help { .. } | Command::Version { .. } => {
            unreachable!("handled before the context is built")
        }
    }
}

fn group_help(name: &str) -> anyhow::Result<()> {
    let mut cmd = crate::cli::Cli::command();
    if let Some(sub) = cmd.find_subcommand_mut(name) {
        let mut sub = sub.clone().bin_name(format!("kata-runtime {name}"));
        sub.print_help()?;
    }
    Ok(())
}
