//! `kata-runtime check`.

use crate::context::Context;

pub fn run(_ctx: &Context, _args: &crate::cli::CheckArgs) -> anyhow::Result<()> {
    anyhow::bail!("kata-runtime check is not available yet in this build")
}
