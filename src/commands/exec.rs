//! `kata-runtime exec [--kata-debug-port N] SANDBOX_ID [-- COMMAND...]` (spec §5): find the
//! sandbox's shim, ask it for the agent URL, dial the guest's debug console, and either
//! hand the local terminal to the guest shell or run one command and return its status.

use std::io;
use std::os::fd::{AsFd, OwnedFd};
use std::time::Duration;

use anyhow::Context as _;
use slog::info;

use crate::cli::ExecArgs;
use crate::console::dial::{self, DialOptions};
use crate::console::escape::parse_escape_char;
use crate::console::oneshot;
use crate::console::session::{self, Outcome, Signals};
use crate::console::terminal::{self, RawTerminal, TerminalError};
use crate::console::url::{AgentUrl, ConsoleTarget, debug_port, parse_agent_url};
use crate::context::{self, Context};
use crate::errors::Exit;
use crate::shim;

pub fn run(ctx: &Context, args: &ExecArgs) -> anyhow::Result<()> {
    // Everything that can be checked locally is checked before any connection is made.
    let port = debug_port(args.kata_debug_port)?;
    let escape = parse_escape_char(&args.escape_char)?;
    let id = args.sandbox_id.as_deref().unwrap_or("");
    shim::validate_sandbox_id(id)?;
    let one_shot = if args.command.is_empty() {
        // spec Q31: a clean error instead of the Go tool's panic.
        if !terminal::is_terminal(io::stdin().as_fd()) {
            return Err(TerminalError::NotATerminal.into());
        }
        None
    } else {
        let token = oneshot::new_token();
        let line = oneshot::command_line(&args.command, &token)?;
        Some((line, token))
    };
    let opts = DialOptions {
        handshake_timeout: Duration::from_secs(args.handshake_timeout),
        ..DialOptions::default()
    };

    context::block_on(async {
        let (sandbox_id, agent) = agent_url(ctx, id).await?;
        let target = ConsoleTarget::new(&agent, &ctx.host, port);
        info!(ctx.log, "connecting to the debug console"; "sandbox" => &sandbox_id, "address" => target.to_string());
        let conn = dial::dial(&target, opts)
            .await
            .with_context(|| format!("sandbox {sandbox_id}"))?
            .into_blocking()
            .with_context(|| format!("sandbox {sandbox_id}: {target}"))?;
        match one_shot {
            Some((line, token)) => {
                let status = session::one_shot(conn, &line, &token)
                    .with_context(|| format!("sandbox {sandbox_id}: {target}"))?;
                info!(ctx.log, "command finished"; "sandbox" => &sandbox_id, "status" => status);
                if status == 0 {
                    Ok(())
                } else {
                    Err(Exit(status).into())
                }
            }
            None => interactive(ctx, conn, escape, &sandbox_id).await,
        }
    })?
}

async fn interactive(
    ctx: &Context,
    conn: OwnedFd,
    escape: Option<u8>,
    sandbox_id: &str,
) -> anyhow::Result<()> {
    // Signal handlers go in before raw mode, so no signal can leave the terminal raw.
    let mut signals = Signals::install()?;
    let stdin = io::stdin();
    let guard = RawTerminal::enter(stdin.as_fd())?;
    let outcome = session::interactive(conn, escape, &mut signals).await;
    drop(guard);
    let outcome = outcome.with_context(|| format!("sandbox {sandbox_id}"))?;
    info!(ctx.log, "debug console closed"; "sandbox" => sandbox_id, "how" => format!("{outcome:?}"));
    match outcome {
        Outcome::GuestClosed | Outcome::TerminalClosed => Ok(()),
        Outcome::Escaped => {
            eprintln!("kata-runtime: left the debug console of sandbox {sandbox_id}");
            Ok(())
        }
        Outcome::Signal(sig) => terminal::die_by_signal(sig),
    }
}

/// The sandbox's full ID and its agent URL, from the shim (either shim root; a unique ID
/// prefix is accepted).
async fn agent_url(ctx: &Context, id: &str) -> anyhow::Result<(String, AgentUrl)> {
    let sandbox = shim::resolve_sandbox(&ctx.host, id)?;
    // 3 s as in the Go tool unless KATA_SHIM_TIMEOUT_MS says otherwise.
    let body = shim::get(&sandbox, shim::urls::AGENT_URL, shim::timeout_from_env()).await?;
    let text = std::str::from_utf8(&body).map_err(|_| {
        anyhow::anyhow!(
            "the shim of sandbox {} returned an agent URL that is not UTF-8 text",
            sandbox.id
        )
    })?;
    let url = parse_agent_url(text).with_context(|| format!("sandbox {}", sandbox.id))?;
    Ok((sandbox.id, url))
}
