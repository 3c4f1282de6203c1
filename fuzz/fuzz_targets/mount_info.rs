//! Fuzzes the mount-info JSON reader (`direct-volume add --mount-info`, and the records
//! `stats` and `resize` read back): any bytes parse or give an error.
#![no_main]

use kata_runtime::volume::parse_mount_info;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(info) = parse_mount_info(data) {
        // Accepted documents are JSON objects, as the shims require. Inside members the
        // shim ignores, Go's decoder lets through what serde_json::Value would refuse
        // (invalid UTF-8, numbers beyond f64), and so does the reader; so only the shape
        // is checked here. (Through the CLI, --mount-info is always UTF-8.)
        let text = String::from_utf8_lossy(data);
        let t = text.trim_matches([' ', '\t', '\n', '\r']);
        assert!(t.starts_with('{') && t.ends_with('}'), "accepted a non-object");
        let _ = info.device;
    }
});
