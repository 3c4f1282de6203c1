//! `kata-runtime exec`.

use crate::context::Context;

pub fn run(_ctx: &Context, _args: &crate::cli::ExecArgs) -> anyhow::Result<()> {
    anyhow::bail!("kata-runtime exec is not available yet in this build")
}
