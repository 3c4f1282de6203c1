//! Property tests for every parser of outside input (issue 8): none may panic; each parses
//! or gives an error, and where the input is well-formed the parse gives back what was put
//! in. Parsers already covered elsewhere (the volume-name encoding and mount-info storage in
//! `volume_props.rs`, config text in `config.rs`) get the cases those files do not try:
//! arbitrary bytes, drop-ins, deep nesting, hostile paths. Parsers with a small proptest next
//! to their code (release JSON, agent URLs, the reply line) get structured inputs here.

use std::path::Path;

use kata_runtime::cli::parse_go_uint;
use kata_runtime::config::{self, AssetPolicy, parse_kernel_params};
use kata_runtime::console::dial::{check_reply, handshake};
use kata_runtime::console::escape::{display_escape, parse_escape_char};
use kata_runtime::console::url::{AgentUrl, ConsoleTarget, parse_agent_url};
use kata_runtime::host::{cpuinfo, kernel, meminfo, modules, os_release, protection, release};
use kata_runtime::paths::HostRoot;
use kata_runtime::shim::{self, ShimError};
use kata_runtime::volume::{VolumeStore, decode_volume_name, encode_volume_path, parse_mount_info};
use proptest::prelude::*;

fn shipped_dir() -> Option<std::path::PathBuf> {
    let here = Path::new(env!("CARGO_MANIFEST_DIR"));
    [
        here.join("../shared/configs/kata-3.0.0"),
        here.join("../../shared/configs/kata-3.0.0"),
    ]
    .into_iter()
    .find(|p| p.is_dir())
}

/// The largest shipped configuration, or the built-in one when `../shared` is absent.
fn qemu_config() -> String {
    shipped_dir()
        .and_then(|d| std::fs::read_to_string(d.join("configuration-qemu.toml")).ok())
        .unwrap_or_else(|| config::BUILTIN_CONFIG.to_string())
}

/// Text cut at an arbitrary char boundary.
fn cut(s: &str, at: prop::sample::Index) -> &str {
    let i = at.index(s.len() + 1);
    let i = (0..=i).rev().find(|&c| s.is_char_boundary(c)).unwrap_or(0);
    &s[..i]
}

// ---------------------------------------------------------------------------------------
// Configuration: the whole file, values swapped in at random, truncation, and drop-ins.

