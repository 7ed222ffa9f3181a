//! The audit log: one JSON object per line for logins, token creation and revocation, policy
//! changes and deletes. Never contains a secret.

use std::fs::{File, OpenOptions};
use std::io::Write;
use std::path::Path;
use std::sync::Mutex;

use serde::Serialize;

/// Appends audit events to a file.
pub struct AuditLog {
    file: Mutex<File>,
}

#[derive(Serialize)]
struct Line<'a, T: Serialize> {
    time: i64,
    event: &'a str,
    actor: &'a str,
    #[serde(flatten)]
    details: T,
}

impl AuditLog {
    /// Opens (creating) the log at `path` for appending.
    pub fn open(path: &Path) -> std::io::Result<AuditLog> {
        let file = OpenOptions::new().create(true).append(true).open(path)?;
        Ok(AuditLog {
            file: Mutex::new(file),
        })
    }

    /// Records `event` by `actor` (a login or address) with structured `details`.
    pub fn record(&self, event: &str, actor: &str, details: impl Serialize) {
        let line = Line {
            time: crate::directory::now(),
            event,
            actor,
            details,
        };
        let Ok(mut text) = serde_json::to_string(&line) else {
            return;
        };
        text.push('\n');
        let mut file = self.file.lock().unwrap_or_else(|e| e.into_inner());
        if let Err(e) = file.write_all(text.as_bytes()) {
            tracing::warn!(error = %e, "could not write the audit log");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn events_are_json_lines() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("audit.log");
        let log = AuditLog::open(&path).unwrap();
        log.record(
            "token.create",
            "ns/admin",
            serde_json::json!({"user": "ns/jdoe"}),
        );
        log.record("login.failure", "127.0.0.1", serde_json::json!({}));
        let text = std::fs::read_to_string(path).unwrap();
        let lines: Vec<serde_json::Value> = text
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect();
        assert_eq!(lines.len(), 2);
        assert_eq!(lines[0]["event"], "token.create");
        assert_eq!(lines[0]["user"], "ns/jdoe");
        assert_eq!(lines[1]["actor"], "127.0.0.1");
    }
}
