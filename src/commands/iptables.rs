//! `kata-runtime iptables get|set`: read or replace the guest's iptables through the
//! shim (spec §6.3).

use std::io::{BufWriter, Write};

use anyhow::Context as _;
use bytes::Bytes;

use crate::cli::IptablesCommand;
use crate::context::{Context, block_on};
use crate::errors::op_path;
use crate::shim::{self, urls};

pub fn run(ctx: &Context, cmd: &IptablesCommand) -> anyhow::Result<()> {
    match cmd {
        IptablesCommand::Get(a) => {
            let id = required_sandbox_id("get", a.sandbox_id.as_deref())?;
            let sandbox = shim::resolve_sandbox(&ctx.host, id)?;
            let url = if a.v6 {
                urls::IP6TABLES
            } else {
                urls::IPTABLES
            };
            let timeout = shim::timeout_from_env();
            let mut out = BufWriter::new(ctx.stdout());
            block_on(async {
                shim::get_to_writer(&sandbox, url, timeout, &mut out).await?;
                out.write_all(b"\n")?;
                out.flush()?;
                anyhow::Ok(())
            })?
        }
        IptablesCommand::Set(a) => {
            let id = required_sandbox_id("set", a.sandbox_id.as_deref())?;
            shim::validate_sandbox_id(id)?;
            let Some(file) = &a.file else {
                anyhow::bail!("iptables file not provided");
            };
            if std::fs::metadata(file).is_err() {
                anyhow::bail!("iptables file does not exist: {}", file.display());
            }
            let rules =
                std::fs::read(file).map_err(|e| anyhow::anyhow!(op_path("read", file, &e)))?;
            let sandbox = shim::resolve_sandbox(&ctx.host, id)?;
            let url = if a.v6 {
                urls::IP6TABLES
            } else {
                urls::IPTABLES
            };
            let timeout = shim::timeout_from_env();
            block_on(shim::put(
                &sandbox,
                url,
                "application/octet-stream",
                Bytes::from(rules),
                timeout,
            ))?
            .with_context(|| {
                format!(
                    "Error observed when making iptables-set request({})",
                    file.display()
                )
            })?;
            Ok(())
        }
    }
}

/// `--sandbox-id` is a required flag: without it the command's help goes to stdout and the
/// error to stderr, as urfave/cli does (spec §1.5).
fn required_sandbox_id<'a>(sub: &str, id: Option<&'a str>) -> anyhow::Result<&'a str> {
    if let Some(id) = id {
        return Ok(id);
    }
    let argv = ["kata-runtime", "iptables", sub, "--help"];
    if let Err(e) = crate::app::command().try_get_matches_from(argv) {
        let _ = e.print();
    }
    anyhow::bail!("Required flag \"sandbox-id\" not set")
}
