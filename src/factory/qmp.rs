//! A small QMP (QEMU Machine Protocol) client over a Unix socket: the greeting and
//! `qmp_capabilities` handshake that tells us a QEMU is up, and the few commands the
//! factory needs (`stop`, migration of the device state for the template, `quit`).

use std::path::{Path, PathBuf};
use std::time::Duration;

use serde_json::{Value, json};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::UnixStream;
use tokio::net::unix::{OwnedReadHalf, OwnedWriteHalf};

use crate::errors::os_text;

/// How long one QMP command may take before we call the QEMU hung.
pub const COMMAND_TIMEOUT: Duration = Duration::from_secs(10);

#[derive(Debug, thiserror::Error)]
pub enum QmpError {
    #[error("dial unix {}: connect: {}", .path.display(), os_text(.source))]
    Connect {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("QMP socket {}: {}", .path.display(), os_text(.source))]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("QMP socket {}: QEMU closed the connection", .path.display())]
    Closed { path: PathBuf },
    #[error("QMP socket {}: no answer to {what} within {}s", .path.display(), .after.as_secs())]
    Timeout {
        path: PathBuf,
        what: String,
        after: Duration,
    },
    #[error("QMP socket {}: unexpected message {line:?}", .path.display())]
    Protocol { path: PathBuf, line: String },
    #[error("QMP socket {}: {command} failed: {class}: {desc}", .path.display())]
    Command {
        path: PathBuf,
        command: String,
        class: String,
        desc: String,
    },
}

/// A connected QMP session, past the capabilities negotiation.
pub struct Qmp {
    path: PathBuf,
    reader: BufReader<OwnedReadHalf>,
    writer: OwnedWriteHalf,
    /// The QEMU version from the greeting, e.g. `7.2.22`.
    pub version: String,
}

impl Qmp {
    /// Connects to `path`, reads the greeting and negotiates capabilities.
    pub async fn connect(path: &Path) -> Result<Qmp, QmpError> {
        let stream = UnixStream::connect(path)
            .await
            .map_err(|source| QmpError::Connect {
                path: path.to_path_buf(),
                source,
            })?;
        Self::handshake(path, stream).await
    }

    /// Runs the greeting and `qmp_capabilities` on an already connected stream.
    pub async fn handshake(path: &Path, stream: UnixStream) -> Result<Qmp, QmpError> {
        let (r, w) = stream.into_split();
        let mut qmp = Qmp {
            path: path.to_path_buf(),
            reader: BufReader::new(r),
            writer: w,
            version: String::new(),
        };
        let greeting = qmp.read_message("the QMP greeting").await?;
        let Some(v) = greeting.get("QMP") else {
            return Err(QmpError::Protocol {
                path: qmp.path.clone(),
                line: greeting.to_string(),
            });
        };
        let ver = &v["version"]["qemu"];
        qmp.version = format!(
            "{}.{}.{}",
            ver["major"].as_u64().unwrap_or(0),
            ver["minor"].as_u64().unwrap_or(0),
            ver["micro"].as_u64().unwrap_or(0)
        );
        qmp.execute("qmp_capabilities", None).await?;
        Ok(qmp)
    }

    /// Runs one command and returns its `return` value. Asynchronous events that arrive
    /// before the answer are skipped.
    pub async fn execute(&mut self, command: &str, args: Option<Value>) -> Result<Value, QmpError> {
        let mut msg = json!({ "execute": command });
        if let Some(a) = args {
            msg["arguments"] = a;
        }
        let mut line = msg.to_string();
        line.push('\n');
        self.writer
            .write_all(line.as_bytes())
            .await
            .map_err(|source| QmpError::Io {
                path: self.path.clone(),
                source,
            })?;
        loop {
            let reply = self.read_message(command).await?;
            if reply.get("event").is_some() {
                continue;
            }
            if let Some(r) = reply.get("return") {
                return Ok(r.clone());
            }
            if let Some(e) = reply.get("error") {
                return Err(QmpError::Command {
                    path: self.path.clone(),
                    command: command.to_string(),
                    class: e["class"].as_str().unwrap_or("GenericError").to_string(),
                    desc: e["desc"].as_str().unwrap_or("").to_string(),
                });
            }
            return Err(QmpError::Protocol {
                path: self.path.clone(),
                line: reply.to_string(),
            });
        }
    }

