//! The `mountInfo.json` schema, read the way the Go shim reads it (real-peers §2.2): keys
//! matched case-insensitively, unknown keys ignored, `null` members leave the default. Only
//! used to validate and to read `device`; the file keeps the caller's bytes.

use std::collections::BTreeMap;
use std::fmt;

use serde::de::{self, Deserialize, Deserializer, IgnoredAny, MapAccess, Visitor};

/// The fields the shims read from `mountInfo.json`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct MountInfo {
    pub volume_type: String,
    pub device: String,
    pub fstype: String,
    pub metadata: BTreeMap<String, String>,
    pub options: Vec<String>,
}

/// Why a mount-info text is not acceptable.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct MountInfoError(String);

/// Parses mount-info JSON. The document must be a JSON object (spec Q40: Go also took
/// `null`); each known member must have the type the shim expects.
pub fn parse_mount_info(bytes: &[u8]) -> Result<MountInfo, MountInfoError> {
    serde_json::from_slice::<MountInfo>(bytes).map_err(|e| MountInfoError(e.to_string()))
}

#[derive(Clone, Copy)]
enum Field {
    VolumeType,
    Device,
    Fstype,
    Metadata,
    Options,
    Other,
}

/// Go's encoding/json compares member names with its field names under case folding. For
/// these five names that is ASCII case-insensitivity plus `ſ` (U+017F) folding to `s`.
fn field_of(key: &str) -> Field {
    let folded: String = key
        .chars()
        .map(|c| match c {
            '\u{017f}' => 's',
            c => c.to_ascii_lowercase(),
        })
        .collect();
    match folded.as_str() {
        "volume-type" => Field::VolumeType,
        "device" => Field::Device,
        "fstype" => Field::Fstype,
        "metadata" => Field::Metadata,
        "options" => Field::Options,
        _ => Field::Other,
    }
}

impl<'de> Deserialize<'de> for MountInfo {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_map(MountInfoVisitor)
    }
}

struct MountInfoVisitor;

impl<'de> Visitor<'de> for MountInfoVisitor {
    type Value = MountInfo;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a JSON object")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<MountInfo, A::Error> {
        let mut mi = MountInfo::default();
        // Every occurrence of a member is checked, as Go decodes each one; the last wins.
        while let Some(key) = map.next_key::<String>()? {
            match field_of(&key) {
                Field::VolumeType => set(
                    &mut mi.volume_type,
                    map.next_value()
                        .map_err(|e| in_member::<A>("volume-type", e))?,
                ),
                Field::Device => set(
                    &mut mi.device,
                    map.next_value().map_err(|e| in_member::<A>("device", e))?,
                ),
                Field::Fstype => set(
                    &mut mi.fstype,
                    map.next_value().map_err(|e| in_member::<A>("fstype", e))?,
                ),
                Field::Metadata => {
                    let m: Option<BTreeMap<String, Option<String>>> = map
                        .next_value()
                        .map_err(|e| in_member::<A>("metadata", e))?;
                    // Go decodes into the existing map, so repeated members merge.
                    for (k, v) in m.into_iter().flatten() {
                        mi.metadata.insert(k, v.unwrap_or_default());
                    }
                }
                Field::Options => {
                    let o: Option<Vec<Option<String>>> =
                        map.next_value().map_err(|e| in_member::<A>("options", e))?;
                    if let Some(o) = o {
                        mi.options = o.into_iter().map(Option::unwrap_or_default).collect();
                    }
                }
                Field::Other => {
                    map.next_value::<IgnoredAny>()?;
                }
            }
        }
        Ok(mi)
    }
}

fn set(slot: &mut String, v: Option<String>) {
    if let Some(v) = v {
        *slot = v;
    }
}

fn in_member<'de, A: MapAccess<'de>>(member: &str, e: A::Error) -> A::Error {
    de::Error::custom(format!("member \"{member}\": {e}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn go_style_keys_are_matched_case_insensitively() {
        // The kata tests-lineage script's spelling (real-peers §2.2).
        let mi = parse_mount_info(
            br#"{"Device": "/dev/loop0", "FSTYPE": "ext4", "VolumeType": "block"}"#,
        )
        .unwrap();
        assert_eq!(mi.device, "/dev/loop0");
        assert_eq!(mi.fstype, "ext4");
        // `VolumeType` lacks the hyphen, so it is an unknown key for Go as well.
        assert_eq!(mi.volume_type, "");
        let mi =
            parse_mount_info("{\"\u{017f}ource\":1,\"f\u{017f}type\":\"xfs\"}".as_bytes()).unwrap();
        assert_eq!(mi.fstype, "xfs");
    }

    #[test]
    fn full_record() {
        let mi = parse_mount_info(
            br#"{"volume-type":"block","device":"/dev/sdb","fstype":"ext4","metadata":{"fsGroup":"2000","x":null},"options":["ro",null],"extra":[1,{"a":2}]}"#,
        )
        .unwrap();
        assert_eq!(mi.volume_type, "block");
        assert_eq!(mi.metadata.get("fsGroup").map(String::as_str), Some("2000"));
        assert_eq!(mi.metadata.get("x").map(String::as_str), Some(""));
        assert_eq!(mi.options, vec!["ro".to_string(), String::new()]);
    }

    #[test]
    fn refusals() {
        for bad in [
            "null",
            "",
            "[]",
            "\"x\"",
            "1",
            "{",
            "{} x",
            r#"{"device":1}"#,
            r#"{"metadata":"{}"}"#,
            r#"{"metadata":{"a":1}}"#,
            r#"{"options":"ro"}"#,
            r#"{"options":[1]}"#,
            r#"{"device":"/ok","DEVICE":false}"#,
        ] {
            assert!(parse_mount_info(bad.as_bytes()).is_err(), "{bad}");
        }
        for good in [
            "{}",
            " {} \n",
            r#"{"device":null}"#,
            r#"{"unknown":{"deep":[null]}}"#,
        ] {
            assert!(parse_mount_info(good.as_bytes()).is_ok(), "{good}");
        }
    }
}
