//! Fuzzes the os-release parser and the shell unquoting it uses (`env`'s `Host.Distro`).
#![no_main]

use kata_runtime::host::os_release;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    // The host reader decodes files lossily, so every byte string is a possible input.
    let text = String::from_utf8_lossy(data);
    let d = os_release::parse(&text);
    assert!(d.name.as_deref() != Some(""));
    assert!(d.version.as_deref() != Some(""));
    let _ = os_release::unquote(&text);
});
