//! Fuzzes the agent-URL parser (`GET /agent-url` answers) and the debug-console address
//! derived from it.
#![no_main]

use kata_runtime::console::url::{ConsoleTarget, parse_agent_url};
use kata_runtime::paths::HostRoot;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(body) = std::str::from_utf8(data) else {
        return;
    };
    if let Ok(url) = parse_agent_url(body) {
        let target = ConsoleTarget::new(&url, &HostRoot::new("/nonexistent-fuzz-root"), 1026);
        let _ = target.to_string();
    }
});
