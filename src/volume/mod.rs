//! Direct-assigned volume records under `/run/kata-containers/shared/direct-volumes`
//! (spec §6.4, real-peers §2), for `kata-runtime direct-volume`.
//!
//! The layout is read by the shims and written by CSI drivers themselves, so it is kept
//! exactly: one directory per volume path, named by the URL-safe base64 (with `=` padding)
//! of the path, mode 0700, holding `mountInfo.json` (mode 0600, the caller's JSON bytes) and
//! an empty file named after each sandbox that mounted the volume (written by the Go shim).

mod mount_info;

use std::fs::{self, DirBuilder, File, OpenOptions};
use std::io::{self, Write};
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

use base64::Engine as _;

pub use mount_info::{MountInfo, MountInfoError, parse_mount_info};

use crate::errors::op_path;
use crate::paths::{self, HostRoot};

/// The record file inside a volume directory.
pub const MOUNT_INFO_FILE: &str = "mountInfo.json";

/// The longest file name Linux file systems accept (NAME_MAX).
pub const NAME_MAX: usize = 255;

/// How often an add or remove retries when a concurrent remove or add changed the directory
/// under it. Each retry means another process made progress, so this is never reached in
/// practice; it only bounds a pathological loop.
const RACE_RETRIES: usize = 1000;

/// The directory name of a volume path: URL-safe base64 with `=` padding (Go
/// `base64.URLEncoding`), no normalisation of the path.
pub fn encode_volume_path(volume_path: &str) -> String {
    base64::engine::general_purpose::URL_SAFE.encode(volume_path.as_bytes())
}

/// The volume path a directory name stands for, if it is one.
pub fn decode_volume_name(name: &str) -> Option<String> {
    let bytes = base64::engine::general_purpose::URL_SAFE
        .decode(name.as_bytes())
        .ok()?;
    String::from_utf8(bytes).ok()
}

#[derive(Debug, thiserror::Error)]
pub enum VolumeError {
    // spec Q41: an empty path names the direct-volumes root itself.
    #[error(
        "the volume path is empty: give --volume-path with the path the volume is published to (an empty path would name the whole {} directory)",
        paths::DIRECT_VOLUMES
    )]
    EmptyPath,
    #[error(
        "volume path {path:?} is {path_len} bytes; its directory name under {} would be {name_len} bytes, over the file-name limit of {NAME_MAX} bytes (volume paths of at most 189 bytes fit; see kata-containers issue 10284)",
        paths::DIRECT_VOLUMES
    )]
    NameTooLong {
        path: String,
        path_len: usize,
        name_len: usize,
    },
    #[error(
        "invalid --mount-info: {0}; expected a JSON object such as {{\"volume-type\":\"block\",\"device\":\"/dev/sdb\",\"fstype\":\"ext4\"}}"
    )]
    InvalidMountInfo(MountInfoError),
    #[error("{} should be a directory", .0.display())]
    NotADirectory(PathBuf),
    #[error("{message}")]
    Io { message: String, cause: io::Error },
    #[error(
        "volume {volume_path:?} has not been added: {} does not exist (run `kata-runtime direct-volume add` first)",
        .dir.display()
    )]
    NotAdded { volume_path: String, dir: PathBuf },
    #[error(
        "no sandbox found for {volume_path} (no sandbox has mounted the volume yet; the Go shim records one in {} when a container starts with it)",
        .dir.display()
    )]
    NoSandbox { volume_path: String, dir: PathBuf },
    #[error("invalid {}: {cause}", .file.display())]
    BadRecord {
        file: PathBuf,
        cause: MountInfoError,
    },
    #[error("{} has no \"device\"; the volume's device is needed to ask the shim", .0.display())]
    NoDevice(PathBuf),
}

impl VolumeError {
    fn io(op: &str, shown: &Path, cause: io::Error) -> Self {
        VolumeError::Io {
            message: op_path(op, shown, &cause),
            cause,
        }
    }
}

/// What `stats` and `resize` need from a volume's directory.
#[derive(Debug, Clone, PartialEq)]
pub struct VolumeRecord {
    pub sandbox_id: String,
    pub mount_info: MountInfo,
}

/// The direct-volumes root on this host.
#[derive(Debug, Clone)]
pub struct VolumeStore {
    /// On disk (under `KATA_HOST_ROOT`).
    root: PathBuf,
}

impl VolumeStore {
    pub fn new(host: &HostRoot) -> Self {
        Self {
            root: host.join(paths::DIRECT_VOLUMES),
        }
    }

    /// The host path of a volume's directory (for messages).
    fn shown_dir(name: &str) -> PathBuf {
        Path::new(paths::DIRECT_VOLUMES).join(name)
    }

    /// Checks the volume path and returns its directory name.
    fn name_for(volume_path: &str) -> Result<String, VolumeError> {
        if volume_path.is_empty() {
            return Err(VolumeError::EmptyPath);
        }
        let name = encode_volume_path(volume_path);
        if name.len() > NAME_MAX {
            // Upstream issue 10284: Go let mkdir fail with a bare ENAMETOOLONG.
            return Err(VolumeError::NameTooLong {
                path: volume_path.to_string(),
                path_len: volume_path.len(),
                name_len: name.len(),
            });
        }
        Ok(name)
    }

