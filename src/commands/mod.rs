//! One module per command; [`run`] dispatches.

pub mod check;
pub mod direct_volume;
pub mod env;
pub mod exec;
pub mod factory;
pub mod iptables;
pub mod metrics;

use crate::cli::{
    Command, DirectVolumeArgs, DirectVolumeSub, FactoryArgs, FactorySub, IptablesArgs, IptablesSub,
};
use crate::context::Context;

pub fn run(ctx: &Context, cmd: Command) -> anyhow::Result<()> {
    match cmd {
        Command::Check(a) => check::run(ctx, &a),
        Command::Env(a) => env::run(ctx, &a),
        Command::Exec(a) => exec::run(ctx, &a),
        Command::Metrics(a) => metrics::run(ctx, &a),
        Command::Factory(FactoryArgs {
            command: Some(FactorySub::Run(c)),
        }) => factory::run(ctx, &c),
        Command::DirectVolume(DirectVolumeArgs {
            command: Some(DirectVolumeSub::Run(c)),
        }) => direct_volume::run(ctx, &c),
        Command::Iptables(IptablesArgs {
            command: Some(IptablesSub::Run(c)),
        }) => iptables::run(ctx, &c),
        // Help forms are answered before the context is built (app::help_words); these arms
        // only serve callers of this function that skip that step.
        other => match crate::app::help_words(&other) {
            Some(words) => crate::app::help(&words),
            None => Ok(()),
        },
    }
}
