//! `kata-runtime direct-volume`.

use crate::context::Context;

pub fn run(_ctx: &Context, _args: &crate::cli::DirectVolumeCommand) -> anyhow::Result<()> {
    anyhow::bail!("kata-runtime direct-volume is not available yet in this build")
}
