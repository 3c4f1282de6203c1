//! Fuzzes the `/proc/version` parser and the s390x kernel command-line probe.
#![no_main]

use kata_runtime::host::{kernel, protection};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    if let Ok(release) = kernel::release(&text) {
        assert!(!release.is_empty() && !release.contains(char::is_whitespace));
    }
    let _ = protection::prot_virt_enabled(&text);
});
