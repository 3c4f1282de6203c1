//! `/proc/meminfo` parsing for `env`'s `Host.Memory` (spec §4.2), in kB as the file gives.
//!
//! spec Q27: a missing line (no `MemAvailable` before Linux 3.14) is 0, not a crash.

/// `MemTotal`, `MemFree` and `MemAvailable` in kB; 0 for a missing or unparsable line.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Memory {
    pub total: u64,
    pub free: u64,
    pub available: u64,
}

/// Parses the file; the second value lists the keys whose value could not be parsed.
pub fn parse(text: &str) -> (Memory, Vec<String>) {
    let mut m = Memory::default();
    let mut bad = Vec::new();
    let mut seen = [false; 3];
    for line in text.lines() {
        let Some((key, rest)) = line.split_once(':') else {
            continue;
        };
        let (slot, idx) = match key.trim() {
            "MemTotal" => (&mut m.total, 0),
            "MemFree" => (&mut m.free, 1),
            "MemAvailable" => (&mut m.available, 2),
            _ => continue,
        };
        if seen[idx] {
            continue;
        }
        seen[idx] = true;
        match rest.split_whitespace().next().map(str::parse::<u64>) {
            Some(Ok(v)) => *slot = v,
            _ => bad.push(key.trim().to_string()),
        }
    }
    (m, bad)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_the_three_lines() {
        let (m, bad) = parse(
            "MemTotal:       24684100 kB\nMemFree:        18678896 kB\nMemAvailable:   23615352 kB\nBuffers: 1 kB\n",
        );
        assert_eq!(
            m,
            Memory {
                total: 24684100,
                free: 18678896,
                available: 23615352
            }
        );
        assert!(bad.is_empty());
    }

    #[test]
    fn q27_missing_lines_are_zero_and_garbage_is_reported() {
        let (m, bad) = parse("MemTotal: 1000 kB\nMemFree: lots\n");
        assert_eq!(
            m,
            Memory {
                total: 1000,
                free: 0,
                available: 0
            }
        );
        assert_eq!(bad, vec!["MemFree".to_string()]);
        assert_eq!(parse("").0, Memory::default());
    }

    proptest::proptest! {
        #[test]
        fn parse_never_panics(text in "\\PC{0,300}") {
            let _ = parse(&text);
        }
    }
}
