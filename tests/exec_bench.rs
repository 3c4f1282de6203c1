//! Console throughput (ignored by default; run by `benches/exec.sh`): N MB (default 100,
//! `EXEC_BENCH_MB`) from a fake guest through `kata-runtime exec` to /dev/null, against a
//! plain Unix-socket client reading the same bytes from the same fake. Set
//! `KATA_BENCH_BIN` to time another build of the binary (the script uses the release one).

#[path = "support/exec_fakes.rs"]
mod fakes;
#[path = "support/exec_pty.rs"]
mod pty;

use std::io::{Read, Write};
use std::os::unix::net::UnixStream;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use fakes::{FakeHost, VmmMode};
use pty::PtyChild;

const ID: &str = "sb-bench";

fn megabytes() -> u64 {
    std::env::var("EXEC_BENCH_MB")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(100)
}

fn binary() -> String {
    std::env::var("KATA_BENCH_BIN").unwrap_or_else(|_| env!("CARGO_BIN_EXE_kata-runtime").into())
}

fn command(host: &FakeHost) -> Command {
    let mut c = Command::new(binary());
    c.env("KATA_HOST_ROOT", host.root());
    c
}

fn rate(bytes: u64, d: Duration) -> String {
    format!(
        "{:8.1} MB/s ({:.3}s for {} MB)",
        bytes as f64 / 1e6 / d.as_secs_f64(),
        d.as_secs_f64(),
        bytes / 1_000_000
    )
}

/// Plain client: handshake, then copy the socket to /dev/null with `size`-byte reads.
fn plain_copy(path: &std::path::Path, want: u64, size: usize) -> Duration {
    let start = Instant::now();
    let mut s = UnixStream::connect(path).unwrap();
    s.write_all(b"CONNECT 1026\n").unwrap();
    let mut b = [0u8; 1];
    while s.read(&mut b).unwrap() == 1 && b[0] != b'\n' {}
    let mut null = std::fs::OpenOptions::new()
        .write(true)
        .open("/dev/null")
        .unwrap();
    let mut buf = vec![0u8; size];
    let mut got = 0u64;
    loop {
        let n = s.read(&mut buf).unwrap();
        if n == 0 {
            break;
        }
        null.write_all(&buf[..n]).unwrap();
        got += n as u64;
    }
    assert_eq!(got, want);
    start.elapsed()
}

/// `kata-runtime exec` with a pty as stdin and /dev/null as stdout, until the guest closes.
fn console_copy(host: &FakeHost) -> Duration {
    let mut cmd = command(host);
    cmd.args(["exec", ID]);
    let start = Instant::now();
    let mut p = PtyChild::spawn(&mut cmd, Some(Stdio::null()));
    // Block in wait(2): polling would add its own granularity to the time.
    let st = p.child.wait().unwrap();
    let d = start.elapsed();
    assert!(st.success(), "{st:?}: {}", String::from_utf8_lossy(&p.seen));
    assert_eq!(p.settings(), p.before);
    d
}

#[test]
#[ignore = "benchmark: run benches/exec.sh"]
fn console_throughput() {
    let bytes = megabytes() * 1_000_000;
    let host = FakeHost::new(ID);
    let _shim = host.shim(&host.hvsock_url());
    let sock = host.on_disk(&host.hvsock_host_path());

    // Start-up cost (shim query, dial, raw mode) with an empty stream, to tell it apart.
    let startup = {
        let _vmm = host.vmm(VmmMode::Stream { bytes: 0 });
        (0..3).map(|_| console_copy(&host)).min().unwrap()
    };
    let _vmm = host.vmm(VmmMode::Stream { bytes });
    let plain64 = (0..3)
        .map(|_| plain_copy(&sock, bytes, 64 << 10))
        .min()
        .unwrap();
    let plain = (0..3)
        .map(|_| plain_copy(&sock, bytes, 256 << 10))
        .min()
        .unwrap();
    let console = (0..3).map(|_| console_copy(&host)).min().unwrap();
    println!("binary: {}", binary());
    println!("plain Unix-socket copy, 64K  : {}", rate(bytes, plain64));
    println!("plain Unix-socket copy, 256K : {}", rate(bytes, plain));
    println!("kata-runtime exec (console)  : {}", rate(bytes, console));
    println!(
        "kata-runtime exec start-up   : {:.1} ms (empty stream; included above)",
        startup.as_secs_f64() * 1e3
    );
    println!(
        "console / plain 256K         : {:.2}",
        plain.as_secs_f64() / console.as_secs_f64()
    );
}

#[test]
#[ignore = "benchmark: run benches/exec.sh"]
fn one_shot_cat_through_a_guest_pty() {
    // The realistic path: a shell on a pty in the "guest" runs `cat FILE`; the pty is
    // now in the loop, for both the plain client and kata-runtime.
    let bytes = megabytes() * 1_000_000;
    let host = FakeHost::new(ID);
    let _shim = host.shim(&host.hvsock_url());
    let _vmm = host.vmm(VmmMode::Shell { banner: Vec::new() });
    let file = host.dir.path().join("payload");
    {
        let mut f = std::fs::File::create(&file).unwrap();
        let line = [b"0123456789abcdef".repeat(4).as_slice(), b"\n"].concat();
        let mut left = bytes as usize;
        while left > 0 {
            let n = left.min(line.len());
            f.write_all(&line[..n]).unwrap();
            left -= n;
        }
    }
    // Plain client through the same relay: type the command, read to the end.
    let plain = {
        let start = Instant::now();
        let mut s = UnixStream::connect(host.on_disk(&host.hvsock_host_path())).unwrap();
        s.write_all(b"CONNECT 1026\n").unwrap();
        s.write_all(format!("stty -echo; cat {}; exit\n", file.display()).as_bytes())
            .unwrap();
        let mut null = std::fs::OpenOptions::new()
            .write(true)
            .open("/dev/null")
            .unwrap();
        let got = std::io::copy(&mut s, &mut null).unwrap();
        assert!(got >= bytes, "{got}");
        start.elapsed()
    };
    println!("plain client, `cat` via pty  : {}", rate(bytes, plain));
    let start = Instant::now();
    let out = command(&host)
        .args(["exec", ID, "--", "cat", file.to_str().unwrap()])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .status()
        .unwrap();
    let d = start.elapsed();
    assert!(out.success());
    println!("exec -- cat, via guest pty   : {}", rate(bytes, d));
}