    /// `direct-volume add`: validates `mount_info` first (spec Q40), then atomically
    /// replaces the volume's `mountInfo.json` with exactly those bytes.
    pub fn add(&self, volume_path: &str, mount_info: &str) -> Result<(), VolumeError> {
        let name = Self::name_for(volume_path)?;
        parse_mount_info(mount_info.as_bytes()).map_err(VolumeError::InvalidMountInfo)?;
        DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(&self.root)
            .map_err(|e| VolumeError::io("mkdir", Path::new(paths::DIRECT_VOLUMES), e))?;
        let dir = self.root.join(&name);
        let shown = Self::shown_dir(&name);
        let mut last = None;
        for _ in 0..RACE_RETRIES {
            match self.try_add(&dir, &shown, mount_info.as_bytes()) {
                Ok(()) => return Ok(()),
                // A concurrent remove took the directory away under us; start again.
                Err(Attempt::Raced(e)) => last = Some(e),
                Err(Attempt::Failed(e)) => return Err(e),
            }
        }
        Err(last.unwrap_or(VolumeError::NotADirectory(shown)))
    }

    fn try_add(&self, dir: &Path, shown: &Path, bytes: &[u8]) -> Result<(), Attempt> {
        let created = match DirBuilder::new().mode(0o700).create(dir) {
            Ok(()) => {
                sync_dir(&self.root);
                true
            }
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {
                // Not followed: a symlink here is refused rather than written through.
                match fs::symlink_metadata(dir) {
                    Ok(m) if m.is_dir() => false,
                    Ok(_) => return Err(Attempt::Failed(VolumeError::NotADirectory(shown.into()))),
                    Err(e) => return Err(Attempt::classify(VolumeError::io("lstat", shown, e))),
                }
            }
            Err(e) => return Err(Attempt::Failed(VolumeError::io("mkdir", shown, e))),
        };
        let result = write_atomically(dir, shown, bytes);
        if result.is_err() && created {
            // A failed add leaves nothing behind; rmdir only succeeds while it is empty, so a
            // concurrent add's file is never lost.
            let _ = fs::remove_dir(dir);
        }
        result
    }

    /// `direct-volume remove`: deletes that volume's directory; a missing one is fine.
    pub fn remove(&self, volume_path: &str) -> Result<(), VolumeError> {
        let name = match Self::name_for(volume_path) {
            // Such a directory cannot exist, so there is nothing to remove.
            Err(VolumeError::NameTooLong { .. }) => return Ok(()),
            other => other?,
        };
        let dir = self.root.join(&name);
        let shown = Self::shown_dir(&name);
        for _ in 0..RACE_RETRIES {
            match fs::remove_dir_all(&dir) {
                Ok(()) => {
                    sync_dir(&self.root);
                    return Ok(());
                }
                // An entry vanished or appeared while we were deleting (a concurrent add or
                // remove); look again.
                Err(e)
                    if e.kind() == io::ErrorKind::NotFound
                        || e.raw_os_error() == Some(libc::ENOTEMPTY)
                        || e.raw_os_error() == Some(libc::EEXIST) =>
                {
                    if fs::symlink_metadata(&dir).is_err() {
                        return Ok(());
                    }
                }
                Err(e) => return Err(VolumeError::io("remove", &shown, e)),
            }
        }
        Err(VolumeError::io(
            "remove",
            &shown,
            io::Error::from_raw_os_error(libc::ENOTEMPTY),
        ))
    }

    /// The sandbox using the volume and its mount info, for `stats` and `resize`.
    pub fn lookup(&self, volume_path: &str) -> Result<VolumeRecord, VolumeError> {
        let name = Self::name_for(volume_path)?;
        let dir = self.root.join(&name);
        let shown = Self::shown_dir(&name);
        let entries = match fs::read_dir(&dir) {
            Ok(e) => e,
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                return Err(VolumeError::NotAdded {
                    volume_path: volume_path.to_string(),
                    dir: shown,
                });
            }
            Err(e) => return Err(VolumeError::io("open", &shown, e)),
        };
        let mut names: Vec<String> = Vec::new();
        for entry in entries {
            let entry = entry.map_err(|e| VolumeError::io("readdirent", &shown, e))?;
            if let Ok(n) = entry.file_name().into_string() {
                names.push(n);
            }
        }
        // Go took the first name in sorted order other than mountInfo.json; only names that
        // are sandbox IDs count here (spec Q42), so temp files and strays are skipped.
        names.sort();
        let sandbox_id = names
            .into_iter()
            .find(|n| n != MOUNT_INFO_FILE && crate::shim::is_valid_sandbox_id(n))
            .ok_or_else(|| VolumeError::NoSandbox {
                volume_path: volume_path.to_string(),
                dir: shown.clone(),
            })?;
        let file = dir.join(MOUNT_INFO_FILE);
        let shown_file = shown.join(MOUNT_INFO_FILE);
        let bytes = fs::read(&file).map_err(|e| VolumeError::io("open", &shown_file, e))?;
        let mount_info = parse_mount_info(&bytes).map_err(|cause| VolumeError::BadRecord {
            file: shown_file.clone(),
            cause,
        })?;
        if mount_info.device.is_empty() {
            return Err(VolumeError::NoDevice(shown_file));
        }
        Ok(VolumeRecord {
            sandbox_id,
            mount_info,
        })
    }
}

