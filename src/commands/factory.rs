//! `kata-runtime factory`.

use crate::context::Context;

pub fn run(_ctx: &Context, _args: &crate::cli::FactoryCommand) -> anyhow::Result<()> {
    anyhow::bail!("kata-runtime factory is not available yet in this build")
}
