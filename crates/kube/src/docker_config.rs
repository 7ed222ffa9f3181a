//! The docker client configuration file (`$DOCKER_CONFIG/config.json`, default
//! `~/.docker/config.json`): read, merge and write registry credentials as `docker login`
//! does, keeping every other setting of the file.

use std::io::Write;
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use serde_json::{Map, Value, json};

/// Why the config file could not be used.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// Reading or writing failed.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The cause.
        source: std::io::Error,
    },
    /// The file is not a JSON object.
    #[error("{path} is not a valid docker config file: {message}")]
    Invalid {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        message: String,
    },
    /// No home directory to default to.
    #[error("cannot locate the docker config: set DOCKER_CONFIG or HOME")]
    NoHome,
}

/// `$DOCKER_CONFIG/config.json`, else `$HOME/.docker/config.json`.
pub fn default_path() -> Result<PathBuf, ConfigError> {
    if let Some(dir) = std::env::var_os("DOCKER_CONFIG").filter(|d| !d.is_empty()) {
        return Ok(PathBuf::from(dir).join("config.json"));
    }
    std::env::var_os("HOME")
        .filter(|h| !h.is_empty())
        .map(|home| PathBuf::from(home).join(".docker").join("config.json"))
        .ok_or(ConfigError::NoHome)
}

/// The `auths` key docker uses for a registry given on the command line: the host (and
/// port) without scheme or path, except Docker Hub's historical URL.
pub fn registry_key(registry: &str) -> String {
    let trimmed = registry.trim();
    if matches!(
        trimmed,
        "docker.io" | "index.docker.io" | "registry-1.docker.io"
    ) || trimmed.starts_with("https://index.docker.io")
    {
        return "https://index.docker.io/v1/".to_owned();
    }
    let without_scheme = trimmed
        .strip_prefix("https://")
        .or_else(|| trimmed.strip_prefix("http://"))
        .unwrap_or(trimmed);
    without_scheme
        .split('/')
        .next()
        .unwrap_or(without_scheme)
        .to_owned()
}

/// A loaded config file.
#[derive(Debug, Clone)]
pub struct DockerConfig {
    path: PathBuf,
    document: Map<String, Value>,
}

impl DockerConfig {
    /// An empty configuration held in memory only (credentials assembled by a program, not
    /// meant to be saved).
    pub fn empty() -> DockerConfig {
        DockerConfig {
            path: PathBuf::new(),
            document: Map::new(),
        }
    }

    /// Reads `path`; a missing file is an empty configuration.
    pub fn load(path: &Path) -> Result<DockerConfig, ConfigError> {
        let document = match std::fs::read(path) {
            Ok(bytes) if bytes.iter().all(u8::is_ascii_whitespace) => Map::new(),
            Ok(bytes) => match serde_json::from_slice::<Value>(&bytes) {
                Ok(Value::Object(map)) => map,
                Ok(_) => {
                    return Err(ConfigError::Invalid {
                        path: path.to_owned(),
                        message: "expected a JSON object".into(),
                    });
                }
                Err(e) => {
                    return Err(ConfigError::Invalid {
                        path: path.to_owned(),
                        message: e.to_string(),
                    });
                }
            },
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Map::new(),
            Err(source) => {
                return Err(ConfigError::Io {
                    path: path.to_owned(),
                    source,
                });
            }
        };
        Ok(DockerConfig {
            path: path.to_owned(),
            document,
        })
    }

    /// Stores credentials for `registry` (an `auth` entry, as `docker login` writes).
    pub fn set_credentials(&mut self, registry: &str, username: &str, password: &str) {
        let auths = self.document.entry("auths").or_insert_with(|| json!({}));
        if !auths.is_object() {
            *auths = json!({});
        }
        auths[registry_key(registry)] =
            json!({"auth": STANDARD.encode(format!("{username}:{password}"))});
    }