/// TOML values of every type, valid and not.
fn toml_value() -> impl Strategy<Value = String> {
    prop_oneof![
        any::<i64>().prop_map(|n| n.to_string()),
        any::<f64>().prop_map(|f| format!("{f:?}")),
        any::<bool>().prop_map(|b| b.to_string()),
        "\\PC{0,20}".prop_map(|s| format!("{s:?}")),
        Just("[]".to_string()),
        Just("[\"a\", 1]".to_string()),
        Just("{ a = 1 }".to_string()),
        Just("\"\"\"multi\nline\"\"\"".to_string()),
        Just("1979-05-27T07:32:00Z".to_string()),
        Just("nan".to_string()),
        Just("-inf".to_string()),
        Just("0x7fffffffffffffff".to_string()),
        Just("18446744073709551616".to_string()),
        Just("".to_string()),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    /// Any line of the shipped qemu configuration given any value: loads or errors.
    #[test]
    fn config_any_key_any_value(line in any::<prop::sample::Index>(), value in toml_value()) {
        let text = qemu_config();
        let lines: Vec<&str> = text.lines().collect();
        let i = line.index(lines.len());
        let mut out = String::new();
        for (n, l) in lines.iter().enumerate() {
            if n == i && let Some((k, _)) = l.split_once('=') {
                out.push_str(&format!("{k}= {value}\n"));
                continue;
            }
            out.push_str(l);
            out.push('\n');
        }
        let _ = config::load_from_str(&HostRoot::new("/nonexistent-props"), "p.toml", &out, AssetPolicy::Report);
        let _ = config::load_from_str(&HostRoot::new("/nonexistent-props"), "p.toml", &out, AssetPolicy::Require);
    }

    /// The shipped configuration cut anywhere, or with arbitrary text appended.
    #[test]
    fn config_truncated_or_extended(at in any::<prop::sample::Index>(), tail in "\\PC{0,40}") {
        let text = qemu_config();
        let head = cut(&text, at);
        let _ = config::load_from_str(&HostRoot::new("/nonexistent-props"), "p.toml", head, AssetPolicy::Report);
        let more = format!("{text}\n{tail}");
        let _ = config::load_from_str(&HostRoot::new("/nonexistent-props"), "p.toml", &more, AssetPolicy::Report);
    }

    /// Nested tables and arrays deeper than anyone writes by hand.
    #[test]
    fn config_deep_nesting(depth in 1usize..400, arrays in any::<bool>()) {
        let text = if arrays {
            format!("[hypervisor.qemu]\nkernel_params = {}1{}\n", "[".repeat(depth), "]".repeat(depth))
        } else {
            format!("[hypervisor.qemu]\nx = {}\n", "{ a = ".repeat(depth) + "1" + &" }".repeat(depth))
        };
        let _ = config::load_from_str(&HostRoot::new("/nonexistent-props"), "p.toml", &text, AssetPolicy::Report);
    }

    /// A base file plus drop-ins of arbitrary text in `config.d`: the loader merges or fails
    /// with an error naming the bad drop-in.
    #[test]
    fn config_drop_ins(
        dropins in prop::collection::vec(
            prop_oneof![
                toml_value().prop_map(|v| format!("[hypervisor.qemu]\ndefault_vcpus = {v}\n")),
                toml_value().prop_map(|v| format!("[runtime]\nexperimental = {v}\n")),
                toml_value().prop_map(|v| format!("[hypervisor.clh]\npath = {v}\n")),
                "[a-z_.]{1,20}".prop_map(|k| format!("[{k}]\nx = 1\n")),
                "\\PC{0,60}",
            ],
            0..4,
        ),
    ) {
        let t = tempfile::tempdir().unwrap();
        let file = t.path().join("configuration.toml");
        std::fs::write(&file, config::BUILTIN_CONFIG).unwrap();
        let dir = t.path().join("config.d");
        std::fs::create_dir(&dir).unwrap();
        for (i, d) in dropins.iter().enumerate() {
            std::fs::write(dir.join(format!("{i:02}-p.toml")), d).unwrap();
        }
        match config::load(&HostRoot::new(t.path()), Some(&file), AssetPolicy::Report) {
            Ok(_) => {}
            Err(e) => {
                let m = e.to_string();
                prop_assert!(!m.is_empty());
                prop_assert!(m.contains("-p.toml") || m.contains("configuration.toml"), "{}", m);
            }
        }
    }

    /// `kernel_params` strings: each item splits at its first `=`; only an empty key fails.
    #[test]
    fn kernel_params_split(s in "\\PC{0,120}") {
        match parse_kernel_params(&s) {
            Ok(ps) => {
                prop_assert_eq!(ps.len(), s.split_whitespace().count());
                for (p, item) in ps.iter().zip(s.split_whitespace()) {
                    prop_assert!(!p.key.is_empty());
                    let full = if item.contains('=') { item.to_string() } else { format!("{item}=") };
                    prop_assert_eq!(format!("{}={}", p.key, p.value), full);
                }
            }
            Err(_) => prop_assert!(s.split_whitespace().any(|i| i.starts_with('='))),
        }
    }
}

// ---------------------------------------------------------------------------------------
// /proc/cpuinfo

/// A generated x86 `/proc/cpuinfo`: `n` CPUs with the given vendor and flags.
fn x86_cpuinfo(n: usize, vendor: &str, model: &str, flags: &[String]) -> String {
    let mut s = String::new();
    for i in 0..n {
        s.push_str(&format!(
            "processor\t: {i}\nvendor_id\t: {vendor}\ncpu family\t: 6\nmodel\t\t: 85\nmodel name\t: {model}\nflags\t\t: {}\nbugs\t\t: spectre_v1\n\n",
            flags.join(" ")
        ));
    }
    s
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    /// Arbitrary text through every cpuinfo function, for every architecture.
    #[test]
    fn cpuinfo_arbitrary_text(text in "(\\PC|\n){0,400}", word in "\\PC{0,8}") {
        if let Some(block) = cpuinfo::first_block(&text) {
            prop_assert!(!block.is_empty());
            let _ = cpuinfo::flags(block, "flags");
            let _ = cpuinfo::flags(block, "Features");
            let _ = cpuinfo::field(block, "vendor_id");
            let _ = cpuinfo::contains_word(block, &word);
        }
        let _ = cpuinfo::last_field(&text, "model");
        let _ = cpuinfo::running_on_vm(&text);
        let _ = cpuinfo::x86_vendor(&text);
        for arch in ["amd64", "arm64", "ppc64le", "s390x", "riscv64", ""] {
            let _ = cpuinfo::vendor_and_model(&text, arch);
        }
        let _ = protection::prot_virt_enabled(&text);
    }

    /// Arbitrary bytes, read the way the host readers do (lossy UTF-8).
    #[test]
    fn cpuinfo_arbitrary_bytes(bytes in prop::collection::vec(any::<u8>(), 0..400)) {
        let text = String::from_utf8_lossy(&bytes);
        let _ = cpuinfo::first_block(&text).map(|b| cpuinfo::flags(b, "flags"));
        let _ = cpuinfo::x86_vendor(&text);
        let _ = cpuinfo::vendor_and_model(&text, "amd64");
    }

    /// A well-formed file gives back its vendor, model and flags.
    #[test]
    fn cpuinfo_generated_host(
        n in 1usize..16,
        vendor in prop::sample::select(vec!["GenuineIntel", "AuthenticAMD", "HygonGenuine"]),
        model in "[A-Za-z0-9()@. -]{1,40}",
        flags in prop::collection::btree_set("[a-z][a-z0-9_]{0,11}", 0..40),
        hv in any::<bool>(),
    ) {
        let mut flags: Vec<String> = flags.into_iter().filter(|f| f != "hypervisor").collect();
        if hv {
            flags.push("hypervisor".into());
        }
        let text = x86_cpuinfo(n, vendor, &model, &flags);
        let block = cpuinfo::first_block(&text).unwrap();
        prop_assert_eq!(cpuinfo::flags(block, "flags").unwrap(), flags.join(" "));
        for f in &flags {
            prop_assert!(cpuinfo::contains_word(block, f), "{}", f);
        }
        prop_assert_eq!(cpuinfo::running_on_vm(&text), Some(hv));
        prop_assert_eq!(cpuinfo::x86_vendor(&text).unwrap().vendor_id(), vendor);
        let (v, m) = cpuinfo::vendor_and_model(&text, "amd64").unwrap();
        prop_assert_eq!(v, vendor);
        prop_assert_eq!(m, model.trim());
    }

    /// Whole-word search agrees with the Go tool's `\bWORD\b` regex.
    #[test]
    fn cpuinfo_contains_word_is_the_regex(hay in "[a-z0-9_ .:-]{0,60}", word in "[a-z0-9_]{1,6}") {
        let re = regex::Regex::new(&format!(r"\b{}\b", regex::escape(&word))).unwrap();
        prop_assert_eq!(cpuinfo::contains_word(&hay, &word), re.is_match(&hay));
    }
}

// ---------------------------------------------------------------------------------------
// os-release, meminfo, /proc/version

/// A value as a shell would quote it in os-release: double quotes with escapes.
fn shell_quote(v: &str) -> String {
    let mut s = String::from("\"");
    for c in v.chars() {
        if matches!(c, '"' | '\\' | '$' | '`') {
            s.push('\\');
        }
        s.push(c);
    }
    s.push('"');
    s
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn os_release_arbitrary(text in "(\\PC|\n){0,400}") {
        let d = os_release::parse(&text);
        prop_assert!(d.name.as_deref() != Some(""));
        prop_assert!(d.version.as_deref() != Some(""));
        for line in text.lines() {
            let _ = os_release::unquote(line);
        }
    }

    /// Quoted values come back as written, whatever they hold (spec Q26).
    #[test]
    fn os_release_quoted_values_round_trip(name in "[^\n\r]{1,40}", version in "[^\n\r]{1,12}", single in any::<bool>()) {
        let q = |v: &str| if single && !v.contains('\'') { format!("'{v}'") } else { shell_quote(v) };
        let text = format!("PRETTY_NAME=\"x\"\nNAME={}\nVERSION_ID={}\n", q(&name), q(&version));
        let d = os_release::parse(&text);
        prop_assert_eq!(d.name.as_deref(), Some(name.as_str()));
        prop_assert_eq!(d.version.as_deref(), Some(version.as_str()));
    }

    /// Files read from a fake root, including invalid UTF-8: never a panic.
    #[test]
    fn os_release_read_bytes(a in prop::collection::vec(any::<u8>(), 0..200), b in prop::collection::vec(any::<u8>(), 0..200)) {
        let t = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(t.path().join("etc")).unwrap();
        std::fs::create_dir_all(t.path().join("usr/lib")).unwrap();
        std::fs::write(t.path().join("etc/os-release"), &a).unwrap();
        std::fs::write(t.path().join("usr/lib/os-release"), &b).unwrap();
        let mut warnings = Vec::new();
        let _ = os_release::read(&HostRoot::new(t.path()), &mut |w| warnings.push(w));
        prop_assert!(warnings.is_empty(), "{:?}", warnings);
    }

    #[test]
    fn meminfo_arbitrary(text in "(\\PC|\n){0,400}") {
        let (_, bad) = meminfo::parse(&text);
        for k in bad {
            prop_assert!(["MemTotal", "MemFree", "MemAvailable"].contains(&k.as_str()));
        }
    }

    /// Well-formed lines in any order, among other lines, give back their values.
    #[test]
    fn meminfo_generated(total in any::<u64>(), free in any::<u64>(), avail in prop::option::of(any::<u64>()), others in prop::collection::vec(("[A-Z][A-Za-z_()]{1,14}", any::<u32>()), 0..20)) {
        let mut lines: Vec<String> = others
            .into_iter()
            .filter(|(k, _)| !k.starts_with("Mem"))
            .map(|(k, v)| format!("{k}:{:>16} kB", v))
            .collect();
        lines.insert(0, format!("MemTotal:{total:>16} kB"));
        lines.push(format!("MemFree:        {free} kB"));
        if let Some(a) = avail {
            lines.push(format!("MemAvailable:\t{a} kB"));
        }
        let (m, bad) = meminfo::parse(&lines.join("\n"));
        prop_assert!(bad.is_empty());
        prop_assert_eq!((m.total, m.free, m.available), (total, free, avail.unwrap_or(0)));
    }

    #[test]
    fn proc_version_arbitrary(text in "(\\PC|\n){0,200}") {
        match kernel::release(&text) {
            Ok(r) => {
                prop_assert!(!r.is_empty());
                prop_assert!(!r.contains(char::is_whitespace));
            }
            Err(e) => prop_assert!(e.contains("/proc/version")),
        }
    }

    #[test]
    fn proc_version_generated(release in "[0-9][0-9a-zA-Z._+~-]{0,40}", rest in "[^\n]{0,80}") {
        let text = format!("Linux version {release} {rest}\n");
        prop_assert_eq!(kernel::release(&text).unwrap(), release);
    }

    /// Go-style unsigned numbers (`--size`, `--kata-debug-port`): no panic, and decimal
    /// spellings of any u64 parse back.
    #[test]
    fn go_uint(s in "\\PC{0,30}", n in any::<u64>()) {
        let _ = parse_go_uint(&s);
        prop_assert_eq!(parse_go_uint(&n.to_string()), Ok(n));
        prop_assert_eq!(parse_go_uint(&format!("0x{n:x}")), Ok(n));
        prop_assert_eq!(parse_go_uint(&format!("0b{n:b}")), Ok(n));
    }
}

// ---------------------------------------------------------------------------------------
// Mount-info JSON, sandbox IDs and volume paths

/// Deeply nested JSON in an unknown key, an array, or a known key.
fn nested_json(depth: usize, key: &str, open: &str, close: &str) -> String {
    format!(
        "{{\"{key}\": {}1{}}}",
        open.repeat(depth),
        close.repeat(depth)
    )
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn mount_info_arbitrary_bytes(bytes in prop::collection::vec(any::<u8>(), 0..300)) {
        let _ = parse_mount_info(&bytes);
    }

    #[test]
    fn mount_info_deep_nesting(depth in 1usize..2000, key in prop::sample::select(vec!["x", "metadata", "options", "device"]), arrays in any::<bool>()) {
        let text = if arrays { nested_json(depth, key, "[", "]") } else { nested_json(depth, key, "{\"a\":", "}") };
        let _ = parse_mount_info(text.as_bytes());
    }

    /// Members of every type under every known key, in any case.
    #[test]
    fn mount_info_typed_members(
        key in prop::sample::select(vec!["volume-type", "VOLUME-TYPE", "device", "Device", "fstype", "fſtype", "metadata", "Metadata", "options", "OPTIONS"]),
        value in prop_oneof![
            Just("null".to_string()), Just("1".to_string()), Just("-0.5e9".to_string()), Just("true".to_string()),
            "\\PC{0,10}".prop_map(|s| serde_json::to_string(&s).unwrap()),
            Just("[]".to_string()), Just("[\"a\",null]".to_string()), Just("[1]".to_string()),
            Just("{}".to_string()), Just("{\"a\":\"b\"}".to_string()), Just("{\"a\":1}".to_string()),
        ],
    ) {
        let text = format!("{{\"{key}\": {value}}}");
        match parse_mount_info(text.as_bytes()) {
            Ok(mi) => {
                // A string member under `device` is what stats and resize send to the shim.
                if key.eq_ignore_ascii_case("device") && value.starts_with('"') {
                    let s: String = serde_json::from_str(&value).unwrap();
                    prop_assert_eq!(mi.device, s);
                }
            }
            Err(e) => prop_assert!(!e.to_string().is_empty()),
        }
    }

    /// The hand-written sandbox ID check is the Go pattern, for any string.
    #[test]
    fn sandbox_id_is_the_go_pattern(id in prop_oneof!["\\PC{0,12}", "[a-zA-Z0-9_./ -]{0,12}"]) {
        let re = regex::Regex::new(shim::SANDBOX_ID_PATTERN).unwrap();
        prop_assert_eq!(shim::is_valid_sandbox_id(&id), re.is_match(&id));
        match shim::validate_sandbox_id(&id) {
            Ok(()) => prop_assert!(re.is_match(&id)),
            Err(ShimError::BlankId) => prop_assert!(id.is_empty()),
            Err(ShimError::InvalidId { .. }) => prop_assert!(!re.is_match(&id)),
            Err(e) => prop_assert!(false, "unexpected {e}"),
        }
    }

    /// Resolving any ID or prefix against a root holding a few sandboxes: never a path
    /// outside the two shim roots, never a panic.
    #[test]
    fn sandbox_resolution_stays_in_the_shim_roots(id in prop_oneof!["\\PC{0,12}", "(\\.\\./|[a-z0-9.])+"]) {
        let t = tempfile::tempdir().unwrap();
        let host = HostRoot::new(t.path());
        for (root, name) in [("run/vc/sbs", "abc123"), ("run/kata", "abd456"), ("run/vc/sbs", "x.y")] {
            let dir = t.path().join(root).join(name);
            std::fs::create_dir_all(&dir).unwrap();
            std::fs::write(dir.join("shim-monitor.sock"), "").unwrap();
        }
        std::fs::write(t.path().join("run/shim-monitor.sock"), "").unwrap();
        match shim::resolve_sandbox(&host, &id) {
            Ok(sb) => {
                prop_assert!(shim::is_valid_sandbox_id(&sb.id));
                prop_assert!(sb.id.starts_with(id.as_str()));
                let ok = sb.socket.starts_with(t.path().join("run/vc/sbs")) || sb.socket.starts_with(t.path().join("run/kata"));
                prop_assert!(ok, "{}", sb.socket.display());
                prop_assert_eq!(sb.socket.parent().unwrap().file_name().unwrap().to_str(), Some(sb.id.as_str()));
            }
            Err(e) => prop_assert!(!e.to_string().is_empty()),
        }
    }

    /// Any volume path: add/lookup/remove never panic and never touch anything outside the
    /// direct-volumes root.
    #[test]
    fn volume_paths_stay_in_the_volume_root(path in prop_oneof![
        "\\PC{0,30}",
        "(/|\\.\\./|\\.|[a-z]){0,40}",
        "/[a-z]{1,8}".prop_map(|s| s.repeat(30)),
        Just(String::new()),
    ]) {
        let t = tempfile::tempdir().unwrap();
        let store = VolumeStore::new(&HostRoot::new(t.path()));
        let added = store.add(&path, r#"{"device":"/dev/sdb"}"#);
        if added.is_ok() {
            let name = encode_volume_path(&path);
            prop_assert_eq!(decode_volume_name(&name), Some(path.clone()));
            let dir = t.path().join("run/kata-containers/shared/direct-volumes").join(&name);
            prop_assert!(dir.join("mountInfo.json").is_file());
            // No sandbox yet: lookup fails cleanly.
            prop_assert!(store.lookup(&path).is_err());
        } else {
            prop_assert!(path.is_empty() || encode_volume_path(&path).len() > 255);
        }
        let removed = store.remove(&path);
        prop_assert_eq!(removed.is_ok(), !path.is_empty());
        // Only the direct-volumes root may remain.
        let mut left = Vec::new();
        for e in walkdir(t.path()) {
            if !t.path().join("run/kata-containers/shared/direct-volumes").starts_with(&e) {
                left.push(e);
            }
        }
        prop_assert!(left.is_empty(), "{:?}", left);
    }
}

/// Every path under `root` (not `root` itself).
fn walkdir(root: &Path) -> Vec<std::path::PathBuf> {
    let mut out = Vec::new();
    let mut stack = vec![root.to_path_buf()];
    while let Some(d) = stack.pop() {
        if let Ok(entries) = std::fs::read_dir(&d) {
            for e in entries.flatten() {
                let p = e.path();
                if p.is_dir() {
                    stack.push(p.clone());
                }
                out.push(p);
            }
        }
    }
    out
}

// ---------------------------------------------------------------------------------------
// check: module parameters and the release JSON

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    /// A parameter file of any bytes: the value without its line ending, or an error naming
    /// the host path (invalid UTF-8).
    #[test]
    fn module_parameter_files(bytes in prop::collection::vec(any::<u8>(), 0..80)) {
        let t = tempfile::tempdir().unwrap();
        let dir = t.path().join("sys/module/kvm_intel/parameters");
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join("nested"), &bytes).unwrap();
        match modules::read_parameter(&HostRoot::new(t.path()), "kvm_intel", "nested") {
            Ok(v) => {
                let text = std::str::from_utf8(&bytes).unwrap();
                prop_assert_eq!(v.as_str(), text.trim_end_matches(['\n', '\r']));
                prop_assert!(!v.ends_with('\n'));
            }
            Err(e) => {
                prop_assert!(std::str::from_utf8(&bytes).is_err());
                prop_assert!(e.contains("/sys/module/kvm_intel/parameters/nested"), "{}", e);
            }
        }
    }

    #[test]
    fn module_parameter_value(s in "(\\PC|\n|\r){0,40}") {
        let v = modules::parameter_value(&s);
        prop_assert!(s.starts_with(v));
        prop_assert!(!v.ends_with(['\n', '\r']));
    }
}

