//! Build script: records the git commit for `kata-runtime --version` (spec §1.7) and
//! generates the VM cache gRPC code from `proto/cache.proto` with protox, so that
//! building needs no `protoc` on the machine.

use std::path::Path;
use std::process::Command;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    println!("cargo:rerun-if-changed=proto/cache.proto");
    println!("cargo:rerun-if-env-changed=KATA_RUNTIME_COMMIT");
    if Path::new(".git/HEAD").exists() {
        println!("cargo:rerun-if-changed=.git/HEAD");
        println!("cargo:rerun-if-changed=.git/index");
    }
    println!("cargo:rustc-env=KATA_RUNTIME_COMMIT={}", commit());

    let fds = protox::compile(["proto/cache.proto"], ["proto"])?;
    tonic_prost_build::configure()
        .build_client(true)
        .build_server(true)
        .compile_fds(fds)?;
    Ok(())
}

/// The commit the binary is built from, with `-dirty` when tracked files are modified,
/// as the Go Makefile records it; empty when there is no git checkout.
fn commit() -> String {
    if let Ok(c) = std::env::var("KATA_RUNTIME_COMMIT") {
        return c;
    }
    let Some(head) = git(&["rev-parse", "HEAD"]) else {
        return String::new();
    };
    let dirty = git(&["status", "--porcelain", "--untracked-files=no"])
        .map(|s| !s.is_empty())
        .unwrap_or(false);
    if dirty { format!("{head}-dirty") } else { head }
}

fn git(args: &[&str]) -> Option<String> {
    let out = Command::new("git").args(args).output().ok()?;
    if !out.status.success() {
        return None;
    }
    Some(String::from_utf8(out.stdout).ok()?.trim().to_string())
}
