//! `kata-runtime factory init|destroy|status` (spec §7): run the VM cache server or build
//! the VM template; stop or remove them; report on them.

use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{Context as _, bail};
use serde_json::json;
use slog::{info, warn};

use crate::cli::FactoryCommand;
use crate::config::{AssetPolicy, Config};
use crate::context::{self, Context};
use crate::errors::Exit;
use crate::factory::client::{CacheClient, ClientError};
use crate::factory::qemu::VmSpec;
use crate::factory::server::{self, ServerOptions};
use crate::factory::template::{self, SysMounter, TemplatePaths};
use crate::paths::RUN_VC_VM;

/// How long `destroy` waits for the server to stop its VMs and remove its socket.
const QUIT_WAIT: Duration = Duration::from_secs(60);

pub fn run(ctx: &Context, cmd: &FactoryCommand) -> anyhow::Result<()> {
    let cfg = ctx.load_config(AssetPolicy::Require)?;
    match cmd {
        FactoryCommand::Init => init(ctx, &cfg),
        FactoryCommand::Destroy => destroy(ctx, &cfg),
        FactoryCommand::Status => status(ctx, &cfg),
    }
}

/// The socket as configured (host view) and where it is on this machine.
fn endpoint(ctx: &Context, cfg: &Config) -> (PathBuf, PathBuf) {
    let shown = cfg.factory.vm_cache_endpoint.clone();
    let real = ctx.host.join(&shown);
    (shown, real)
}

fn template_paths(ctx: &Context, cfg: &Config) -> TemplatePaths {
    TemplatePaths {
        shown: cfg.factory.template_path.clone(),
        real: ctx.host.join(&cfg.factory.template_path),
    }
}

fn init(ctx: &Context, cfg: &Config) -> anyhow::Result<()> {
    let f = &cfg.factory;
    if f.vm_cache_number > 0 {
        let spec = VmSpec::from_config(&ctx.host, cfg)?;
        if f.enable_template {
            warn!(
                ctx.log,
                "enable_template is not used by the VM cache: its base VMs boot directly"
            );
        }
        let (shown, real) = endpoint(ctx, cfg);
        let vm_config = json!({
            "HypervisorType": cfg.hypervisor_type.as_str(),
            "HypervisorConfig": cfg.hypervisor,
            "AgentType": "kata",
            "AgentConfig": cfg.agent,
        });
        let opts = ServerOptions {
            endpoint: real,
            endpoint_shown: shown,
            vm_count: f.vm_cache_number as usize,
            spec,
            config_json: vm_config.to_string().into_bytes(),
            agent_json: serde_json::to_vec(&cfg.agent)?,
            log: ctx.log.clone(),
        };
        context::block_on(server::run(opts))??;
        return Ok(());
    }
    if f.enable_template {
        let spec = VmSpec::from_config(&ctx.host, cfg)?;
        let t = template_paths(ctx, cfg);
        let is_root = nix::unistd::geteuid().is_root();
        context::block_on(template::create(&spec, &t, &SysMounter, is_root, &ctx.log))?
            .context("create vm factory failed")?;
        writeln!(ctx.stdout(), "vm factory initialized")?;
        return Ok(());
    }
    // spec Q47: nothing to do is a failure (the Go tool exits 0), reported on stderr.
    bail!(
        "vm factory or VMCache is not enabled: set enable_template = true or vm_cache_number > 0 in the [factory] section of {}",
        cfg.path_for_display()
    )
}

fn destroy(ctx: &Context, cfg: &Config) -> anyhow::Result<()> {
    let f = &cfg.factory;
    if f.vm_cache_number > 0 {
        let (shown, real) = endpoint(ctx, cfg);
        let run_dir = ctx.host.join(RUN_VC_VM);
        context::block_on(quit_server(ctx, &shown, &real, &run_dir))??;
    }
    if f.enable_template && VmSpec::from_config(&ctx.host, cfg).is_ok() {
        let t = template_paths(ctx, cfg);
        let found = template::destroy(&t, &SysMounter, &ctx.log)
            .with_context(|| format!("cannot remove the VM template {}", t.shown.display()))?;
        if !found {
            info!(ctx.log, "load vm factory failed"; "template" => t.shown.display().to_string());
        }
    }
    writeln!(ctx.stdout(), "vm factory destroyed")?;
    Ok(())
}