/// One release object, valid or broken in one of many ways.
fn release_object() -> impl Strategy<Value = serde_json::Value> {
    let version = prop_oneof![
        (0u64..5, 0u64..20, 0u64..20).prop_map(|(a, b, c)| format!("{a}.{b}.{c}")),
        (1u64..4, 0u64..5, "(alpha|rc)[0-9]").prop_map(|(a, b, p)| format!("{a}.{b}.0-{p}")),
        "\\PC{0,12}",
        Just(String::new()),
    ];
    let url = prop_oneof![
        Just(
            "https://github.com/kata-containers/kata-containers/releases/download/x/kata.tar.xz"
                .to_string()
        ),
        Just(
            "https://github.com/kata-containers/runtime/releases/download/x/kata.tar.xz"
                .to_string()
        ),
        Just("https://evil.example/kata.tar.xz".to_string()),
        "\\PC{0,20}",
    ];
    let asset = (
        url,
        prop::option::of("\\PC{0,10}"),
        prop::option::of("\\PC{0,20}"),
    )
        .prop_map(|(u, n, d)| {
            let mut a = serde_json::json!({ "browser_download_url": u });
            if let Some(n) = n {
                a["name"] = n.into();
            }
            if let Some(d) = d {
                a["created_at"] = d.into();
            }
            a
        });
    (
        version,
        prop::collection::vec(asset, 0..3),
        any::<bool>(),
        prop_oneof![Just(0), Just(1), Just(2)],
    )
        .prop_map(|(v, assets, prerelease, shape)| {
            let mut o =
                serde_json::json!({ "tag_name": v, "assets": assets, "prerelease": prerelease });
            match shape {
                1 => o["tag_name"] = serde_json::json!(42),
                2 => o["assets"] = serde_json::json!({"not": "an array"}),
                _ => {}
            }
            o
        })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    /// Arbitrary text as the release server's answer: an error, or a list.
    #[test]
    fn release_json_arbitrary(body in "\\PC{0,200}") {
        let log = slog::Logger::root(slog::Discard, slog::o!());
        let src = release::Source { url: "https://api.github.com/x".into(), custom: false };
        let _ = release::parse_releases(&body, true, &src, &log);
        let _ = release::next_link(&body);
        let _ = release::is_rate_limited(403, &body);
    }

    /// A page of release objects: only valid releases with a Kata download URL come back,
    /// sorted, pre-releases only on request; the verdict and kinds never panic.
    #[test]
    fn release_json_generated(items in prop::collection::vec(release_object(), 0..8), include_all in any::<bool>(), custom in any::<bool>()) {
        let log = slog::Logger::root(slog::Discard, slog::o!());
        let body = serde_json::Value::Array(items).to_string();
        let src = release::Source { url: "https://mirror.example/releases".into(), custom };
        let list = release::parse_releases(&body, include_all, &src, &log).unwrap();
        for w in list.windows(2) {
            prop_assert!(w[0].version.cmp_precedence(&w[1].version) != std::cmp::Ordering::Greater);
        }
        for r in &list {
            prop_assert!(include_all || !r.prerelease);
            prop_assert!(r.url.starts_with("https://github.com/kata-containers/"));
            prop_assert!(!r.date.is_empty());
        }
        let current = semver::Version::parse("3.0.0").unwrap();
        let v = release::verdict(&current, &list);
        let _ = v.to_string();
        for r in release::newer_releases(&current, &list) {
            let kind = release::release_kind(&current, &r.version);
            prop_assert!(!kind.is_empty());
        }
    }

    #[test]
    fn release_link_header(parts in prop::collection::vec(("(https?://[a-z./?=0-9]{1,20}|\\PC{0,10})", prop_oneof![Just("rel=\"next\""), Just("rel=\"last\""), Just("rel=next"), Just("x")]), 0..4)) {
        let header = parts.iter().map(|(u, r)| format!("<{u}>; {r}")).collect::<Vec<_>>().join(", ");
        if let Some(next) = release::next_link(&header) {
            prop_assert!(next.starts_with("http://") || next.starts_with("https://"));
            let bracketed = format!("<{}>", next);
            prop_assert!(header.contains(&bracketed));
        }
    }
}

