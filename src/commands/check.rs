//! `kata-runtime check` (spec §3): the release check, the host requirements for the
//! configured hypervisor, the configured assets, and as root the create-VM test. The verdict
//! lines and exit codes are the Go tool's; `--json` prints one document for fleet tooling.

use std::io::Write as _;
use std::os::unix::fs::FileTypeExt as _;

use anyhow::anyhow;
use slog::{error, warn};

use crate::cli::CheckArgs;
use crate::config::{AssetPolicy, Config, MissingAsset};
use crate::context::{self, Context};
use crate::errors::Exit;
use crate::host::kvm::{self, HostDevices};
use crate::host::modules::Modprobe;
use crate::host::release::{self, RELEASE_URL_ENV, Release};
use crate::host::requirements::{
    self, Arch, Kind, ModuleLoading, Options, Ppc64Cpu, Report, Requirement, SmtQuery,
};
use crate::version;

pub const CAPABLE: &str = "System is capable of running Kata Containers";
pub const NOT_CAPABLE: &str = "ERROR: System is not capable of running Kata Containers";
pub const CAN_CREATE: &str = "System can currently create Kata Containers";

/// The `--json` document.
#[derive(Debug, serde::Serialize)]
struct Document {
    version: &'static str,
    arch: &'static str,
    host_root: String,
    config: String,
    hypervisor: &'static str,
    cpu_vendor: Option<&'static str>,
    on_vm: Option<bool>,
    strict: bool,
    requirements: Vec<Item>,
    /// `null` with `--check-version-only` / `--only-list-releases`.
    capable: Option<bool>,
    verdict: Option<&'static str>,
    /// `null` when not root (the test needs root).
    create_vm: Option<CreateVm>,
    /// `null` with `--no-network-checks`.
    release: Option<ReleaseResult>,
}

/// A requirement and whether it makes the host not capable (found is false and it is
/// required, or `--strict` is on).
#[derive(Debug, serde::Serialize)]
struct Item {
    #[serde(flatten)]
    requirement: Requirement,
    fails: bool,
}

fn items(report: Report) -> Vec<Item> {
    let strict = report.strict;
    report
        .requirements
        .into_iter()
        .map(|r| Item {
            fails: !r.found && (r.required || strict),
            requirement: r,
        })
        .collect()
}

#[derive(Debug, serde::Serialize)]
struct CreateVm {
    /// `ok`, `failed` or `skipped`.
    result: &'static str,
    device: &'static str,
    detail: Option<String>,
    ipa_limit_bits: Option<i32>,
}

#[derive(Debug, Default, serde::Serialize)]
struct ReleaseResult {
    /// `check` or `list`.
    mode: &'static str,
    url: Option<String>,
    /// Why the network part did not run.
    skipped: Option<String>,
    rate_limited: bool,
    current: &'static str,
    /// Check mode: every usable release; list mode: those newer than `current`.
    releases: Vec<Release>,
    /// Check mode: the newest release above `current`.
    newer: Option<Release>,
    kind: Option<String>,
    /// The line printed in text mode (check mode).
    message: Option<String>,
}

fn geteuid() -> u32 {
    nix::unistd::geteuid().as_raw()
}

