//! Micro-benchmarks of the parsers on the hot paths (issue 8): loading the largest shipped
//! configuration, `/proc/cpuinfo` of a 192-CPU host, and mount-info JSON.
//!
//! A plain `cargo bench` harness (`harness = false`, no extra dependency): each case is
//! warmed up, then timed in batches sized to about 10 ms; the median per-call time over the
//! batches is printed with its spread (p10 and p90 of the batches), and a throughput over the
//! whole input where the case reads all of it (the cpuinfo probes stop after the first CPU).
//! Rerun with `cargo bench --bench parsers`; give a substring as argument to run only
//! matching cases (`cargo bench --bench parsers -- cpuinfo`).

use std::hint::black_box;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use kata_runtime::config::{self, AssetPolicy};
use kata_runtime::host::{cpuinfo, meminfo, os_release};
use kata_runtime::paths::HostRoot;
use kata_runtime::volume::parse_mount_info;

/// Batches per case; the median batch gives the figure.
const BATCHES: usize = 31;
const BATCH_TARGET: Duration = Duration::from_millis(10);

struct Bench {
    filter: Option<String>,
}

impl Bench {
    /// Times `f`, printing the median time per call and, with `bytes`, the throughput.
    fn run<T>(&self, name: &str, bytes: Option<usize>, mut f: impl FnMut() -> T) {
        if self.filter.as_deref().is_some_and(|p| !name.contains(p)) {
            return;
        }
        // Warm up and size the batch.
        let mut per_batch = 1u64;
        loop {
            let t = Instant::now();
            for _ in 0..per_batch {
                black_box(f());
            }
            if t.elapsed() >= BATCH_TARGET / 4 || per_batch >= 1 << 30 {
                let each = t.elapsed().as_nanos() as f64 / per_batch as f64;
                per_batch = ((BATCH_TARGET.as_nanos() as f64 / each.max(1.0)) as u64).max(1);
                break;
            }
            per_batch *= 2;
        }
        let mut ns: Vec<f64> = (0..BATCHES)
            .map(|_| {
                let t = Instant::now();
                for _ in 0..per_batch {
                    black_box(f());
                }
                t.elapsed().as_nanos() as f64 / per_batch as f64
            })
            .collect();
        ns.sort_by(f64::total_cmp);
        let median = ns[BATCHES / 2];
        let (lo, hi) = (ns[BATCHES / 10], ns[BATCHES - 1 - BATCHES / 10]);
        let rate = bytes
            .map(|b| {
                format!(
                    "  {:>8.1} MiB/s",
                    b as f64 / median * 1e9 / (1024.0 * 1024.0)
                )
            })
            .unwrap_or_default();
        println!(
            "{name:<48} {:>12} (p10 {}, p90 {}){rate}",
            fmt_ns(median),
            fmt_ns(lo),
            fmt_ns(hi)
        );
    }
}

fn fmt_ns(ns: f64) -> String {
    if ns >= 1e6 {
        format!("{:.2} ms", ns / 1e6)
    } else if ns >= 1e3 {
        format!("{:.2} µs", ns / 1e3)
    } else {
        format!("{ns:.0} ns")
    }
}

/// The shipped configurations (`../shared` beside the checkout, as in CI).
fn shipped_dir() -> Option<PathBuf> {
    let here = Path::new(env!("CARGO_MANIFEST_DIR"));
    [
        here.join("../shared/configs/kata-3.0.0"),
        here.join("../../shared/configs/kata-3.0.0"),
    ]
    .into_iter()
    .find(|p| p.is_dir())
}

