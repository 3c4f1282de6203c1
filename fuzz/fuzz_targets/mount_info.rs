//! Fuzzes the mount-info JSON reader (`direct-volume add --mount-info`, and the records
//! `stats` and `resize` read back): any bytes parse or give an error.
#![no_main]

use kata_runtime::volume::parse_mount_info;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(info) = parse_mount_info(data) {
        // Accepted documents are JSON objects, as the shims require.
        let v: serde_json::Value = serde_json::from_slice(data).expect("accepted but not JSON");
        assert!(v.is_object());
        let _ = info.device;
    }
});