pub fn run(ctx: &Context, args: &CheckArgs) -> anyhow::Result<()> {
    let euid = geteuid();
    // Missing kernel/image/hypervisor binaries are reported below, not fatal (issue 3).
    let cfg = ctx.load_config(AssetPolicy::Report)?;
    let arch = Arch::from_env().map_err(anyhow::Error::msg)?;
    let mut doc = Document {
        version: version::VERSION,
        arch: arch.as_str(),
        host_root: ctx.host.root().display().to_string(),
        config: cfg.path_for_display(),
        hypervisor: cfg.hypervisor_type.as_str(),
        cpu_vendor: None,
        on_vm: None,
        strict: args.strict,
        requirements: Vec::new(),
        capable: None,
        verdict: None,
        create_vm: None,
        release: None,
    };

    doc.release = network_part(ctx, args, euid)?;
    if args.check_version_only || args.only_list_releases {
        return finish(args, &doc);
    }

    let facts = requirements::probe_cpu(&ctx.host, arch).map_err(anyhow::Error::msg)?;
    doc.cpu_vendor = facts.vendor.map(|v| v.vendor_id());
    doc.on_vm = facts.on_vm;
    let table = requirements::table(&facts, cfg.hypervisor_type).map_err(anyhow::Error::msg)?;
    let loader = Modprobe;
    let loading = if euid != 0 {
        ModuleLoading::NotRoot
    } else if !ctx.host.is_real_root() {
        ModuleLoading::ForeignRoot
    } else {
        ModuleLoading::Load(&loader)
    };
    let smt = Ppc64Cpu;
    let opts = Options {
        strict: args.strict,
        loading,
        smt: ctx.host.is_real_root().then_some(&smt as &dyn SmtQuery),
    };
    let mut report = requirements::evaluate(&ctx.host, &facts, &table, &opts, &ctx.log);
    add_assets(&mut report, &cfg, ctx);

    if !report.capable() {
        doc.requirements = items(report);
        doc.capable = Some(false);
        doc.verdict = Some(NOT_CAPABLE);
        error!(ctx.log, "{}", NOT_CAPABLE);
        eprintln!("{NOT_CAPABLE}");
        finish(args, &doc)?;
        return Err(Exit(1).into());
    }
    doc.capable = Some(true);
    doc.verdict = Some(CAPABLE);
    if !args.json {
        writeln!(ctx.stdout(), "{CAPABLE}")?;
    }

    let mut failure = None;
    if euid == 0 {
        let (result, err) = create_vm(ctx, arch, &cfg, &mut report);
        failure = err;
        if result.result == "ok" && !args.json {
            writeln!(ctx.stdout(), "{CAN_CREATE}")?;
        }
        doc.create_vm = Some(result);
    }
    doc.requirements = items(report);
    if failure.is_some() {
        doc.capable = Some(false);
    }
    finish(args, &doc)?;
    match failure {
        // Logged and printed once by the caller, as the Go tool's fatal path does.
        Some(e) => Err(anyhow!(e)),
        None => Ok(()),
    }
}

fn finish(args: &CheckArgs, doc: &Document) -> anyhow::Result<()> {
    if args.json {
        let mut out = std::io::stdout().lock();
        serde_json::to_writer_pretty(&mut out, doc)?;
        writeln!(out)?;
    }
    Ok(())
}

/// Configured assets the host lacks, one requirement each, so that a fresh node learns
/// everything in one run.
fn add_assets(report: &mut Report, cfg: &Config, ctx: &Context) {
    let mut missing = cfg.missing_assets.clone();
    // The loader does not resolve the virtio-fs daemon (as the Go tool), but a qemu or clh
    // VM sharing files with virtio-fs cannot start without it.
    let h = &cfg.hypervisor;
    if matches!(h.shared_fs.as_str(), "virtio-fs" | "virtio-fs-nydus")
        && !h.virtio_fs_daemon.is_empty()
        && !ctx.host.join(&h.virtio_fs_daemon).exists()
    {
        missing.push(MissingAsset {
            key: format!("hypervisor.{}.virtio_fs_daemon", cfg.hypervisor_type),
            path: h.virtio_fs_daemon.clone().into(),
            reason: "does not exist".to_string(),
        });
    }
    missing.sort_by(|a, b| a.key.cmp(&b.key));
    for a in missing {
        let path = a.path.display().to_string();
        let r = Requirement {
            kind: Kind::Asset,
            name: a.key.clone(),
            description: format!("{path} named by the configuration"),
            required: true,
            found: false,
            detail: Some(format!("{path}: {}", a.reason)),
            remedy: Some(format!(
                "install {path}, or set {} in {} to a file that exists",
                a.key,
                cfg.path_for_display()
            )),
        };
        report.push_logged(
            r,
            "configured asset found",
            "configured asset not found",
            &[("path", path), ("reason", a.reason.clone())],
            &ctx.log,
        );
    }
}

