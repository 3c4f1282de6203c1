//! Property tests for the direct-volume records: the directory-name encoding round-trips for
//! any path, and any mount-info text is either refused with nothing written or stored byte
//! for byte.

use std::path::Path;

use kata_runtime::paths::HostRoot;
use kata_runtime::volume::{VolumeStore, decode_volume_name, encode_volume_path, parse_mount_info};
use proptest::prelude::*;

const ROOT: &str = "run/kata-containers/shared/direct-volumes";

proptest! {
    #[test]
    fn any_volume_path_round_trips_through_its_directory_name(path in any::<String>()) {
        let name = encode_volume_path(&path);
        prop_assert_eq!(decode_volume_name(&name), Some(path.clone()));
        prop_assert_eq!(name.len(), path.len().div_ceil(3) * 4);
        prop_assert!(name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_' || b == b'='));
        prop_assert!(!name.contains('/'));
    }
}

/// JSON-ish text: valid documents with members in varied case and type, plus corruptions.
fn mount_info_text() -> impl Strategy<Value = String> {
    let key = prop_oneof![
        Just("volume-type".to_string()),
        Just("Device".to_string()),
        Just("device".to_string()),
        Just("FSTYPE".to_string()),
        Just("metadata".to_string()),
        Just("Options".to_string()),
        Just("VolumeType".to_string()),
        "[a-z-]{0,8}",
    ];
    let leaf = prop_oneof![
        Just("null".to_string()),
        Just("true".to_string()),
        any::<i32>().prop_map(|n| n.to_string()),
        any::<String>().prop_map(|s| serde_json::to_string(&s).unwrap()),
    ];
    let value = leaf.prop_recursive(3, 16, 4, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..4).prop_map(|v| format!("[{}]", v.join(","))),
            prop::collection::vec(("[a-zA-Z]{0,5}", inner), 0..4).prop_map(|v| {
                let members: Vec<String> = v
                    .into_iter()
                    .map(|(k, v)| format!("{}:{v}", serde_json::to_string(&k).unwrap()))
                    .collect();
                format!("{{{}}}", members.join(","))
            }),
        ]
    });
    let object = prop::collection::vec((key, value), 0..5).prop_map(|v| {
        let members: Vec<String> = v
            .into_iter()
            .map(|(k, v)| format!("{}: {v}", serde_json::to_string(&k).unwrap()))
            .collect();
        format!("{{{}}}", members.join(", "))
    });
    prop_oneof![
        4 => object.clone(),
        // Cut or extended documents, and arbitrary text.
        1 => (object.clone(), any::<prop::sample::Index>()).prop_map(|(s, i)| {
            let cut = i.index(s.len() + 1);
            let cut = (0..=cut).rev().find(|&c| s.is_char_boundary(c)).unwrap_or(0);
            s[..cut].to_string()
        }),
        1 => (object, ".{0,3}").prop_map(|(s, tail)| format!("{s}{tail}")),
        1 => any::<String>(),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 512, ..ProptestConfig::default() })]

    #[test]
    fn mount_info_is_refused_with_nothing_written_or_stored_byte_for_byte(text in mount_info_text()) {
        let t = tempfile::tempdir().unwrap();
        let store = VolumeStore::new(&HostRoot::new(t.path()));
        let dir = t.path().join(ROOT).join(encode_volume_path("/v"));
        let valid = parse_mount_info(text.as_bytes()).is_ok();
        match store.add("/v", &text) {
            Ok(()) => {
                prop_assert!(valid);
                prop_assert_eq!(std::fs::read(dir.join("mountInfo.json")).unwrap(), text.as_bytes());
                prop_assert_eq!(list(&dir), vec!["mountInfo.json".to_string()]);
                // What is stored is exactly what the Go shim could decode.
                let v: serde_json::Value = serde_json::from_str(&text).unwrap();
                prop_assert!(v.is_object());
            }
            Err(_) => {
                prop_assert!(!valid);
                prop_assert!(!t.path().join("run").exists());
            }
        }
    }
}

fn list(dir: &Path) -> Vec<String> {
    let mut v: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    v.sort();
    v
}
