//! `/proc/cpuinfo` parsing (spec §3.5, §4.2): the first CPU block, the flags line, word
//! searches, on-VM detection and the vendor/model fields for every architecture.

/// The CPU vendors `check` knows (Q13: Hygon is handled like AMD).
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
pub enum Vendor {
    Intel,
    Amd,
    Hygon,
}

impl Vendor {
    pub fn vendor_id(self) -> &'static str {
        match self {
            Vendor::Intel => "GenuineIntel",
            Vendor::Amd => "AuthenticAMD",
            Vendor::Hygon => "HygonGenuine",
        }
    }

    /// AMD-compatible virtualisation (SVM, kvm_amd).
    pub fn is_amd_like(self) -> bool {
        matches!(self, Vendor::Amd | Vendor::Hygon)
    }
}

/// The text up to the first blank line, trimmed. `None` when there is none.
pub fn first_block(cpuinfo: &str) -> Option<&str> {
    let text = cpuinfo.trim_start_matches(['\n', '\r']);
    let end = find_blank_line(text).unwrap_or(text.len());
    let block = text[..end].trim();
    if block.is_empty() { None } else { Some(block) }
}

fn find_blank_line(text: &str) -> Option<usize> {
    let mut offset = 0;
    for line in text.split_inclusive('\n') {
        if line.trim().is_empty() {
            return Some(offset);
        }
        offset += line.len();
    }
    None
}

/// The value of the first line in `block` whose key (before `:`) is exactly `key`.
pub fn field<'a>(block: &'a str, key: &str) -> Option<&'a str> {
    block.lines().find_map(|line| {
        let (k, v) = line.split_once(':')?;
        (k.trim() == key).then(|| v.trim())
    })
}

/// The value of the last line of the whole text whose key is `key` (ppc64le `model`).
pub fn last_field<'a>(text: &'a str, key: &str) -> Option<&'a str> {
    text.lines().rev().find_map(|line| {
        let (k, v) = line.split_once(':')?;
        (k.trim() == key).then(|| v.trim())
    })
}

/// The CPU flags string: the first line of the block starting with `flags_key` (`flags` on
/// x86, `Features` on arm64) that holds exactly one `:`, the part after it, trimmed.
pub fn flags<'a>(block: &'a str, flags_key: &str) -> Option<&'a str> {
    block.lines().find_map(|line| {
        if !line.starts_with(flags_key) || line.matches(':').count() != 1 {
            return None;
        }
        line.split_once(':').map(|(_, v)| v.trim())
    })
}

/// Whole-word search, as the Go tool's `\bNAME\b` regex.
pub fn contains_word(haystack: &str, word: &str) -> bool {
    if word.is_empty() {
        return false;
    }
    let is_word = |c: char| c.is_ascii_alphanumeric() || c == '_';
    let mut start = 0;
    while let Some(pos) = haystack[start..].find(word) {
        let at = start + pos;
        let end = at + word.len();
        let before_ok = haystack[..at]
            .chars()
            .next_back()
            .is_none_or(|c| !is_word(c));
        let after_ok = haystack[end..].chars().next().is_none_or(|c| !is_word(c));
        if before_ok && after_ok {
            return true;
        }
        start = at + word.len().max(1);
        if start >= haystack.len() {
            break;
        }
    }
    false
}

/// x86: running under a hypervisor when the first `flags` line has the word `hypervisor`.
/// `None` when no line starts with `flags`.
pub fn running_on_vm(cpuinfo: &str) -> Option<bool> {
    cpuinfo.lines().find_map(|line| {
        let mut words = line.split_whitespace();
        let first = words.next()?;
        first
            .starts_with("flags")
            .then(|| line.split_whitespace().any(|w| w == "hypervisor"))
    })
}

