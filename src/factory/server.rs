//! The VM cache server of `factory init` (spec §7.2): a tonic `CacheService` on the Unix
//! socket `vm_cache_endpoint` that keeps N paused base VMs of the configured QEMU ready,
//! hands one over per `GetBaseVM` and boots a replacement, and on `Quit`, SIGINT or
//! SIGTERM stops every QEMU it still holds and removes the socket.
//!
//! Each held VM has a watcher task that owns the QEMU process: it notices a QEMU that dies
//! (the VM leaves the pool and a replacement boots), stops it on shutdown (SIGTERM, then
//! SIGKILL after a grace period) or lets it go on hand-over. A held VM's directory carries
//! a marker naming the server's endpoint, so that `factory destroy` can find and stop the
//! VMs of a server that was killed without a chance to clean up ([`reap_stale_vms`]).

use std::collections::VecDeque;
use std::io;
use std::os::unix::fs::{DirBuilderExt as _, MetadataExt as _, PermissionsExt as _};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde_json::json;
use slog::{Logger, error, info, warn};
use tokio::net::UnixListener;
use tokio::sync::{Notify, oneshot, watch};
use tokio_stream::wrappers::UnixListenerStream;

use super::qemu::{self, Launch, LaunchError, Memory, RunningVm, STOP_GRACE, VmSpec};
use super::qmp::Qmp;
use crate::cache::cache_service_server::{CacheService, CacheServiceServer};
use crate::cache::{GrpcStatus, GrpcVm, GrpcVmConfig, GrpcVmStatus};
use crate::errors::os_text;
use crate::paths::RUN_VC_VM;

/// Name of the marker file in a held VM's directory; it holds the server's endpoint.
pub const MARKER: &str = "vm-cache-server";
/// How long `GetBaseVM` waits for a VM when none is ready.
const GET_WAIT: Duration = Duration::from_secs(60);
/// Back-off between failed replacement boots (doubles up to the maximum).
const RETRY_MIN: Duration = Duration::from_millis(500);
const RETRY_MAX: Duration = Duration::from_secs(30);

/// Everything the server needs; paths are where things are on this machine.
pub struct ServerOptions {
    /// The socket path on this machine (host root applied).
    pub endpoint: PathBuf,
    /// The socket path as configured (host view), recorded in VM markers and messages.
    pub endpoint_shown: PathBuf,
    pub vm_count: usize,
    pub spec: VmSpec,
    /// `Config`'s `Data`: JSON of the VM configuration.
    pub config_json: Vec<u8>,
    /// `Config`'s `AgentConfig`: JSON of the agent configuration.
    pub agent_json: Vec<u8>,
    pub log: Logger,
}

#[derive(Debug, thiserror::Error)]
pub enum ServerError {
    #[error(
        "{} already exists: another VM cache server may be running. Stop it with \"kata-runtime factory destroy\", or remove {} if it is left over",
        .0.display(),
        .0.display()
    )]
    EndpointExists(PathBuf),
    #[error("cannot create the directory {} for the VM cache socket: {}", .path.display(), os_text(.source))]
    Dir { path: PathBuf, source: io::Error },
    #[error("cannot listen on {}: {}", .path.display(), os_text(.source))]
    Listen { path: PathBuf, source: io::Error },
    #[error("cannot set the mode of {}: {}", .path.display(), os_text(.source))]
    Chmod { path: PathBuf, source: io::Error },
    #[error("cannot boot the base VMs of the VM cache: {0}")]
    InitialBoot(LaunchError),
    #[error("cannot install the signal handlers: {0}")]
    Signals(io::Error),
    #[error("the gRPC server on {} failed: {message}", .path.display())]
    Serve { path: PathBuf, message: String },
}

/// A VM held by the pool, as the gRPC side sees it; the process belongs to its watcher.
struct Held {
    id: String,
    pid: u32,
    /// The QMP socket as the host sees it (what a client on the host dials).
    qmp_shown: PathBuf,
    dir: PathBuf,
    cpu: u32,
    memory_mib: u32,
    ctl: oneshot::Sender<Ctl>,
}

