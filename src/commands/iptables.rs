//! `kata-runtime iptables`.

use crate::context::Context;

pub fn run(_ctx: &Context, _args: &crate::cli::IptablesCommand) -> anyhow::Result<()> {
    anyhow::bail!("kata-runtime iptables is not available yet in this build")
}