/// The x86 vendor named in the text: Intel, else AMD, else Hygon (whole-file search as the
/// Go tool does). The error names the vendor string found (Q13).
pub fn x86_vendor(cpuinfo: &str) -> Result<Vendor, String> {
    if cpuinfo.contains("GenuineIntel") {
        return Ok(Vendor::Intel);
    }
    if cpuinfo.contains("AuthenticAMD") {
        return Ok(Vendor::Amd);
    }
    if cpuinfo.contains("HygonGenuine") {
        return Ok(Vendor::Hygon);
    }
    let found = first_block(cpuinfo)
        .and_then(|b| field(b, "vendor_id"))
        .unwrap_or("");
    if found.is_empty() {
        Err("unknown CPU vendor: no vendor_id in /proc/cpuinfo (expected GenuineIntel, AuthenticAMD or HygonGenuine)".into())
    } else {
        Err(format!(
            "unknown CPU vendor \"{found}\" in /proc/cpuinfo (supported: GenuineIntel, AuthenticAMD, HygonGenuine)"
        ))
    }
}

/// `env`'s `Host.CPU.Vendor` and `Model` for an architecture (GOARCH names).
pub fn vendor_and_model(cpuinfo: &str, arch: &str) -> Result<(String, String), String> {
    match arch {
        "arm64" => {
            let block = first_block(cpuinfo).unwrap_or("");
            let vendor = match field(block, "CPU implementer") {
                Some("0x41") => "ARM Limited",
                _ => "3rd Party Limited",
            };
            let model = match field(block, "CPU architecture").unwrap_or("") {
                "8" => "v8",
                "7" | "7M" | "?(12)" | "?(13)" | "?(14)" | "?(15)" | "?(16)" | "?(17)" => "v7",
                "6" | "6TEJ" => "v6",
                "5" | "5T" | "5TE" | "5TEJ" => "v5",
                "4" | "4T" => "v4",
                "3" => "v3",
                _ => "unknown",
            };
            Ok((vendor.to_string(), model.to_string()))
        }
        "ppc64le" => Ok((
            String::new(),
            last_field(cpuinfo, "model").unwrap_or("").to_string(),
        )),
        "s390x" => {
            let block = first_block(cpuinfo).unwrap_or("");
            let vendor = field(block, "vendor_id").unwrap_or("").to_string();
            let model = block
                .lines()
                .find(|l| l.starts_with("processor"))
                .and_then(|l| {
                    l.split(',').find_map(|part| {
                        part.trim()
                            .strip_prefix("machine =")
                            .or_else(|| part.trim().strip_prefix("machine="))
                    })
                })
                .map(|m| m.trim().to_string())
                .unwrap_or_default();
            Ok((vendor, model))
        }
        _ => {
            let block =
                first_block(cpuinfo).ok_or("cannot find vendor field in file /proc/cpuinfo")?;
            let vendor = field(block, "vendor_id")
                .ok_or("cannot find vendor field in file /proc/cpuinfo")?;
            let model = field(block, "model name")
                .ok_or("cannot find model field in file /proc/cpuinfo")?;
            Ok((vendor.to_string(), model.to_string()))
        }
    }
}

