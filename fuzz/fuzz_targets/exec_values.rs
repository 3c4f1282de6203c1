//! Fuzzes the small parsers of `check` and `exec` input: module parameter values, the
//! `--escape-char` value, and the one-shot output parser (guest bytes in arbitrary chunks).
#![no_main]

use kata_runtime::console::escape::{EscapeFilter, display_escape, parse_escape_char};
use kata_runtime::console::oneshot::Parser;
use kata_runtime::host::modules;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    let v = modules::parameter_value(&text);
    assert!(!v.ends_with(['\n', '\r']));
    if let Ok(Some(c)) = parse_escape_char(&text) {
        assert_eq!(parse_escape_char(&display_escape(c)), Ok(Some(c)));
    }
    // Typed bytes through the escape filter, and guest output through the one-shot parser,
    // split at every byte value that is a chunk boundary marker (0xff) in the input.
    let mut filter = EscapeFilter::new(Some(b'~'));
    let mut parser = Parser::new("0123456789abcdef");
    let mut out = Vec::new();
    for chunk in data.split(|&b| b == 0xff) {
        out.clear();
        let _ = filter.feed(chunk, &mut out);
        let _ = parser.feed(chunk);
    }
});
