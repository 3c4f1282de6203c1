//! `kata-runtime direct-volume add|remove|stats|resize` (spec §6.4): the on-disk records in
//! [`crate::volume`], and the shim requests for stats and resize.

use std::io::Write;

use bytes::Bytes;

use crate::cli::DirectVolumeCommand;
use crate::context::{Context, block_on};
use crate::shim::{self, Dialect, urls};
use crate::volume::VolumeStore;

pub fn run(ctx: &Context, cmd: &DirectVolumeCommand) -> anyhow::Result<()> {
    let store = VolumeStore::new(&ctx.host);
    match cmd {
        DirectVolumeCommand::Add(a) => {
            let Some(info) = a.mount_info.as_deref() else {
                anyhow::bail!(
                    "--mount-info is required: the JSON object describing the volume, e.g. {{\"volume-type\":\"block\",\"device\":\"/dev/sdb\",\"fstype\":\"ext4\"}}"
                );
            };
            store.add(a.volume_path.as_deref().unwrap_or(""), info)?;
            Ok(())
        }
        DirectVolumeCommand::Remove(a) => {
            store.remove(a.volume_path.as_deref().unwrap_or(""))?;
            Ok(())
        }
        DirectVolumeCommand::Stats(a) => {
            let record = store.lookup(a.volume_path.as_deref().unwrap_or(""))?;
            let sandbox = shim::resolve_exact(&ctx.host, &record.sandbox_id)?;
            let url = format!(
                "{}?path={}",
                urls::DIRECT_VOLUME_STATS,
                shim::stats_query_value(&record.mount_info.device)
            );
            let timeout = shim::timeout_from_env();
            let body = block_on(async {
                match sandbox.dialect {
                    Dialect::GoShim => shim::get(&sandbox, &url, timeout).await,
                    // real-peers §1.3: runtime-rs routes only POST for stats.
                    Dialect::RuntimeRs => {
                        shim::post(&sandbox, &url, "application/json", Bytes::new(), timeout).await
                    }
                }
            })??;
            let mut out = ctx.stdout();
            out.write_all(&body)?;
            out.write_all(b"\n")?;
            out.flush()?;
            Ok(())
        }
        DirectVolumeCommand::Resize(a) => {
            let record = store.lookup(a.volume_path.as_deref().unwrap_or(""))?;
            let sandbox = shim::resolve_exact(&ctx.host, &record.sandbox_id)?;
            let body = resize_body(sandbox.dialect, &record.mount_info.device, a.size);
            let timeout = shim::timeout_from_env();
            block_on(shim::post(
                &sandbox,
                urls::DIRECT_VOLUME_RESIZE,
                "application/json",
                Bytes::from(body),
                timeout,
            ))??;
            Ok(())
        }
    }
}

/// The resize request in each shim's dialect (real-peers §1.5): Go decodes
/// `{"VolumePath","Size"}`, runtime-rs `{"volume_guest_path","size"}`.
pub fn resize_body(dialect: Dialect, device: &str, size: u64) -> String {
    match dialect {
        Dialect::GoShim => format!(
            "{{\"VolumePath\":{},\"Size\":{size}}}",
            crate::output::go_json_string(device)
        ),
        Dialect::RuntimeRs => format!(
            "{{\"volume_guest_path\":{},\"size\":{size}}}",
            crate::output::go_json_string(device)
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn resize_bodies_per_dialect() {
        assert_eq!(
            resize_body(Dialect::GoShim, "/dev/a&b<c>", 8),
            r#"{"VolumePath":"/dev/a\u0026b\u003cc\u003e","Size":8}"#
        );
        assert_eq!(
            resize_body(Dialect::RuntimeRs, "/dev/sdb", 1 << 33),
            r#"{"volume_guest_path":"/dev/sdb","size":8589934592}"#
        );
        assert_eq!(
            crate::output::go_json_string("a\"\\\u{1}\u{2028}"),
            r#""a\"\\\u0001\u2028""#
        );
        let v: serde_json::Value =
            serde_json::from_str(&resize_body(Dialect::GoShim, "x\ty\u{7f}é", u64::MAX)).unwrap();
        assert_eq!(v["VolumePath"], "x\ty\u{7f}é");
        assert_eq!(v["Size"], u64::MAX);
    }
}