/// ppc64le: the POWER generation from the first `POWER<digits>` in the text, reading every
/// digit (spec Q49: `POWER10` is 10, not 1). `None` when there is no such word.
pub fn power_generation(cpuinfo: &str) -> Option<u32> {
    let mut rest = cpuinfo;
    while let Some(at) = rest.find("POWER") {
        let after = &rest[at + "POWER".len()..];
        let digits: &str = &after[..after
            .find(|c: char| !c.is_ascii_digit())
            .unwrap_or(after.len())];
        if !digits.is_empty() {
            return digits.parse().ok();
        }
        rest = after;
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    const INTEL: &str = "processor\t: 0\nvendor_id\t: GenuineIntel\nmodel name\t: Intel(R) Xeon(R)\nflags\t\t: fpu vmx lm sse4_1\n\nprocessor\t: 1\nvendor_id\t: GenuineIntel\n";

    #[test]
    fn first_block_and_flags() {
        let b = first_block(INTEL).unwrap();
        assert!(b.ends_with("sse4_1"));
        assert_eq!(flags(b, "flags"), Some("fpu vmx lm sse4_1"));
        assert!(contains_word(flags(b, "flags").unwrap(), "vmx"));
        assert!(!contains_word("fpu vmxx lm", "vmx"));
        assert!(!contains_word("sse4_1", "sse4"));
        assert_eq!(running_on_vm(INTEL), Some(false));
        assert_eq!(running_on_vm("flags : a hypervisor b\n"), Some(true));
        assert_eq!(running_on_vm("processor : 0\n"), None);
        assert_eq!(first_block("\n\n"), None);
    }

    #[test]
    fn vendors() {
        assert_eq!(x86_vendor(INTEL), Ok(Vendor::Intel));
        assert_eq!(x86_vendor("vendor_id : AuthenticAMD\n"), Ok(Vendor::Amd));
        assert_eq!(x86_vendor("vendor_id : HygonGenuine\n"), Ok(Vendor::Hygon));
        assert!(
            x86_vendor("vendor_id : CentaurHauls\n")
                .unwrap_err()
                .contains("\"CentaurHauls\"")
        );
        assert_eq!(
            vendor_and_model(INTEL, "amd64").unwrap(),
            ("GenuineIntel".to_string(), "Intel(R) Xeon(R)".to_string())
        );
        assert!(
            vendor_and_model("vendor_id : x\n", "amd64")
                .unwrap_err()
                .contains("model")
        );
        assert_eq!(
            vendor_and_model("CPU implementer\t: 0x41\nCPU architecture: 8\n", "arm64").unwrap(),
            ("ARM Limited".to_string(), "v8".to_string())
        );
        assert_eq!(
            vendor_and_model("vendor_id : IBM/S390\nprocessor 0: version = FF,  identification = 0D1E38,  machine = 8561\n", "s390x").unwrap(),
            ("IBM/S390".to_string(), "8561".to_string())
        );
    }

    #[test]
    fn power_generation_reads_all_digits() {
        assert_eq!(
            power_generation("cpu\t\t: POWER9 (architected), altivec supported\n"),
            Some(9)
        );
        assert_eq!(
            power_generation("cpu\t\t: POWER10 (architected)\n"),
            Some(10)
        );
        assert_eq!(
            power_generation("model : IBM POWERPC, cpu : POWER8E (raw)\n"),
            Some(8)
        );
        assert_eq!(power_generation("cpu : PPC970\n"), None);
    }

    proptest::proptest! {
        #[test]
        fn parsers_never_panic(s in "(?s).{0,400}") {
            let _ = first_block(&s);
            let _ = flags(&s, "flags");
            let _ = running_on_vm(&s);
            let _ = x86_vendor(&s);
            let _ = power_generation(&s);
            for arch in ["amd64", "arm64", "ppc64le", "s390x"] {
                let _ = vendor_and_model(&s, arch);
            }
        }

        #[test]
        fn contains_word_finds_inserted_words(
            a in "[a-z0-9_ ]{0,30}", w in "[a-z][a-z0-9_]{0,8}", b in "[a-z0-9_ ]{0,30}"
        ) {
            let text = format!("{a} {w} {b}");
            proptest::prop_assert!(contains_word(&text, &w));
            let glued = format!("x{w}x");
            proptest::prop_assert!(!contains_word(&glued, &w));
        }
    }

    #[test]
    fn ppc64le_vendor_is_empty_and_model_is_the_last_model_line() {
        let text = "processor\t: 0\ncpu\t\t: POWER9 (architected), altivec supported\n\nprocessor\t: 1\n\ntimebase\t: 512000000\nplatform\t: pSeries\nmodel\t\t: IBM pSeries (emulated by qemu)\nmachine\t\t: CHRP IBM pSeries\n";
        assert_eq!(
            vendor_and_model(text, "ppc64le").unwrap(),
            (String::new(), "IBM pSeries (emulated by qemu)".to_string())
        );
        assert_eq!(
            vendor_and_model("", "ppc64le").unwrap(),
            (String::new(), String::new())
        );
    }
}
