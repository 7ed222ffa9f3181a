//! First start on an empty data directory: create the system tenancy, its `Administrators`
//! group, user `admin` and an auth token, print ready-to-paste login lines once, and keep the
//! credentials in `<data-dir>/bootstrap.json` (mode 0600).

use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;

use anyhow::Context;
use minato_iam::{ADMINISTRATORS, Directory};
use serde::Serialize;

/// What `bootstrap.json` holds.
#[derive(Serialize)]
struct BootstrapFile<'a> {
    registry: &'a str,
    namespace: &'a str,
    username: &'a str,
    password: &'a str,
}

/// Creates the first tenancy and administrator if the directory is empty.
pub async fn run_if_empty(
    directory: &Directory,
    data_dir: &Path,
    namespace: Option<&str>,
    registry_host: &str,
) -> anyhow::Result<()> {
    if !directory.is_empty() {
        return Ok(());
    }
    let namespace = directory
        .create_tenancy(namespace, Some("system"))
        .await
        .context("creating the first tenancy")?;
    directory.create_user(&namespace, "admin").await?;
    directory
        .add_to_group(&namespace, ADMINISTRATORS, "admin")
        .await?;
    let (_, password) = directory
        .create_token(&namespace, "admin", "bootstrap", None)
        .await?;
    let username = format!("{namespace}/admin");
    let path = data_dir.join("bootstrap.json");
    let json = serde_json::to_string_pretty(&BootstrapFile {
        registry: registry_host,
        namespace: &namespace,
        username: &username,
        password: &password,
    })?;
    std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(&path)
        .and_then(|mut f| f.write_all(json.as_bytes()))
        .with_context(|| format!("writing {}", path.display()))?;
    let quoted = shell_quote(&password);
    println!(
        "\nminato: created tenancy {namespace} with administrator {username}.\n\
         The auth token below is shown once (also saved in {file}, mode 0600):\n\n  {password}\n\n\
         Log in:\n  \
         echo {quoted} | docker login {registry_host} -u {username} --password-stdin\n  \
         skopeo login --tls-verify=false -u {username} -p {quoted} {registry_host}\n  \
         minato create secret docker-registry regcred --docker-server={registry_host} --docker-username={username} --docker-password={quoted}\n",
        file = path.display(),
    );
    Ok(())
}

/// Single-quotes a value for POSIX shells (tokens contain characters such as `;)`).
fn shell_quote(value: &str) -> String {
    format!("'{}'", value.replace('\'', "'\\''"))
}

#[cfg(test)]
mod tests {
    use super::shell_quote;

    #[test]
    fn quoting_survives_shell_metacharacters() {
        assert_eq!(shell_quote("k]j64r{1sJSSF-;)K8"), "'k]j64r{1sJSSF-;)K8'");
        assert_eq!(shell_quote("a'b"), "'a'\\''b'");
    }
}
