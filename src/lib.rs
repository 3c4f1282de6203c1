//! kata-runtime: the node operator's tool for Kata Containers (check, env, exec, metrics,
//! factory, direct-volume, iptables), a drop-in for the Go `kata-runtime` 3.0.0.

pub mod app;
pub mod cli;
pub mod commands;
pub mod config;
pub mod console;
pub mod context;
pub mod errors;
pub mod factory;
pub mod host;
pub mod logging;
pub mod output;
pub mod paths;
pub mod shim;
pub mod version;
pub mod volume;

/// Generated VM cache gRPC code (`proto/cache.proto`).
pub mod cache {
    tonic::include_proto!("cache");
}