/// Why one add attempt failed: a race worth retrying, or a real failure.
enum Attempt {
    Raced(VolumeError),
    Failed(VolumeError),
}

impl Attempt {
    fn classify(e: VolumeError) -> Self {
        match &e {
            VolumeError::Io { cause, .. } if cause.kind() == io::ErrorKind::NotFound => {
                Attempt::Raced(e)
            }
            _ => Attempt::Failed(e),
        }
    }
}

/// Writes `bytes` to `dir/mountInfo.json` so that a reader sees the old file, the new file or
/// none, never a part: temp file in the same directory, fsync, rename, fsync the directory.
fn write_atomically(dir: &Path, shown: &Path, bytes: &[u8]) -> Result<(), Attempt> {
    let (tmp, mut file) = create_temp(dir, shown)?;
    let written = file
        .write_all(bytes)
        .and_then(|()| file.sync_all())
        .map_err(|e| VolumeError::io("write", &shown.join(MOUNT_INFO_FILE), e));
    drop(file);
    if let Err(e) = written {
        let _ = fs::remove_file(&tmp);
        return Err(Attempt::classify(e));
    }
    if let Err(e) = fs::rename(&tmp, dir.join(MOUNT_INFO_FILE)) {
        let _ = fs::remove_file(&tmp);
        return Err(Attempt::classify(VolumeError::io(
            "rename",
            &shown.join(MOUNT_INFO_FILE),
            e,
        )));
    }
    sync_dir(dir);
    Ok(())
}

fn create_temp(dir: &Path, shown: &Path) -> Result<(PathBuf, File), Attempt> {
    let pid = std::process::id();
    let seed = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.subsec_nanos())
        .unwrap_or(0);
    for n in 0..100u32 {
        // A leading dot keeps the temp name from ever looking like a sandbox ID (spec Q42).
        let tmp = dir.join(format!(".{MOUNT_INFO_FILE}.{pid}.{seed:x}.{n}.tmp"));
        match OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&tmp)
        {
            Ok(f) => return Ok((tmp, f)),
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => continue,
            Err(e) => {
                return Err(Attempt::classify(VolumeError::io(
                    "open",
                    &shown.join(MOUNT_INFO_FILE),
                    e,
                )));
            }
        }
    }
    Err(Attempt::Failed(VolumeError::io(
        "open",
        &shown.join(MOUNT_INFO_FILE),
        io::Error::from_raw_os_error(libc::EEXIST),
    )))
}

/// Makes a directory's entries durable. Best effort: the rename already happened, and a
/// directory removed meanwhile by a concurrent `remove` has nothing left to sync.
fn sync_dir(dir: &Path) {
    if let Ok(d) = File::open(dir) {
        let _ = d.sync_all();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn known_encodings() {
        for (path, name) in [
            ("/bad", "L2JhZA=="),
            ("/a/b?c", "L2EvYj9j"),
            ("/a/b/c", "L2EvYi9j"),
            ("../../etc/passwd", "Li4vLi4vZXRjL3Bhc3N3ZA=="),
            ("abcdddd", "YWJjZGRkZA=="),
            (
                "/kubelet/kata-test-vol-001/volume001",
                "L2t1YmVsZXQva2F0YS10ZXN0LXZvbC0wMDEvdm9sdW1lMDAx",
            ),
        ] {
            assert_eq!(encode_volume_path(path), name, "{path}");
            assert_eq!(decode_volume_name(name).as_deref(), Some(path));
        }
        let csi = "/var/lib/kubelet/pods/8c3d29ad-84b8-45f0-9fcc-8e16778cb3cb/volumes/kubernetes.io~csi/pvc-a950ed68-622c-4ec4-81fa-506f16de2196/mount";
        let name = encode_volume_path(csi);
        assert_eq!(name.len(), 176);
        assert!(name.contains('-') && name.ends_with('='), "{name}");
    }

    #[test]
    fn name_limit_is_189_bytes_of_path() {
        assert!(VolumeStore::name_for(&"a".repeat(189)).is_ok());
        let err = VolumeStore::name_for(&"a".repeat(190)).unwrap_err();
        assert!(matches!(
            err,
            VolumeError::NameTooLong {
                path_len: 190,
                name_len: 256,
                ..
            }
        ));
        assert!(matches!(
            VolumeStore::name_for(""),
            Err(VolumeError::EmptyPath)
        ));
    }
}
