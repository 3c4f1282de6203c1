//! Fuzzes the configuration loader with a drop-in file: a fixed base configuration (the
//! built-in 3.0.0 qemu one) in a temp directory, and the input as `config.d/50-fuzz.toml`.
#![no_main]

use kata_runtime::config::{self, AssetPolicy};
use kata_runtime::paths::HostRoot;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("configuration.toml");
    std::fs::write(&file, config::BUILTIN_CONFIG).unwrap();
    std::fs::create_dir(dir.path().join("config.d")).unwrap();
    std::fs::write(dir.path().join("config.d/50-fuzz.toml"), data).unwrap();
    if let Err(e) = config::load(&HostRoot::new(dir.path()), Some(&file), AssetPolicy::Report) {
        assert!(!e.to_string().is_empty());
    }
});