/// The root-only create-VM test. A fake host root cannot stand for this machine's kernel:
/// the test runs only when the device under the root is a real character device (a host
/// mounted at `/host` in a container, or a link to the real node), and only for the
/// architecture this binary runs on; otherwise it is skipped with the reason in the log.
fn create_vm(
    ctx: &Context,
    arch: Arch,
    cfg: &Config,
    report: &mut Report,
) -> (CreateVm, Option<String>) {
    let device = kvm::device_for(cfg.hypervisor_type);
    let skip = |reason: String| {
        warn!(ctx.log, "create-VM test skipped"; "device" => device, "reason" => &reason);
        (
            CreateVm {
                result: "skipped",
                device,
                detail: Some(reason),
                ipa_limit_bits: None,
            },
            None,
        )
    };
    match Arch::running() {
        Ok(running) if running == arch => {}
        Ok(running) => {
            return skip(format!(
                "the host is {} but this binary runs on {}",
                arch.as_str(),
                running.as_str()
            ));
        }
        Err(e) => return skip(e),
    }
    let node = ctx.host.join(device);
    let is_char = std::fs::metadata(&node).is_ok_and(|m| m.file_type().is_char_device());
    if !ctx.host.is_real_root() && !is_char {
        return skip(format!(
            "{device} under host root {} is not a character device",
            ctx.host.root().display()
        ));
    }
    let outcome = kvm::create_vm_test(&HostDevices, &ctx.host, arch, cfg.hypervisor_type, &ctx.log);
    let (found, detail) = match &outcome {
        Ok(ok) => (
            true,
            ok.ipa_limit_bits.map(|b| format!("IPA limit {b} bits")),
        ),
        Err(e) => (false, Some(e.clone())),
    };
    let r = Requirement {
        kind: Kind::Kvm,
        name: "create-vm".to_string(),
        description: format!("create a virtual machine with {device}"),
        required: true,
        found,
        detail: detail.clone(),
        remedy: (!found).then(|| {
            "make sure no other hypervisor holds the virtualization extensions and that the device is usable".to_string()
        }),
    };
    report.requirements.push(r);
    match outcome {
        Ok(ok) => (
            CreateVm {
                result: "ok",
                device,
                detail,
                ipa_limit_bits: ok.ipa_limit_bits,
            },
            None,
        ),
        Err(e) => (
            CreateVm {
                result: "failed",
                device,
                detail: Some(e.clone()),
                ipa_limit_bits: None,
            },
            Some(e),
        ),
    }
}

/// The release part (spec §3.2 step 2). As root it runs only when `KATA_RELEASE_URL` names
/// the server explicitly; the Go tool never ran it as root.
fn network_part(
    ctx: &Context,
    args: &CheckArgs,
    euid: u32,
) -> anyhow::Result<Option<ReleaseResult>> {
    if args.no_network() {
        return Ok(None);
    }
    let mut res = ReleaseResult {
        mode: if args.only_list_releases {
            "list"
        } else {
            "check"
        },
        current: version::VERSION,
        ..Default::default()
    };
    let override_url = std::env::var(RELEASE_URL_ENV)
        .ok()
        .filter(|s| !s.is_empty());
    if euid == 0 && override_url.is_none() {
        warn!(ctx.log, "Not running network checks as super user"; "hint" => format!("set {RELEASE_URL_ENV} to query a release server explicitly as root"));
        res.skipped = Some("running as root without KATA_RELEASE_URL".to_string());
        return Ok(Some(res));
    }
    let current = release::current_version(version::VERSION).map_err(anyhow::Error::msg)?;
    let source =
        release::release_source(&current, override_url.as_deref()).map_err(anyhow::Error::msg)?;
    let timeout = release::timeout_from_env().map_err(anyhow::Error::msg)?;
    res.url = Some(source.url.clone());
    let fetched = context::block_on(release::fetch_releases(
        &source,
        args.include_all_releases,
        timeout,
        &ctx.log,
    ))?
    .map_err(anyhow::Error::msg)?;
    res.rate_limited = fetched.rate_limited;
    let mut out = ctx.stdout();
    if args.only_list_releases {
        // spec Q22: only the releases newer than this one, as the help says.
        res.releases = release::newer_releases(&current, &fetched.releases)
            .into_iter()
            .cloned()
            .collect();
        if !args.json {
            for r in &res.releases {
                writeln!(out, "{}", r.list_line())?;
            }
        }
    } else {
        let verdict = release::verdict(&current, &fetched.releases);
        if !args.json {
            writeln!(out, "{verdict}")?;
        }
        res.message = Some(verdict.to_string());
        if let release::Verdict::Newer { kind, release } = verdict {
            res.kind = Some(kind);
            res.newer = Some(release);
        }
        res.releases = fetched.releases;
    }
    Ok(Some(res))
}
