//! `kata-runtime metrics <sandbox id>`: the shim's Prometheus text, streamed to stdout
//! (spec §6.2).

use std::io::{BufWriter, Write};

use crate::cli::MetricsArgs;
use crate::context::{Context, block_on};
use crate::shim::{self, urls};

pub fn run(ctx: &Context, args: &MetricsArgs) -> anyhow::Result<()> {
    let sandbox = shim::resolve_sandbox(&ctx.host, args.sandbox_id.as_deref().unwrap_or(""))?;
    let timeout = shim::timeout_from_env();
    // Chunks go out as they arrive, so memory stays flat whatever the body size.
    let mut out = BufWriter::with_capacity(64 * 1024, ctx.stdout());
    block_on(async {
        shim::get_to_writer(&sandbox, urls::METRICS, timeout, &mut out).await?;
        // The Go tool printed the body followed by a newline.
        out.write_all(b"\n")?;
        out.flush()?;
        anyhow::Ok(())
    })?
}