    /// Removes the credentials of `registry`; false when there were none.
    pub fn remove_credentials(&mut self, registry: &str) -> bool {
        self.document
            .get_mut("auths")
            .and_then(Value::as_object_mut)
            .and_then(|auths| auths.remove(&registry_key(registry)))
            .is_some()
    }

    /// The username and password stored for `registry`, if any.
    pub fn credentials(&self, registry: &str) -> Option<(String, String)> {
        let entry = self.document.get("auths")?.get(registry_key(registry))?;
        if let Some(auth) = entry
            .get("auth")
            .and_then(Value::as_str)
            .filter(|a| !a.is_empty())
        {
            let decoded = String::from_utf8(STANDARD.decode(auth).ok()?).ok()?;
            let (user, password) = decoded.split_once(':')?;
            return Some((user.to_owned(), password.to_owned()));
        }
        Some((
            entry.get("username")?.as_str()?.to_owned(),
            entry.get("password")?.as_str()?.to_owned(),
        ))
    }

    /// Writes the file atomically with mode 0600 (directory 0700 when created).
    pub fn save(&self) -> Result<(), ConfigError> {
        let io = |source| ConfigError::Io {
            path: self.path.clone(),
            source,
        };
        let dir = self
            .path
            .parent()
            .filter(|d| !d.as_os_str().is_empty())
            .unwrap_or(Path::new("."));
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(dir)
            .map_err(io)?;
        let mut text = serde_json::to_string_pretty(&self.document).expect("JSON maps serialize");
        text.push('\n');
        let temp = dir.join(format!(".config.json.{}.tmp", std::process::id()));
        let written = std::fs::OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(0o600)
            .open(&temp)
            .and_then(|mut f| f.write_all(text.as_bytes()).and_then(|()| f.sync_all()))
            .and_then(|()| std::fs::rename(&temp, &self.path));
        if written.is_err() {
            let _ = std::fs::remove_file(&temp);
        }
        written.map_err(io)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    #[test]
    fn login_merges_and_logout_removes_keeping_other_settings() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("docker").join("config.json");
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(
            &path,
            r#"{"auths":{"other.io":{"auth":"eDp5"}},"credsStore":"none"}"#,
        )
        .unwrap();
        let mut config = DockerConfig::load(&path).unwrap();
        config.set_credentials("http://127.0.0.1:5000/", "ns/jdoe", "k]j64r{1sJSSF-;)K8");
        config.save().unwrap();
        let mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
        let reloaded = DockerConfig::load(&path).unwrap();
        assert_eq!(
            reloaded.credentials("127.0.0.1:5000"),
            Some(("ns/jdoe".into(), "k]j64r{1sJSSF-;)K8".into()))
        );
        assert_eq!(
            reloaded.credentials("other.io"),
            Some(("x".into(), "y".into()))
        );
        let text = std::fs::read_to_string(&path).unwrap();
        assert!(text.contains("\"credsStore\": \"none\""));

        let mut config = reloaded;
        assert!(config.remove_credentials("127.0.0.1:5000"));
        assert!(!config.remove_credentials("127.0.0.1:5000"));
        config.save().unwrap();
        assert!(
            DockerConfig::load(&path)
                .unwrap()
                .credentials("127.0.0.1:5000")
                .is_none()
        );
    }

    #[test]
    fn malformed_files_are_reported_not_overwritten() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("config.json");
        std::fs::write(&path, "not json").unwrap();
        assert!(matches!(
            DockerConfig::load(&path),
            Err(ConfigError::Invalid { .. })
        ));
        assert_eq!(std::fs::read_to_string(&path).unwrap(), "not json");
    }

    #[test]
    fn registry_keys_follow_docker() {
        assert_eq!(registry_key("https://phx.ocir.io/v2/"), "phx.ocir.io");
        assert_eq!(registry_key("docker.io"), "https://index.docker.io/v1/");
        assert_eq!(registry_key("127.0.0.1:5000"), "127.0.0.1:5000");
    }
}
