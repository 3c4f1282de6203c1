//! Fuzzes the `/proc/meminfo` parser (`env`'s `Host.Memory`).
#![no_main]

use kata_runtime::host::meminfo;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    let (_, bad) = meminfo::parse(&text);
    for key in bad {
        assert!(["MemTotal", "MemFree", "MemAvailable"].contains(&key.as_str()));
    }
});
