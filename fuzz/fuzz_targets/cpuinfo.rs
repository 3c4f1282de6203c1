//! Fuzzes the `/proc/cpuinfo` parsers used by `check` and `env`.
#![no_main]

use kata_runtime::host::cpuinfo;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(text) = std::str::from_utf8(data) {
        if let Some(block) = cpuinfo::first_block(text) {
            let _ = cpuinfo::flags(block, "flags");
            let _ = cpuinfo::contains_word(block, "vmx");
        }
        let _ = cpuinfo::running_on_vm(text);
        let _ = cpuinfo::x86_vendor(text);
        for arch in ["amd64", "arm64", "ppc64le", "s390x"] {
            let _ = cpuinfo::vendor_and_model(text, arch);
        }
    }
});
