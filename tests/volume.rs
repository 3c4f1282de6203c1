//! Binary tests for `direct-volume add|remove`: the exact on-disk layout the shims and CSI
//! drivers read (real-peers §2.1), the refusals (spec Q40, Q41, upstream issue 10284), and
//! many processes adding and removing the same volumes at once.

use std::collections::HashSet;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Output;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

const ROOT: &str = "run/kata-containers/shared/direct-volumes";

fn host() -> tempfile::TempDir {
    tempfile::tempdir().unwrap()
}

fn kata(root: &Path, args: &[&str]) -> Output {
    std::process::Command::new(env!("CARGO_BIN_EXE_kata-runtime"))
        .env("KATA_HOST_ROOT", root)
        .args(args)
        .output()
        .unwrap()
}

fn add(root: &Path, path: &str, info: &str) -> Output {
    kata(
        root,
        &[
            "direct-volume",
            "add",
            "--volume-path",
            path,
            "--mount-info",
            info,
        ],
    )
}

fn remove(root: &Path, path: &str) -> Output {
    kata(root, &["direct-volume", "remove", "--volume-path", path])
}

#[track_caller]
fn assert_silent_success(o: &Output) {
    assert!(
        o.status.success(),
        "exit {:?}: {}",
        o.status.code(),
        String::from_utf8_lossy(&o.stderr)
    );
    assert!(o.stdout.is_empty() && o.stderr.is_empty(), "{o:?}");
}

#[track_caller]
fn assert_fails_with(o: &Output, needle: &str) {
    let err = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(1), "{err}");
    assert!(o.stdout.is_empty());
    assert!(err.contains(needle), "stderr {err:?} lacks {needle:?}");
}

fn vol_dir(root: &Path, name: &str) -> PathBuf {
    root.join(ROOT).join(name)
}

fn entries(dir: &Path) -> Vec<String> {
    let mut v: Vec<String> = std::fs::read_dir(dir)
        .map(|rd| {
            rd.map(|e| e.unwrap().file_name().into_string().unwrap())
                .collect()
        })
        .unwrap_or_default();
    v.sort();
    v
}

fn mode(p: &Path) -> u32 {
    std::fs::metadata(p).unwrap().permissions().mode() & 0o777
}

