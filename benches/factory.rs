//! Benchmark of the VM cache (`cargo bench --bench factory`; needs `qemu-system-x86_64`):
//! time from starting `kata-runtime factory init` to N ready base VMs, and the latency of
//! `GetBaseVM` with a full pool. Uses the same fake host as the tests (a 36-byte multiboot
//! guest; KVM when QEMU can use it, else TCG). Arguments: pool sizes (default `1 2 4`);
//! `KATA_FACTORY_BENCH_ROUNDS` sets the GetBaseVM samples per size (default 20).

#[path = "../tests/support/factory_host.rs"]
mod host;

use std::time::{Duration, Instant};

use kata_runtime::factory::client::CacheClient;
use kata_runtime::factory::qmp::Qmp;

fn main() {
    if !host::have_qemu() {
        eprintln!("{} is not installed: nothing to measure", host::REAL_QEMU);
        return;
    }
    let sizes: Vec<usize> = std::env::args()
        .skip(1)
        .filter_map(|a| a.parse().ok())
        .collect();
    let sizes = if sizes.is_empty() {
        vec![1, 2, 4]
    } else {
        sizes
    };
    let rounds: usize = std::env::var("KATA_FACTORY_BENCH_ROUNDS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(20);
    println!(
        "accelerator: {}  (qemu {})  rounds: {rounds}",
        host::accelerator(),
        host::REAL_QEMU
    );
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    for n in sizes {
        rt.block_on(measure(n, rounds));
    }
}

async fn ready_count(sock: &std::path::Path) -> Option<usize> {
    let mut c = CacheClient::connect(sock).await.ok()?;
    Some(c.status().await.ok()?.vmstatus.len())
}

async fn wait_ready(sock: &std::path::Path, n: usize) -> Duration {
    let t0 = Instant::now();
    loop {
        if ready_count(sock).await == Some(n) {
            return t0.elapsed();
        }
        assert!(
            t0.elapsed() < Duration::from_secs(120),
            "pool never reached {n}"
        );
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
}

async fn measure(n: usize, rounds: usize) {
    let h = host::Host::new();
    h.config(&format!("vm_cache_number = {n}"));
    let sock = h.endpoint();
    let t0 = Instant::now();
    let mut server = h.spawn_init();
    let _ = wait_ready(&sock, n).await;
    let init_to_ready = t0.elapsed();

    let mut get = Vec::new();
    let mut refill = Vec::new();
    let mut c = CacheClient::connect(&sock).await.unwrap();
    for _ in 0..rounds {
        let t = Instant::now();
        let vm = c.get_base_vm().await.unwrap();
        get.push(t.elapsed());
        refill.push(wait_ready(&sock, n).await);
        // The VM is ours now: stop it.
        let hv: serde_json::Value = serde_json::from_slice(&vm.hypervisor).unwrap();
        let qmp = h.path(hv["QmpChannelpath"].as_str().unwrap());
        if let Ok(mut q) = Qmp::connect(&qmp).await {
            let _ = q.quit().await;
        }
        let _ = std::fs::remove_dir_all(qmp.parent().unwrap());
    }
    let t = Instant::now();
    let mut q = CacheClient::connect(&sock).await.unwrap();
    q.quit().await.unwrap();
    while sock.exists() {
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
    let quit = t.elapsed();
    let _ = server.wait(Duration::from_secs(30));

    get.sort();
    refill.sort();
    let ms = |d: Duration| d.as_secs_f64() * 1000.0;
    println!(
        "N={n}: init -> {n} ready VMs {:.1} ms | GetBaseVM p50 {:.2} ms, min {:.2}, max {:.2} | refill to {n} p50 {:.1} ms | Quit -> socket gone {:.1} ms",
        ms(init_to_ready),
        ms(get[get.len() / 2]),
        ms(get[0]),
        ms(get[get.len() - 1]),
        ms(refill[refill.len() / 2]),
        ms(quit),
    );
}