/// One CPU block as a recent dual-socket Xeon prints it (about 1.6 KiB with its flags).
fn cpu_block(i: usize, vendor: &str, hypervisor: bool) -> String {
    let flags = "fpu vme de pse tsc msr pae mce cx8 apic sep mtrr pge mca cmov pat pse36 clflush dts acpi mmx fxsr sse sse2 ss ht tm pbe syscall nx pdpe1gb rdtscp lm constant_tsc art arch_perfmon pebs bts rep_good nopl xtopology nonstop_tsc cpuid aperfmperf pni pclmulqdq dtes64 monitor ds_cpl vmx smx est tm2 ssse3 sdbg fma cx16 xtpr pdcm pcid dca sse4_1 sse4_2 x2apic movbe popcnt tsc_deadline_timer aes xsave avx f16c rdrand lahf_lm abm 3dnowprefetch cpuid_fault epb cat_l3 cdp_l3 invpcid_single intel_ppin ssbd mba ibrs ibpb stibp ibrs_enhanced tpr_shadow flexpriority ept vpid ept_ad fsgsbase tsc_adjust bmi1 avx2 smep bmi2 erms invpcid cqm rdt_a avx512f avx512dq rdseed adx smap avx512ifma clflushopt clwb intel_pt avx512cd sha_ni avx512bw avx512vl xsaveopt xsavec xgetbv1 xsaves cqm_llc cqm_occup_llc cqm_mbm_total cqm_mbm_local split_lock_detect wbnoinvd dtherm ida arat pln pts hwp hwp_act_window hwp_epp hwp_pkg_req vnmi avx512vbmi umip pku ospke avx512_vbmi2 gfni vaes vpclmulqdq avx512_vnni avx512_bitalg tme avx512_vpopcntdq la57 rdpid fsrm md_clear pconfig flush_l1d arch_capabilities";
    let hv = if hypervisor { " hypervisor" } else { "" };
    format!(
        "processor\t: {i}\nvendor_id\t: {vendor}\ncpu family\t: 6\nmodel\t\t: 106\nmodel name\t: Intel(R) Xeon(R) Platinum 8380 CPU @ 2.30GHz\nstepping\t: 6\nmicrocode\t: 0xd0003a5\ncpu MHz\t\t: 2300.000\ncache size\t: 61440 KB\nphysical id\t: {}\nsiblings\t: 96\ncore id\t\t: {}\ncpu cores\t: 48\napicid\t\t: {i}\ninitial apicid\t: {i}\nfpu\t\t: yes\nfpu_exception\t: yes\ncpuid level\t: 27\nwp\t\t: yes\nflags\t\t: {flags}{hv}\nvmx flags\t: vnmi preemption_timer posted_intr invvpid ept_x_only ept_ad ept_1gb flexpriority apicv tsc_offset vtpr mtf vapic ept vpid unrestricted_guest vapic_reg vid ple shadow_vmcs pml ept_mode_based_exec tsc_scaling\nbugs\t\t: spectre_v1 spectre_v2 spec_store_bypass swapgs\nbogomips\t: 4600.00\nclflush size\t: 64\ncache_alignment\t: 64\naddress sizes\t: 46 bits physical, 57 bits virtual\npower management:\n\n",
        i / 96,
        i % 48
    )
}

fn cpuinfo_text(cpus: usize, vendor: &str, hypervisor: bool) -> String {
    (0..cpus)
        .map(|i| cpu_block(i, vendor, hypervisor))
        .collect()
}