enum Ctl {
    /// Stop the QEMU; answer when it is gone.
    Stop(oneshot::Sender<()>),
    /// Forget the QEMU: it now belongs to the client.
    Release(oneshot::Sender<()>),
}

#[derive(Default)]
struct PoolState {
    ready: VecDeque<Held>,
    starting: usize,
    closing: bool,
    failures: u32,
}

struct Shared {
    state: Mutex<PoolState>,
    /// Something changed in the pool (a VM is ready, a boot ended).
    changed: Notify,
    /// The pool may be short of VMs.
    refill: Notify,
    spec: VmSpec,
    target: usize,
    endpoint_shown: PathBuf,
    config_json: Vec<u8>,
    agent_json: Vec<u8>,
    quit: watch::Sender<bool>,
    /// Boots in flight, aborted at shutdown.
    boots: Mutex<Vec<tokio::task::AbortHandle>>,
    log: Logger,
}

impl Shared {
    fn lock(&self) -> std::sync::MutexGuard<'_, PoolState> {
        // A panic while holding the lock cannot leave the queue half-updated in a way
        // that matters here; keep serving.
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// Runs the server until `Quit` or a signal. Returns once every QEMU it held is stopped
/// and the socket is removed.
pub async fn run(opts: ServerOptions) -> Result<(), ServerError> {
    let (listener, ident) = listen(&opts.endpoint, &opts.endpoint_shown)?;
    let (quit_tx, mut quit_rx) = watch::channel(false);
    let shared = Arc::new(Shared {
        state: Mutex::new(PoolState::default()),
        changed: Notify::new(),
        refill: Notify::new(),
        spec: opts.spec,
        target: opts.vm_count,
        endpoint_shown: opts.endpoint_shown.clone(),
        config_json: opts.config_json,
        agent_json: opts.agent_json,
        quit: quit_tx,
        boots: Mutex::new(Vec::new()),
        log: opts.log.clone(),
    });
    let log = opts.log;
    info!(log, "VM cache server start"; "endpoint" => opts.endpoint_shown.display().to_string());

    let mut stop_rx = quit_rx.clone();
    let svc = CacheServiceServer::new(Service(shared.clone()));
    let server = tokio::spawn(
        tonic::transport::Server::builder()
            .add_service(svc)
            .serve_with_incoming_shutdown(UnixListenerStream::new(listener), async move {
                let _ = stop_rx.wait_for(|q| *q).await;
            }),
    );

    let outcome = async {
        let mut sigint = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::interrupt())
            .map_err(ServerError::Signals)?;
        let mut sigterm = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
            .map_err(ServerError::Signals)?;
        // The first N VMs: a boot failure here means the configuration does not work, so
        // it is reported and the server does not stay up half-empty.
        let mut boots = Vec::new();
        for _ in 0..shared.target {
            shared.lock().starting += 1;
            boots.push(spawn_boot(&shared, boot_one(shared.clone())));
        }
        let initial = async {
            for b in boots {
                if let Ok(Err(e)) = b.await {
                    return Err(ServerError::InitialBoot(e));
                }
            }
            Ok(())
        };
        tokio::select! {
            r = initial => r?,
            _ = sigint.recv() => return Ok(()),
            _ = sigterm.recv() => return Ok(()),
            _ = quit_rx.wait_for(|q| *q) => return Ok(()),
        }
        info!(log, "VM cache ready"; "vms" => shared.target);
        let refiller = tokio::spawn(refill_loop(shared.clone()));
        tokio::select! {
            _ = sigint.recv() => info!(log, "received SIGINT"),
            _ = sigterm.recv() => info!(log, "received SIGTERM"),
            _ = quit_rx.wait_for(|q| *q) => {}
        }
        refiller.abort();
        Ok(())
    }
    .await;

