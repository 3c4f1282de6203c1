//! Fuzzes the configuration loader with arbitrary TOML text: it must parse or return an error.
#![no_main]

use kata_runtime::config::{AssetPolicy, load_from_str};
use kata_runtime::paths::HostRoot;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(text) = std::str::from_utf8(data) {
        let _ = load_from_str(&HostRoot::new("/nonexistent-fuzz-root"), "fuzz.toml", text, AssetPolicy::Report);
    }
});