fn main() {
    let filter = std::env::args()
        .skip(1)
        .find(|a| !a.starts_with('-'))
        .filter(|a| !a.is_empty());
    let b = Bench { filter };
    let host = HostRoot::new("/nonexistent-bench-root");

    // Configuration.
    let (name, qemu) = match shipped_dir() {
        Some(d) => (
            "shipped configuration-qemu.toml",
            std::fs::read_to_string(d.join("configuration-qemu.toml")).unwrap(),
        ),
        None => {
            eprintln!("note: ../shared/configs not found; using the built-in configuration");
            ("built-in configuration", config::BUILTIN_CONFIG.to_string())
        }
    };
    println!("config: {name}, {} bytes", qemu.len());
    b.run(
        "config: TOML decode only (toml::Table)",
        Some(qemu.len()),
        || qemu.parse::<toml::Table>().unwrap(),
    );
    b.run(
        "config: load_from_str (decode, build, validate)",
        Some(qemu.len()),
        || config::load_from_str(&host, "configuration.toml", &qemu, AssetPolicy::Report).unwrap(),
    );

    // The same through the real search path, with two drop-ins, from disk.
    let t = tempfile::tempdir().unwrap();
    let etc = t.path().join("etc/kata-containers");
    std::fs::create_dir_all(etc.join("config.d")).unwrap();
    std::fs::write(etc.join("configuration.toml"), &qemu).unwrap();
    std::fs::write(
        etc.join("config.d/10-vcpus.toml"),
        "[hypervisor.qemu]\ndefault_vcpus = 2\n",
    )
    .unwrap();
    std::fs::write(
        etc.join("config.d/20-debug.toml"),
        "[runtime]\nenable_debug = true\n",
    )
    .unwrap();
    let fake = HostRoot::new(t.path());
    b.run(
        "config: load (search, read, 2 drop-ins)",
        Some(qemu.len()),
        || config::load(&fake, None, AssetPolicy::Report).unwrap(),
    );

    // cpuinfo of a 192-CPU host.
    let intel = cpuinfo_text(192, "GenuineIntel", false);
    let amd = cpuinfo_text(192, "AuthenticAMD", true);
    println!("cpuinfo: 192 CPUs, {} bytes", intel.len());
    b.run("cpuinfo: first_block + flags + 4 word checks", None, || {
        let block = cpuinfo::first_block(&intel).unwrap();
        let flags = cpuinfo::flags(block, "flags").unwrap();
        ["vmx", "lm", "sse4_1", "svm"].map(|w| cpuinfo::contains_word(flags, w))
    });
    b.run("cpuinfo: running_on_vm", None, || {
        cpuinfo::running_on_vm(&intel)
    });
    b.run("cpuinfo: x86_vendor (Intel, found first)", None, || {
        cpuinfo::x86_vendor(&intel)
    });
    // What `check` does on such a host: read the file under the host root, then the probes.
    let proc_dir = t.path().join("proc");
    std::fs::create_dir_all(&proc_dir).unwrap();
    std::fs::write(proc_dir.join("cpuinfo"), &intel).unwrap();
    b.run(
        "cpuinfo: read from disk + all x86 probes",
        Some(intel.len()),
        || {
            let text = kata_runtime::host::read_host_file(&fake, "/proc/cpuinfo").unwrap();
            let block = cpuinfo::first_block(&text).unwrap();
            let flags = cpuinfo::flags(block, "flags").unwrap();
            (
                ["vmx", "lm", "sse4_1"].map(|w| cpuinfo::contains_word(flags, w)),
                cpuinfo::running_on_vm(&text),
                cpuinfo::x86_vendor(&text).is_ok(),
                cpuinfo::vendor_and_model(&text, "amd64").is_ok(),
            )
        },
    );
    b.run(
        "cpuinfo: x86_vendor (AMD, whole-file scan)",
        Some(amd.len()),
        || cpuinfo::x86_vendor(&amd),
    );
    b.run("cpuinfo: vendor_and_model amd64", None, || {
        cpuinfo::vendor_and_model(&intel, "amd64").unwrap()
    });
    b.run(
        "cpuinfo: vendor_and_model ppc64le (last line)",
        None,
        || cpuinfo::vendor_and_model(&intel, "ppc64le").unwrap(),
    );

    // Mount info.
    let small = br#"{"volume-type":"block","device":"/dev/sdb","fstype":"ext4","metadata":{"fsGroup":"2000","fsGroupChangePolicy":"OnRootMismatch"},"options":["rw","noatime"]}"#;
    b.run("mount-info: typical record", Some(small.len()), || {
        parse_mount_info(small).unwrap()
    });
    let mut big = String::from(
        r#"{"volume-type":"block","device":"/dev/disk/by-id/nvme-eui.0123456789abcdef","fstype":"xfs","metadata":{"#,
    );
    for i in 0..200 {
        if i > 0 {
            big.push(',');
        }
        big.push_str(&format!(
            r#""csi.storage.k8s.io/key-{i}":"value-{i}-{}""#,
            "x".repeat(40)
        ));
    }
    big.push_str(r#"},"options":["#);
    for i in 0..200 {
        if i > 0 {
            big.push(',');
        }
        big.push_str(&format!(r#""opt{i}=v""#));
    }
    big.push_str(r#"],"ignoredUnknownKey":{"nested":[1,2,3,{"a":"b"}]}}"#);
    b.run(
        &format!("mount-info: 200 metadata + 200 options ({} B)", big.len()),
        Some(big.len()),
        || parse_mount_info(big.as_bytes()).unwrap(),
    );

    // The small env probes, for scale.
    // A real 256 GiB host's /proc/meminfo: 56 lines, the three wanted ones at the top.
    let mem: String = [
        "MemTotal",
        "MemFree",
        "MemAvailable",
        "Buffers",
        "Cached",
        "SwapCached",
        "Active",
        "Inactive",
        "Active(anon)",
        "Inactive(anon)",
        "Active(file)",
        "Inactive(file)",
        "Unevictable",
        "Mlocked",
        "SwapTotal",
        "SwapFree",
        "Zswap",
        "Zswapped",
        "Dirty",
        "Writeback",
        "AnonPages",
        "Mapped",
        "Shmem",
        "KReclaimable",
        "Slab",
        "SReclaimable",
        "SUnreclaim",
        "KernelStack",
        "PageTables",
        "SecPageTables",
        "NFS_Unstable",
        "Bounce",
        "WritebackTmp",
        "CommitLimit",
        "Committed_AS",
        "VmallocTotal",
        "VmallocUsed",
        "VmallocChunk",
        "Percpu",
        "HardwareCorrupted",
        "AnonHugePages",
        "ShmemHugePages",
        "ShmemPmdMapped",
        "FileHugePages",
        "FilePmdMapped",
        "Unaccepted",
        "HugePages_Total",
        "HugePages_Free",
        "HugePages_Rsvd",
        "HugePages_Surp",
        "Hugepagesize",
        "Hugetlb",
        "DirectMap4k",
        "DirectMap2M",
        "DirectMap1G",
        "CmaTotal",
    ]
    .iter()
    .enumerate()
    .map(|(i, k)| {
        format!(
            "{:<16}{:>10} kB\n",
            format!("{k}:"),
            263784360u64 / (i as u64 + 1)
        )
    })
    .collect();
    b.run("meminfo: parse", Some(mem.len()), || meminfo::parse(&mem));
    let osr = "PRETTY_NAME=\"Debian GNU/Linux 12 (bookworm)\"\nNAME=\"Debian GNU/Linux\"\nVERSION_ID=\"12\"\nVERSION=\"12 (bookworm)\"\nVERSION_CODENAME=bookworm\nID=debian\nHOME_URL=\"https://www.debian.org/\"\n";
    b.run("os-release: parse", Some(osr.len()), || {
        os_release::parse(osr)
    });
}