    // Shut down: no more boots (those in flight are aborted, which kills their QEMU),
    // stop every held VM, then the gRPC server and the socket.
    let held: Vec<Held> = {
        let mut st = shared.lock();
        st.closing = true;
        st.ready.drain(..).collect()
    };
    for b in shared
        .boots
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .drain(..)
    {
        b.abort();
    }
    shared.changed.notify_waiters();
    // Ask all at once, then wait: the grace periods run side by side.
    let acks: Vec<_> = held
        .into_iter()
        .filter_map(|h| {
            let (tx, rx) = oneshot::channel();
            h.ctl.send(Ctl::Stop(tx)).ok().map(|_| rx)
        })
        .collect();
    for rx in acks {
        let _ = rx.await;
    }
    loop {
        let notified = shared.changed.notified();
        if shared.lock().starting == 0 {
            break;
        }
        notified.await;
    }
    let _ = shared.quit.send(true);
    let served = match tokio::time::timeout(Duration::from_secs(5), server).await {
        Ok(Ok(Ok(()))) => Ok(()),
        Ok(Ok(Err(e))) => Err(ServerError::Serve {
            path: shared.endpoint_shown.clone(),
            message: e.to_string(),
        }),
        Ok(Err(_)) | Err(_) => Ok(()),
    };
    remove_socket(&opts.endpoint, ident);
    info!(log, "VM cache server stop");
    outcome.and(served)
}

/// Creates the endpoint's directory (0755), refuses an existing path, listens and makes
/// the socket 0600. Returns the listener and the socket's identity (device, inode).
fn listen(endpoint: &Path, shown: &Path) -> Result<(UnixListener, (u64, u64)), ServerError> {
    if let Some(dir) = endpoint.parent() {
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o755)
            .create(dir)
            .map_err(|source| ServerError::Dir {
                path: shown.parent().unwrap_or(shown).to_path_buf(),
                source,
            })?;
    }
    // spec Q47: the same refusal as Go, in plain grammar, with what to do.
    if std::fs::symlink_metadata(endpoint).is_ok() {
        return Err(ServerError::EndpointExists(shown.to_path_buf()));
    }
    let listener = UnixListener::bind(endpoint).map_err(|source| ServerError::Listen {
        path: shown.to_path_buf(),
        source,
    })?;
    std::fs::set_permissions(endpoint, std::fs::Permissions::from_mode(0o600)).map_err(
        |source| ServerError::Chmod {
            path: shown.to_path_buf(),
            source,
        },
    )?;
    let meta = std::fs::symlink_metadata(endpoint).map_err(|source| ServerError::Listen {
        path: shown.to_path_buf(),
        source,
    })?;
    Ok((listener, (meta.dev(), meta.ino())))
}

/// Removes the socket only if it is still ours (not replaced by someone else meanwhile).
fn remove_socket(endpoint: &Path, ident: (u64, u64)) {
    if let Ok(m) = std::fs::symlink_metadata(endpoint)
        && (m.dev(), m.ino()) == ident
    {
        let _ = std::fs::remove_file(endpoint);
    }
}

/// Boots one base VM and puts it in the pool (or stops it if the server is closing).
/// The caller has already counted it in `starting`; the count drops when this ends, even
/// if the task is cancelled.
async fn boot_one(shared: Arc<Shared>) -> Result<(), LaunchError> {
    struct Counted(Arc<Shared>);
    impl Drop for Counted {
        fn drop(&mut self) {
            self.0.lock().starting -= 1;
            self.0.changed.notify_waiters();
        }
    }
    let _counted = Counted(shared.clone());
    let launch = Launch {
        id: qemu::new_id(),
        paused: true,
        memory: Memory::Anonymous,
    };
    let (mut vm, qmp) = qemu::start(&shared.spec, &launch).await?;
    // QMP allows one client at a time: let go so the VM's next owner can connect.
    drop(qmp);
    // No await from here on: a shutdown that aborts this task cannot catch a VM between
    // owners.
    let closing = shared.lock().closing;
    if closing {
        // Never handed out and paused: nothing to lose by killing it outright.
        let _ = vm.child.start_kill();
        let _ = std::fs::remove_dir_all(&vm.paths.dir);
    } else {
        adopt(&shared, vm);
    }
    shared.lock().failures = 0;
    Ok(())
}