/// `Quit`, then wait until the server has stopped its VMs and removed its socket. A socket
/// nobody listens on (the server was killed) is cleaned up instead: the VMs it still held
/// are stopped and the socket removed.
async fn quit_server(
    ctx: &Context,
    shown: &Path,
    real: &Path,
    run_dir: &Path,
) -> anyhow::Result<()> {
    let called = async {
        let mut c = CacheClient::connect_as(real, shown).await?;
        c.quit().await
    }
    .await;
    match called {
        Ok(()) => {
            let deadline = tokio::time::Instant::now() + QUIT_WAIT;
            while std::fs::symlink_metadata(real).is_ok() {
                if tokio::time::Instant::now() >= deadline {
                    bail!(
                        "the VM cache server on {} accepted Quit but did not stop within {}s",
                        shown.display(),
                        QUIT_WAIT.as_secs()
                    );
                }
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
            Ok(())
        }
        Err(e) if e.is_stale_socket() => {
            let reaped = server::reap_stale_vms(run_dir, shown).await;
            std::fs::remove_file(real)
                .with_context(|| format!("cannot remove the stale socket {}", shown.display()))?;
            for r in &reaped {
                info!(ctx.log, "stopped a base VM left by a dead VM cache server";
                    "id" => &r.id, "pid" => r.pid.unwrap_or(0), "killed" => r.killed);
            }
            eprintln!(
                "the VM cache server on {} was not running: removed its socket and stopped the {} base VM(s) it left",
                shown.display(),
                reaped.len()
            );
            Ok(())
        }
        Err(e) => bail!("failed to call gRPC Quit: {e}{}", hint(&e)),
    }
}

/// What to do about a failed call.
fn hint(e: &ClientError) -> &'static str {
    if e.is_missing_socket() {
        " (no VM cache server is running: start one with \"kata-runtime factory init\")"
    } else if e.is_stale_socket() {
        " (the VM cache server is gone: \"kata-runtime factory destroy\" cleans up after it)"
    } else {
        ""
    }
}

fn status(ctx: &Context, cfg: &Config) -> anyhow::Result<()> {
    let f = &cfg.factory;
    let mut out = ctx.stdout();
    let mut failed = false;
    if f.vm_cache_number > 0 {
        let (shown, real) = endpoint(ctx, cfg);
        let answer = context::block_on(async {
            let mut c = CacheClient::connect_as(&real, &shown).await?;
            c.status().await
        })?;
        match answer {
            Ok(st) => {
                writeln!(out, "VM cache server pid = {}", st.pid)?;
                for vm in st.vmstatus {
                    writeln!(
                        out,
                        "VM pid = {} Cpu = {} Memory = {}MiB",
                        vm.pid, vm.cpu, vm.memory
                    )?;
                }
            }
            Err(e) => {
                // spec Q46: one line, on stderr, and a failing exit status.
                out.flush()?;
                eprintln!("failed to call gRPC Status: {e}{}", hint(&e));
                failed = true;
            }
        }
    }
    if f.enable_template {
        let on = VmSpec::from_config(&ctx.host, cfg).is_ok() && template_paths(ctx, cfg).exists();
        writeln!(out, "vm factory is {}", if on { "on" } else { "off" })?;
    } else if f.vm_cache_number == 0 {
        // spec Q45: only when neither the template nor the cache is enabled.
        writeln!(out, "vm factory not enabled")?;
    }
    if failed {
        return Err(Exit(1).into());
    }
    Ok(())
}
