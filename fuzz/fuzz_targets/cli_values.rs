//! Fuzzes the parsers of flag and config values: Go-style unsigned numbers (`--size`,
//! `--kata-debug-port`), Go booleans, and guest `kernel_params` strings.
#![no_main]

use kata_runtime::cli::{parse_go_bool, parse_go_uint};
use kata_runtime::config::parse_kernel_params;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(s) = std::str::from_utf8(data) else {
        return;
    };
    let _ = parse_go_uint(s);
    let _ = parse_go_bool(s);
    if let Ok(params) = parse_kernel_params(s) {
        assert_eq!(params.len(), s.split_whitespace().count());
        assert!(params.iter().all(|p| !p.key.is_empty()));
    }
});