#[test]
fn add_writes_the_exact_layout() {
    let t = host();
    // Odd spacing, key case and non-ASCII must survive byte for byte.
    let info = "{ \"volume-type\": \"block\",\n  \"Device\":\"/dev/sdb\", \"fstype\":\"ext4\", \"metadata\":{\"fsGroup\":\"2000\",\"note\":\"caf\u{e9}\"}, \"options\":[\"ro\"] }";
    assert_silent_success(&add(t.path(), "/bad", info));
    let dir = vol_dir(t.path(), "L2JhZA==");
    assert_eq!(entries(&t.path().join(ROOT)), ["L2JhZA=="]);
    assert_eq!(entries(&dir), ["mountInfo.json"]);
    assert_eq!(
        std::fs::read(dir.join("mountInfo.json")).unwrap(),
        info.as_bytes()
    );
    assert_eq!(mode(&dir), 0o700);
    assert_eq!(mode(&dir.join("mountInfo.json")), 0o600);

    // The kubelet CSI target: 176 characters with `-` and padding (real-peers §2.1).
    let csi = "/var/lib/kubelet/pods/8c3d29ad-84b8-45f0-9fcc-8e16778cb3cb/volumes/kubernetes.io~csi/pvc-a950ed68-622c-4ec4-81fa-506f16de2196/mount";
    assert_silent_success(&add(t.path(), csi, r#"{"device":"/dev/vdc"}"#));
    let name = "L3Zhci9saWIva3ViZWxldC9wb2RzLzhjM2QyOWFkLTg0YjgtNDVmMC05ZmNjLThlMTY3NzhjYjNjYi92b2x1bWVzL2t1YmVybmV0ZXMuaW9-Y3NpL3B2Yy1hOTUwZWQ2OC02MjJjLTRlYzQtODFmYS01MDZmMTZkZTIxOTYvbW91bnQ=";
    assert_eq!(
        std::fs::read(vol_dir(t.path(), name).join("mountInfo.json")).unwrap(),
        br#"{"device":"/dev/vdc"}"#
    );
    for (path, name) in [
        ("/a/b?c", "L2EvYj9j"),
        ("../../etc/passwd", "Li4vLi4vZXRjL3Bhc3N3ZA=="),
        ("abcdddd", "YWJjZGRkZA=="),
    ] {
        assert_silent_success(&add(t.path(), path, "{}"));
        assert!(
            vol_dir(t.path(), name).join("mountInfo.json").is_file(),
            "{path}"
        );
    }
}

#[test]
fn add_replaces_and_remove_deletes_only_that_volume() {
    let t = host();
    assert_silent_success(&add(t.path(), "/a", r#"{"device":"/dev/one"}"#));
    assert_silent_success(&add(t.path(), "/a/b", r#"{"device":"/dev/two"}"#));
    assert_silent_success(&add(t.path(), "/a", r#"{"device":"/dev/three"}"#));
    let a = vol_dir(t.path(), "L2E=");
    assert_eq!(
        std::fs::read_to_string(a.join("mountInfo.json")).unwrap(),
        r#"{"device":"/dev/three"}"#
    );
    // The shim's sandbox record goes with the volume.
    std::fs::write(a.join("sb-1"), "").unwrap();
    assert_silent_success(&remove(t.path(), "/a"));
    assert!(!a.exists());
    assert_eq!(entries(&t.path().join(ROOT)), ["L2EvYg=="]);
    // Missing is fine, and no root is created.
    assert_silent_success(&remove(t.path(), "/a"));
    let t2 = host();
    assert_silent_success(&remove(t2.path(), "/never"));
    assert!(!t2.path().join(ROOT).exists());
}

#[test]
fn invalid_mount_info_is_refused_before_touching_the_disk() {
    // spec Q40: Go created the directory first and accepted `null`.
    let t = host();
    for bad in [
        "null",
        "",
        "[1]",
        "{",
        "{\"device\":7}",
        "{\"metadata\":\"{}\"}",
        "{} {}",
    ] {
        assert_fails_with(&add(t.path(), "/v", bad), "invalid --mount-info");
        assert!(
            !t.path().join("run").exists(),
            "{bad:?} left something behind"
        );
    }
    // An existing record survives a failed replacement untouched.
    assert_silent_success(&add(t.path(), "/v", r#"{"device":"/dev/ok"}"#));
    assert_fails_with(
        &add(t.path(), "/v", r#"{"options":"ro"}"#),
        "member \"options\"",
    );
    let dir = vol_dir(t.path(), "L3Y=");
    assert_eq!(entries(&dir), ["mountInfo.json"]);
    assert_eq!(
        std::fs::read_to_string(dir.join("mountInfo.json")).unwrap(),
        r#"{"device":"/dev/ok"}"#
    );
    assert_fails_with(
        &kata(t.path(), &["direct-volume", "add", "--volume-path", "/w"]),
        "--mount-info is required",
    );
}

#[test]
fn an_empty_volume_path_is_refused() {
    // spec Q41: Go's remove without a path deleted every direct volume.
    let t = host();
    assert_silent_success(&add(t.path(), "/keep", "{}"));
    for args in [
        &["direct-volume", "remove"][..],
        &["direct-volume", "remove", "--volume-path", ""],
        &["direct-volume", "add", "--mount-info", "{}"],
        &[
            "direct-volume",
            "add",
            "--volume-path=",
            "--mount-info",
            "{}",
        ],
    ] {
        assert_fails_with(&kata(t.path(), args), "the volume path is empty");
    }
    assert_eq!(entries(&t.path().join(ROOT)), ["L2tlZXA="]);
    assert_eq!(entries(&vol_dir(t.path(), "L2tlZXA=")), ["mountInfo.json"]);
}

#[test]
fn a_path_too_long_for_a_directory_name_gets_a_clear_error() {
    // Upstream issue 10284: 190 bytes encode to 256 characters.
    let t = host();
    let ok = format!("/{}", "p".repeat(188));
    assert_silent_success(&add(t.path(), &ok, "{}"));
    let long = format!("/{}", "p".repeat(189));
    assert_fails_with(
        &add(t.path(), &long, "{}"),
        "over the file-name limit of 255 bytes",
    );
    assert_eq!(entries(&t.path().join(ROOT)).len(), 1);
    // Such a volume cannot exist, so removing it succeeds.
    assert_silent_success(&remove(t.path(), &long));
}

#[test]
fn add_refuses_a_non_directory_in_the_volumes_place() {
    let t = host();
    std::fs::create_dir_all(t.path().join(ROOT)).unwrap();
    std::fs::write(vol_dir(t.path(), "L2JhZA=="), "x").unwrap();
    assert_fails_with(
        &add(t.path(), "/bad", "{}"),
        "/run/kata-containers/shared/direct-volumes/L2JhZA== should be a directory",
    );
    // A symlink is not followed either.
    std::os::unix::fs::symlink(t.path(), vol_dir(t.path(), "L2E=")).unwrap();
    assert_fails_with(&add(t.path(), "/a", "{}"), "should be a directory");
    assert!(!t.path().join("mountInfo.json").exists());
}

/// Many processes add and remove the same two volumes while a reader watches: every read
/// sees a whole record or none, and at the end each volume is a complete record or absent,
/// with no temp file left anywhere.
#[test]
fn concurrent_adds_and_removes_leave_a_whole_record_or_nothing() {
    let t = host();
    let root = t.path().to_path_buf();
    let vols = ["/vol/shared", "/vol/other"];
    let pad = "x".repeat(16 * 1024);
    let payloads: Vec<String> = (0..8)
        .map(|i| {
            format!(r#"{{"device":"/dev/sd{i}","fstype":"ext4","metadata":{{"pad":"{pad}"}}}}"#)
        })
        .collect();
    let valid: Arc<HashSet<Vec<u8>>> =
        Arc::new(payloads.iter().map(|p| p.as_bytes().to_vec()).collect());
    let names: Vec<PathBuf> = vols
        .iter()
        .map(|v| vol_dir(&root, &kata_runtime::volume::encode_volume_path(v)))
        .collect();

    let stop = Arc::new(AtomicBool::new(false));
    let reader = {
        let (stop, valid, names) = (stop.clone(), valid.clone(), names.clone());
        std::thread::spawn(move || {
            let mut seen = 0u64;
            while !stop.load(Ordering::Relaxed) {
                for dir in &names {
                    match std::fs::read(dir.join("mountInfo.json")) {
                        Ok(bytes) => {
                            assert!(valid.contains(&bytes), "torn read of {} bytes", bytes.len());
                            seen += 1;
                        }
                        Err(e) => assert_eq!(e.kind(), std::io::ErrorKind::NotFound, "{e}"),
                    }
                }
            }
            seen
        })
    };

    let bin = env!("CARGO_BIN_EXE_kata-runtime");
    for round in 0..3 {
        let mut children = Vec::new();
        for i in 0..48usize {
            let vol = vols[i % 2];
            let mut cmd = std::process::Command::new(bin);
            cmd.env("KATA_HOST_ROOT", &root);
            if (i + round) % 3 == 2 {
                cmd.args(["direct-volume", "remove", "--volume-path", vol]);
            } else {
                cmd.args(["direct-volume", "add", "--volume-path", vol, "--mount-info"])
                    .arg(&payloads[i % payloads.len()]);
            }
            children.push(cmd.stderr(std::process::Stdio::piped()).spawn().unwrap());
        }
        for c in children {
            let o = c.wait_with_output().unwrap();
            assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
        }
        for dir in &names {
            let e = entries(dir);
            if dir.exists() {
                assert_eq!(e, ["mountInfo.json"], "round {round}: {}", dir.display());
                assert!(valid.contains(&std::fs::read(dir.join("mountInfo.json")).unwrap()));
            }
        }
        let mut expect: Vec<String> = names
            .iter()
            .filter(|d| d.exists())
            .map(|d| d.file_name().unwrap().to_string_lossy().into_owned())
            .collect();
        expect.sort();
        assert_eq!(
            entries(&root.join(ROOT)),
            expect,
            "round {round}: stray entries"
        );
    }
    stop.store(true, Ordering::Relaxed);
    reader.join().unwrap();
}