/// Starts [`boot_one`] as a task that a shutdown can abort (a QEMU that hangs before its
/// QMP socket answers must not hold the shutdown up for the whole start-up timeout).
fn spawn_boot<F>(shared: &Arc<Shared>, f: F) -> tokio::task::JoinHandle<F::Output>
where
    F: std::future::Future + Send + 'static,
    F::Output: Send + 'static,
{
    let handle = tokio::spawn(f);
    let mut boots = shared.boots.lock().unwrap_or_else(|p| p.into_inner());
    boots.retain(|h| !h.is_finished());
    boots.push(handle.abort_handle());
    handle
}

/// Adds a booted VM to the pool and starts its watcher.
fn adopt(shared: &Arc<Shared>, vm: RunningVm) {
    let _ = std::fs::write(
        vm.paths.dir.join(MARKER),
        shared.endpoint_shown.as_os_str().as_encoded_bytes(),
    );
    let (tx, rx) = oneshot::channel();
    let held = Held {
        id: vm.id.clone(),
        pid: vm.pid,
        qmp_shown: Path::new(RUN_VC_VM).join(&vm.id).join("qmp.sock"),
        dir: vm.paths.dir.clone(),
        cpu: vm.cpu,
        memory_mib: vm.memory_mib,
        ctl: tx,
    };
    info!(shared.log, "base VM ready"; "id" => &vm.id, "pid" => vm.pid);
    shared.lock().ready.push_back(held);
    tokio::spawn(watch_vm(shared.clone(), vm, rx));
}

/// Owns one held QEMU until it is stopped, released or dies.
async fn watch_vm(shared: Arc<Shared>, mut vm: RunningVm, ctl: oneshot::Receiver<Ctl>) {
    tokio::select! {
        status = vm.child.wait() => {
            let log = qemu::read_log(&vm.paths.log);
            shared.lock().ready.retain(|h| h.id != vm.id);
            warn!(shared.log, "base VM exited; booting a replacement";
                "id" => &vm.id, "pid" => vm.pid,
                "status" => status.map(|s| s.to_string()).unwrap_or_default(),
                "qemu-log" => log);
            let _ = std::fs::remove_dir_all(&vm.paths.dir);
            shared.refill.notify_one();
        }
        msg = ctl => match msg {
            Ok(Ctl::Release(ack)) => {
                let _ = std::fs::remove_file(vm.paths.dir.join(MARKER));
                // Dropping the handle neither kills nor waits: tokio reaps the process in
                // the background if it exits while we still run.
                drop(vm);
                let _ = ack.send(());
            }
            Ok(Ctl::Stop(ack)) => {
                qemu::stop(&mut vm, STOP_GRACE).await;
                let _ = ack.send(());
            }
            Err(_) => qemu::stop(&mut vm, STOP_GRACE).await,
        }
    }
}

/// Keeps the pool at its target size, with a growing pause after failed boots.
async fn refill_loop(shared: Arc<Shared>) {
    loop {
        let (need, failures) = {
            let st = shared.lock();
            if st.closing {
                return;
            }
            (
                shared.target.saturating_sub(st.ready.len() + st.starting),
                st.failures,
            )
        };
        if need == 0 {
            shared.refill.notified().await;
            continue;
        }
        if failures > 0 {
            let pause = RETRY_MIN
                .saturating_mul(1 << failures.min(8))
                .min(RETRY_MAX);
            tokio::time::sleep(pause).await;
        }
        shared.lock().starting += need;
        for _ in 0..need {
            let s = shared.clone();
            spawn_boot(&shared, async move {
                if let Err(e) = boot_one(s.clone()).await {
                    error!(s.log, "cannot boot a replacement base VM"; "error" => e.to_string());
                    s.lock().failures += 1;
                    s.refill.notify_one();
                }
            });
        }
    }
}

