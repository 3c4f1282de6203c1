//! Fuzzes the release-list parser of `check` (GitHub's JSON, or a mirror's), the `Link`
//! header reader, and the verdict built from what parsed.
#![no_main]

use kata_runtime::host::release;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(body) = std::str::from_utf8(data) else {
        return;
    };
    let log = slog::Logger::root(slog::Discard, slog::o!());
    let current = semver::Version::parse("3.0.0").unwrap();
    for custom in [false, true] {
        let src = release::Source {
            url: "https://mirror.example/releases".into(),
            custom,
        };
        if let Ok(list) = release::parse_releases(body, true, &src, &log) {
            let _ = release::verdict(&current, &list).to_string();
            for r in release::newer_releases(&current, &list) {
                let _ = release::release_kind(&current, &r.version);
                let _ = r.list_line();
            }
        }
    }
    let _ = release::next_link(body);
});
