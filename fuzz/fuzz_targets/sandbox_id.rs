//! Fuzzes sandbox ID validation and resolution against a root that does not exist: the
//! hand-written check must agree with the Go pattern, and resolution must not panic.
#![no_main]

use kata_runtime::paths::HostRoot;
use kata_runtime::shim;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(id) = std::str::from_utf8(data) else {
        return;
    };
    let valid = shim::is_valid_sandbox_id(id);
    assert_eq!(valid, shim::validate_sandbox_id(id).is_ok());
    let bytes = id.as_bytes();
    let by_pattern = bytes.len() >= 2
        && bytes[0].is_ascii_alphanumeric()
        && bytes[1..]
            .iter()
            .all(|c| c.is_ascii_alphanumeric() || b"_.-".contains(c));
    assert_eq!(valid, by_pattern);
    let _ = shim::resolve_sandbox(&HostRoot::new("/nonexistent-fuzz-root"), id);
    let _ = shim::stats_query_value(id);
});
