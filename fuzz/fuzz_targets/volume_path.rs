//! Fuzzes the direct-volume name encoding (volume path ↔ directory name) and the decoding of
//! directory names found on disk.
#![no_main]

use kata_runtime::volume::{decode_volume_name, encode_volume_path};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(path) = std::str::from_utf8(data) {
        let name = encode_volume_path(path);
        assert!(!name.contains('/') && !name.contains('\0'));
        assert_eq!(decode_volume_name(&name).as_deref(), Some(path));
        // Directory names written by others (CSI drivers) are decoded too.
        let _ = decode_volume_name(path);
    }
});
