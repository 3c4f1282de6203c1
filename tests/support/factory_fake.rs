//! A fake VM cache server for the `factory` client tests: tonic `CacheService` on a Unix
//! socket in a temp dir, answering with canned replies and recording the calls. On `Quit`
//! it stops and removes its socket, as the real server does.

#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use kata_runtime::cache::cache_service_server::{CacheService, CacheServiceServer};
use kata_runtime::cache::{GrpcStatus, GrpcVm, GrpcVmConfig, GrpcVmStatus};
use tokio::sync::watch;

/// What the fake answers to `Status`.
#[derive(Clone)]
pub enum StatusReply {
    Ok { pid: i64, vms: Vec<(i64, u32, u32)> },
    Err(tonic::Code, String),
}

struct State {
    calls: Mutex<Vec<&'static str>>,
    status: StatusReply,
    quit: watch::Sender<bool>,
}

struct Svc(Arc<State>);

#[tonic::async_trait]
impl CacheService for Svc {
    async fn config(
        &self,
        _: tonic::Request<()>,
    ) -> Result<tonic::Response<GrpcVmConfig>, tonic::Status> {
        self.0.calls.lock().unwrap().push("Config");
        Ok(tonic::Response::new(GrpcVmConfig {
            data: b"{}".to_vec(),
            agent_config: b"{}".to_vec(),
        }))
    }

    async fn get_base_vm(
        &self,
        _: tonic::Request<()>,
    ) -> Result<tonic::Response<GrpcVm>, tonic::Status> {
        self.0.calls.lock().unwrap().push("GetBaseVM");
        Err(tonic::Status::unavailable("failed to GetBaseVM: fake"))
    }

    async fn status(
        &self,
        _: tonic::Request<()>,
    ) -> Result<tonic::Response<GrpcStatus>, tonic::Status> {
        self.0.calls.lock().unwrap().push("Status");
        match &self.0.status {
            StatusReply::Ok { pid, vms } => Ok(tonic::Response::new(GrpcStatus {
                pid: *pid,
                vmstatus: vms
                    .iter()
                    .map(|&(pid, cpu, memory)| GrpcVmStatus { pid, cpu, memory })
                    .collect(),
            })),
            StatusReply::Err(code, msg) => Err(tonic::Status::new(*code, msg.clone())),
        }
    }

    async fn quit(&self, _: tonic::Request<()>) -> Result<tonic::Response<()>, tonic::Status> {
        self.0.calls.lock().unwrap().push("Quit");
        let _ = self.0.quit.send(true);
        Ok(tonic::Response::new(()))
    }
}

/// A running fake; stopped (and its socket removed) on drop.
pub struct FakeCache {
    pub socket: PathBuf,
    state: Arc<State>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl FakeCache {
    pub fn start(socket: &Path, status: StatusReply) -> FakeCache {
        std::fs::create_dir_all(socket.parent().unwrap()).unwrap();
        let (quit, mut quit_rx) = watch::channel(false);
        let state = Arc::new(State {
            calls: Mutex::new(Vec::new()),
            status,
            quit,
        });
        let svc = Svc(state.clone());
        let path = socket.to_path_buf();
        let (ready_tx, ready_rx) = std::sync::mpsc::channel();
        let thread = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap();
            rt.block_on(async move {
                let listener = tokio::net::UnixListener::bind(&path).unwrap();
                ready_tx.send(()).unwrap();
                tonic::transport::Server::builder()
                    .add_service(CacheServiceServer::new(svc))
                    .serve_with_incoming_shutdown(
                        tokio_stream::wrappers::UnixListenerStream::new(listener),
                        async move {
                            let _ = quit_rx.wait_for(|q| *q).await;
                        },
                    )
                    .await
                    .unwrap();
                let _ = std::fs::remove_file(&path);
            });
        });
        ready_rx.recv().unwrap();
        FakeCache {
            socket: socket.to_path_buf(),
            state,
            thread: Some(thread),
        }
    }

    pub fn calls(&self) -> Vec<&'static str> {
        self.state.calls.lock().unwrap().clone()
    }

    /// Waits until the fake has stopped (after a `Quit`).
    pub fn join(mut self) {
        if let Some(t) = self.thread.take() {
            t.join().unwrap();
        }
    }
}

impl Drop for FakeCache {
    fn drop(&mut self) {
        let _ = self.state.quit.send(true);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}
