//! Guest kernel parameters (spec §2.9): parsing the `kernel_params` string and building the
//! full command line, deduplicated by key so a user value replaces a default (Q55).

use serde::Serialize;

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct KernelParam {
    pub key: String,
    pub value: String,
}

impl KernelParam {
    pub fn new(key: &str, value: &str) -> Self {
        Self {
            key: key.to_string(),
            value: value.to_string(),
        }
    }
}

impl std::fmt::Display for KernelParam {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if self.value.is_empty() {
            f.write_str(&self.key)
        } else {
            write!(f, "{}={}", self.key, self.value)
        }
    }
}

/// Splits on white space; each `k=v` splits at the first `=`; a bare `k` has an empty value.
/// An item starting with `=` has an empty key, which the Go tool rejects.
pub fn parse_kernel_params(s: &str) -> Result<Vec<KernelParam>, String> {
    s.split_whitespace()
        .map(|item| {
            let (k, v) = item.split_once('=').unwrap_or((item, ""));
            if k.is_empty() {
                Err("Empty kernel parameter".to_string())
            } else {
                Ok(KernelParam::new(k, v))
            }
        })
        .collect()
}

/// Keys that may legitimately repeat on a kernel command line: the last one does not
/// replace earlier ones.
const REPEATABLE: &[&str] = &["systemd.mask", "console", "modprobe.blacklist"];

/// Appends `extra` to `base`; an extra item whose key is already present replaces the
/// earlier value in place (except keys that may repeat, such as `systemd.mask`).
pub fn merge(base: &mut Vec<KernelParam>, extra: Vec<KernelParam>) {
    for p in extra {
        if !REPEATABLE.contains(&p.key.as_str())
            && let Some(existing) = base.iter_mut().find(|b| b.key == p.key)
        {
            *existing = p;
            continue;
        }
        if !base.contains(&p) {
            base.push(p);
        }
    }
}

pub fn join(params: &[KernelParam]) -> String {
    params
        .iter()
        .map(|p| p.to_string())
        .collect::<Vec<_>>()
        .join(" ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parse_splits_at_first_equals() {
        let p = parse_kernel_params(" a=b=c  flag x= ").unwrap();
        assert_eq!(
            p,
            vec![
                KernelParam::new("a", "b=c"),
                KernelParam::new("flag", ""),
                KernelParam::new("x", "")
            ]
        );
        assert_eq!(
            parse_kernel_params("=v").unwrap_err(),
            "Empty kernel parameter"
        );
    }

    #[test]
    fn merge_replaces_by_key_but_keeps_masks() {
        let mut base = parse_kernel_params(
            "systemd.unit=kata-containers.target systemd.mask=systemd-networkd.service",
        )
        .unwrap();
        merge(
            &mut base,
            parse_kernel_params("systemd.unit=x.target systemd.mask=y foo").unwrap(),
        );
        assert_eq!(
            join(&base),
            "systemd.unit=x.target systemd.mask=systemd-networkd.service systemd.mask=y foo"
        );
    }
}