/// The hypervisor part of `GetBaseVM`: the fields the Go runtime's QEMU driver reads back
/// (`ID`, `QmpChannelpath`, `State`, `NvdimmCount`, `QemuSMP`), plus the QEMU `Pid`. Paths
/// are host paths, as everything this tool shows.
fn hypervisor_json(h: &Held, spec: &VmSpec) -> Vec<u8> {
    let uuid = super::qemu::uuid_from_id(&h.id);
    json!({
        "ID": h.id,
        "QmpChannelpath": h.qmp_shown,
        "Pid": h.pid,
        "State": {
            "UUID": uuid,
            "Bridges": [],
            "HotpluggedVCPUs": [],
            "HotpluggedMemory": 0,
            "VirtiofsdPid": 0,
            "PCIeRootPort": 0,
            "HotplugVFIOOnRootBus": false,
        },
        "NvdimmCount": 0,
        "QemuSMP": {
            "CPUs": spec.vcpus,
            "Cores": 1,
            "Threads": 1,
            "Sockets": spec.max_vcpus,
            "MaxCPUs": spec.max_vcpus,
        },
    })
    .to_string()
    .into_bytes()
}

struct Service(Arc<Shared>);

#[tonic::async_trait]
impl CacheService for Service {
    async fn config(
        &self,
        _req: tonic::Request<()>,
    ) -> Result<tonic::Response<GrpcVmConfig>, tonic::Status> {
        Ok(tonic::Response::new(GrpcVmConfig {
            data: self.0.config_json.clone(),
            agent_config: self.0.agent_json.clone(),
        }))
    }

    async fn get_base_vm(
        &self,
        _req: tonic::Request<()>,
    ) -> Result<tonic::Response<GrpcVm>, tonic::Status> {
        let shared = &self.0;
        let deadline = tokio::time::Instant::now() + GET_WAIT;
        let held = loop {
            let notified = shared.changed.notified();
            {
                let mut st = shared.lock();
                if st.closing {
                    return Err(tonic::Status::unavailable(
                        "failed to GetBaseVM: the VM cache server is stopping",
                    ));
                }
                if let Some(h) = st.ready.pop_front() {
                    break h;
                }
            }
            if tokio::time::timeout_at(deadline, notified).await.is_err() {
                return Err(tonic::Status::unavailable(format!(
                    "failed to GetBaseVM: no base VM became ready within {}s",
                    GET_WAIT.as_secs()
                )));
            }
        };
        let (tx, rx) = oneshot::channel();
        let vm = GrpcVm {
            id: held.id.clone(),
            hypervisor: hypervisor_json(&held, &shared.spec),
            proxy_pid: 0,
            proxy_url: String::new(),
            cpu: held.cpu,
            memory: held.memory_mib,
            cpu_delta: 0,
        };
        let released = held.ctl.send(Ctl::Release(tx)).is_ok() && rx.await.is_ok();
        // Boot the replacement only now, so that its start does not compete with the
        // hand-over itself (the answer goes out in this same task poll).
        shared.refill.notify_one();
        if !released {
            return Err(tonic::Status::unavailable(format!(
                "failed to GetBaseVM: base VM {} exited while being handed over",
                held.id
            )));
        }
        // The VM died between its last check and the hand-over: say so rather than hand
        // over a dead QMP socket.
        if !held.dir.join("qmp.sock").exists() {
            return Err(tonic::Status::unavailable(format!(
                "failed to GetBaseVM: base VM {} is gone",
                held.id
            )));
        }
        info!(shared.log, "base VM handed over"; "id" => &held.id, "pid" => held.pid);
        Ok(tonic::Response::new(vm))
    }