    async fn read_message(&mut self, what: &str) -> Result<Value, QmpError> {
        let mut line = String::new();
        let n = tokio::time::timeout(COMMAND_TIMEOUT, self.reader.read_line(&mut line))
            .await
            .map_err(|_| QmpError::Timeout {
                path: self.path.clone(),
                what: what.to_string(),
                after: COMMAND_TIMEOUT,
            })?
            .map_err(|source| QmpError::Io {
                path: self.path.clone(),
                source,
            })?;
        if n == 0 {
            return Err(QmpError::Closed {
                path: self.path.clone(),
            });
        }
        serde_json::from_str(line.trim_end()).map_err(|_| QmpError::Protocol {
            path: self.path.clone(),
            line: line.trim_end().to_string(),
        })
    }

    /// Pauses the guest's vCPUs.
    pub async fn stop(&mut self) -> Result<(), QmpError> {
        self.execute("stop", None).await.map(drop)
    }

    /// Asks QEMU to exit. QEMU may close the socket before or after answering; both mean
    /// it is on its way out.
    pub async fn quit(&mut self) -> Result<(), QmpError> {
        match self.execute("quit", None).await {
            Ok(_) | Err(QmpError::Closed { .. }) => Ok(()),
            Err(QmpError::Io { source, .. })
                if source.kind() == std::io::ErrorKind::ConnectionReset =>
            {
                Ok(())
            }
            Err(e) => Err(e),
        }
    }

    /// Saves the device state (not the RAM, which lives in a shared file: `x-ignore-shared`)
    /// into `state`, and waits until the migration completes.
    pub async fn save_device_state(
        &mut self,
        state: &Path,
        limit: Duration,
    ) -> Result<(), QmpError> {
        self.execute(
            "migrate-set-capabilities",
            Some(json!({ "capabilities": [ { "capability": "x-ignore-shared", "state": true } ] })),
        )
        .await?;
        let uri = format!("exec:cat>{}", shell_quote(&state.to_string_lossy()));
        self.execute("migrate", Some(json!({ "uri": uri }))).await?;
        let start = tokio::time::Instant::now();
        loop {
            let st = self.execute("query-migrate", None).await?;
            match st["status"].as_str().unwrap_or("") {
                "completed" => return Ok(()),
                "failed" | "cancelled" => {
                    return Err(QmpError::Command {
                        path: self.path.clone(),
                        command: "migrate".into(),
                        class: "MigrationFailed".into(),
                        desc: st["error-desc"]
                            .as_str()
                            .unwrap_or("migration failed")
                            .to_string(),
                    });
                }
                _ => {}
            }
            if start.elapsed() > limit {
                return Err(QmpError::Timeout {
                    path: self.path.clone(),
                    what: "the device state migration".into(),
                    after: limit,
                });
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}

/// Quotes `s` for `/bin/sh` (QEMU runs `exec:` migration URIs through the shell).
pub fn shell_quote(s: &str) -> String {
    format!("'{}'", s.replace('\'', r"'\''"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::AsyncReadExt;
    use tokio::net::UnixListener;

    #[test]
    fn shell_quote_survives_quotes_and_spaces() {
        assert_eq!(shell_quote("/a b/c"), "'/a b/c'");
        assert_eq!(shell_quote("/a'b"), r"'/a'\''b'");
    }

    /// A fake QEMU monitor: greeting, events mixed into the answers, an error reply.
    #[test]
    fn handshake_skips_events_and_reports_errors() {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        rt.block_on(async {
            let dir = tempfile::tempdir().unwrap();
            let sock = dir.path().join("qmp.sock");
            let listener = UnixListener::bind(&sock).unwrap();
            let server = tokio::spawn(async move {
                let (mut s, _) = listener.accept().await.unwrap();
                s.write_all(b"{\"QMP\": {\"version\": {\"qemu\": {\"micro\": 1, \"minor\": 2, \"major\": 7}}, \"capabilities\": []}}\n").await.unwrap();
                let mut buf = vec![0u8; 4096];
                let n = s.read(&mut buf).await.unwrap();
                assert!(String::from_utf8_lossy(&buf[..n]).contains("qmp_capabilities"));
                s.write_all(b"{\"event\": \"RESUME\"}\n{\"return\": {}}\n").await.unwrap();
                let n = s.read(&mut buf).await.unwrap();
                assert!(String::from_utf8_lossy(&buf[..n]).contains("\"stop\""));
                s.write_all(b"{\"error\": {\"class\": \"GenericError\", \"desc\": \"nope\"}}\n").await.unwrap();
            });
            let mut q = Qmp::connect(&sock).await.unwrap();
            assert_eq!(q.version, "7.2.1");
            let e = q.stop().await.unwrap_err();
            assert_eq!(
                e.to_string(),
                format!("QMP socket {}: stop failed: GenericError: nope", sock.display())
            );
            server.await.unwrap();
            let e = Qmp::connect(&dir.path().join("missing")).await.err().unwrap();
            assert!(e.to_string().ends_with("connect: no such file or directory"), "{e}");
        });
    }
}
