//! `/proc/version` parsing for `env`'s `Host.Kernel` (spec §4.2).

/// The kernel release: the third whitespace-separated field (`Linux version 6.1.0-13 ...`).
pub fn release(proc_version: &str) -> Result<String, String> {
    proc_version
        .split_whitespace()
        .nth(2)
        .map(str::to_string)
        .ok_or_else(|| {
            "unexpected contents in /proc/version (expected \"Linux version <release> ...\")"
                .to_string()
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn third_field() {
        assert_eq!(
            release("Linux version 6.18.44-fc-v509 (root@x) (gcc) #1 SMP\n").unwrap(),
            "6.18.44-fc-v509"
        );
        assert!(
            release("Linux version\n")
                .unwrap_err()
                .contains("/proc/version")
        );
        assert!(release("").is_err());
    }
}