// ---------------------------------------------------------------------------------------
// exec: agent URLs, the hybrid-vsock reply line, the escape character

/// Percent-encodes what a URL path may not hold raw (and `%` itself).
fn url_escape(s: &str) -> String {
    let mut out = String::new();
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || b"/-._~".contains(&b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn agent_url_arbitrary(s in prop_oneof!["\\PC{0,40}", "(vsock|hvsock|VSOCK|unix)://[0-9a-z:/%.]{0,20}"]) {
        if let Ok(url) = parse_agent_url(&s) {
            // What parsed is reported the way the dialer will use it; it never panics.
            let t = ConsoleTarget::new(&url, &HostRoot::new("/nonexistent-props"), 1026);
            let _ = t.to_string();
        }
    }

    #[test]
    fn agent_url_vsock_round_trip(cid in any::<u32>(), port in any::<u32>(), nl in any::<bool>()) {
        let body = format!("vsock://{}:{}{}", cid, port, if nl { "\n" } else { "" });
        prop_assert_eq!(parse_agent_url(&body), Ok(AgentUrl::Vsock { cid, port }));
        let three = format!("vsock://{}:{}:{}", cid, port, port);
        prop_assert!(parse_agent_url(&three).is_err());
        let too_big = format!("vsock://{}:{}", cid, u64::from(port) + (1u64 << 32));
        prop_assert!(parse_agent_url(&too_big).is_err());
    }

    /// Any absolute socket path without `:` or NUL, percent-encoded, comes back whole.
    #[test]
    fn agent_url_hybrid_round_trip(path in "/[^:\0]{1,60}", port in any::<u32>()) {
        let body = format!("hvsock://{}:{}\n", url_escape(&path), port);
        match parse_agent_url(&body) {
            Ok(AgentUrl::HybridVsock { path: p, port: q }) => {
                prop_assert_eq!(p, std::path::PathBuf::from(&path));
                prop_assert_eq!(q, port);
            }
            other => prop_assert!(false, "{:?} gave {:?}", body, other),
        }
    }

    /// The reply line: accepted exactly when it starts with `OK ` (spec Q33).
    #[test]
    fn hybrid_vsock_reply_line(line in prop::collection::vec(any::<u8>(), 0..40), port in any::<u32>()) {
        let ok = check_reply(&line, port);
        let text = String::from_utf8_lossy(&line);
        prop_assert_eq!(ok.is_ok(), text.starts_with("OK "));
    }

    /// The handshake over a stream: whatever the VMM sends, it returns (no panic, no hang
    /// on a closed stream), reads nothing past the reply's newline, and accepts only `OK `.
    #[test]
    fn hybrid_vsock_handshake(reply in prop::collection::vec(any::<u8>(), 0..700), port in 1u32..100000) {
        let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
        rt.block_on(async {
            use tokio::io::{AsyncReadExt, AsyncWriteExt};
            let (mut client, mut vmm) = tokio::io::duplex(4096);
            let sent = reply.clone();
            let server = tokio::spawn(async move {
                let mut buf = vec![0u8; 64];
                let n = vmm.read(&mut buf).await.unwrap();
                let _ = vmm.write_all(&sent).await;
                drop(vmm);
                String::from_utf8_lossy(&buf[..n]).into_owned()
            });
            let result = handshake(&mut client, port).await;
            let connect = server.await.unwrap();
            prop_assert_eq!(connect, format!("CONNECT {}\n", port));
            let nl = reply.iter().position(|&b| b == b'\n');
            match (&result, nl) {
                (Ok(line), Some(i)) => {
                    prop_assert!(line.starts_with("OK "));
                    prop_assert!(i <= 512);
                    // Every byte after the newline is still there for the session.
                    let mut rest = Vec::new();
                    client.read_to_end(&mut rest).await.unwrap();
                    prop_assert_eq!(&rest[..], &reply[i + 1..]);
                }
                (Ok(_), None) => prop_assert!(false, "accepted a reply without a newline"),
                (Err(_), Some(i)) if i <= 512 => {
                    prop_assert!(!String::from_utf8_lossy(&reply[..i]).starts_with("OK "));
                }
                (Err(_), _) => {}
            }
            Ok(())
        })?;
    }

    /// `--escape-char`: no panic; what is accepted is shown so that it parses back.
    #[test]
    fn escape_char(s in prop_oneof!["\\PC{0,3}", "\\^.", "[\\x00-\\x7f]"]) {
        if let Ok(Some(c)) = parse_escape_char(&s) {
            prop_assert!(c.is_ascii() && c != b'\r' && c != b'\n');
            let shown = display_escape(c);
            prop_assert_eq!(parse_escape_char(&shown), Ok(Some(c)), "{:?}", shown);
        }
    }
}

/// Found by the `mount_info` fuzz target: in a member the shims ignore, a number beyond f64
/// or invalid UTF-8 inside a string is accepted, as Go's decoder accepts it (it skips
/// unknown members without converting them). Refusing would reject records that CSI
/// drivers write and the Go shim reads.
#[test]
fn mount_info_ignored_members_are_skipped_like_go() {
    let huge = br#"{"-":11277775e2222222222222222222222    } "#;
    assert!(parse_mount_info(huge).is_ok());
    let mut bad_utf8 = br#"{"x": {""#.to_vec();
    bad_utf8.extend_from_slice(&[0xfe, 0xff, 0xff]);
    bad_utf8.extend_from_slice(br#"": 2.02}, "device": "/dev/sdb"}"#);
    assert_eq!(parse_mount_info(&bad_utf8).unwrap().device, "/dev/sdb");
    // A known member still needs its type.
    assert!(parse_mount_info(br#"{"device": 1e400}"#).is_err());
}
