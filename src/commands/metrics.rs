//! `kata-runtime metrics`.

use crate::context::Context;

pub fn run(_ctx: &Context, _args: &crate::cli::MetricsArgs) -> anyhow::Result<()> {
    anyhow::bail!("kata-runtime metrics is not available yet in this build")
}