    async fn status(
        &self,
        _req: tonic::Request<()>,
    ) -> Result<tonic::Response<GrpcStatus>, tonic::Status> {
        let st = self.0.lock();
        Ok(tonic::Response::new(GrpcStatus {
            pid: i64::from(std::process::id()),
            vmstatus: st
                .ready
                .iter()
                .map(|h| GrpcVmStatus {
                    pid: i64::from(h.pid),
                    cpu: h.cpu,
                    memory: h.memory_mib,
                })
                .collect(),
        }))
    }

    async fn quit(&self, _req: tonic::Request<()>) -> Result<tonic::Response<()>, tonic::Status> {
        info!(self.0.log, "VM cache server will stop");
        // Answer first; the graceful shutdown lets this reply go out before the
        // connection closes.
        let _ = self.0.quit.send(true);
        Ok(tonic::Response::new(()))
    }
}

/// What [`reap_stale_vms`] did with one VM.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reaped {
    pub id: String,
    pub pid: Option<i32>,
    pub killed: bool,
}

/// Stops the VMs still held by a server on `endpoint_shown` that died without stopping
/// them (their directories under `run_dir` still carry the marker). A QEMU is identified
/// by the peer credentials of its QMP socket, never by a recorded pid that may have been
/// reused: it is asked to `quit` over QMP and killed if it is still there after the grace
/// period.
pub async fn reap_stale_vms(run_dir: &Path, endpoint_shown: &Path) -> Vec<Reaped> {
    let mut done = Vec::new();
    let Ok(entries) = std::fs::read_dir(run_dir) else {
        return done;
    };
    for entry in entries.flatten() {
        let dir = entry.path();
        let Ok(owner) = std::fs::read(dir.join(MARKER)) else {
            continue;
        };
        if owner != endpoint_shown.as_os_str().as_encoded_bytes() {
            continue;
        }
        let id = entry.file_name().to_string_lossy().into_owned();
        let qmp_path = dir.join("qmp.sock");
        let mut reaped = Reaped {
            id,
            pid: None,
            killed: false,
        };
        if let Ok(stream) = tokio::net::UnixStream::connect(&qmp_path).await {
            let pid = stream.peer_cred().ok().and_then(|c| c.pid());
            reaped.pid = pid;
            let asked = async {
                let mut q = Qmp::handshake(&qmp_path, stream).await?;
                q.quit().await
            };
            let _ = tokio::time::timeout(STOP_GRACE, asked).await;
            // Gone once nothing accepts on its socket any more.
            let deadline = tokio::time::Instant::now() + STOP_GRACE;
            while tokio::net::UnixStream::connect(&qmp_path).await.is_ok()
                && tokio::time::Instant::now() < deadline
            {
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
            if tokio::net::UnixStream::connect(&qmp_path).await.is_ok()
                && let Some(pid) = pid
            {
                let _ = nix::sys::signal::kill(
                    nix::unistd::Pid::from_raw(pid),
                    nix::sys::signal::Signal::SIGKILL,
                );
                reaped.killed = true;
            }
        }
        let _ = std::fs::remove_dir_all(&dir);
        done.push(reaped);
    }
    done
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn listen_refuses_an_existing_path_and_sets_modes() {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        rt.block_on(async {
            let dir = tempfile::tempdir().unwrap();
            let ep = dir.path().join("new/dir/cache.sock");
            let (_l, ident) = listen(&ep, Path::new("/x/cache.sock")).unwrap();
            let mode = |p: &Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
            assert_eq!(mode(&ep), 0o600);
            assert_eq!(mode(&dir.path().join("new/dir")), 0o755);
            let e = listen(&ep, Path::new("/x/cache.sock")).err().unwrap();
            assert_eq!(
                e.to_string(),
                "/x/cache.sock already exists: another VM cache server may be running. Stop it with \"kata-runtime factory destroy\", or remove /x/cache.sock if it is left over"
            );
            remove_socket(&ep, (0, 0));
            assert!(ep.exists(), "someone else's socket is kept");
            remove_socket(&ep, ident);
            assert!(!ep.exists());
        });
    }
}
