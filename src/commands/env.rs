//! `kata-runtime env`.

use crate::context::Context;

pub fn run(_ctx: &Context, _args: &crate::cli::EnvArgs) -> anyhow::Result<()> {
    anyhow::bail!("kata-runtime env is not available yet in this build")
}
