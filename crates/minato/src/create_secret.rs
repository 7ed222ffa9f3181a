//! `minato create secret docker-registry`: kubectl's command with the same flags, output and
//! errors, plus `--password-stdin`, `--verify` and warnings about credentials that will fail.
//!
//! The secret itself (validation, `--from-file` reading, output) is `minato_kube::secret`;
//! this module parses the flags as kubectl does and adds the checks of the credentials.

use anyhow::bail;
use clap::{Args, Subcommand};
use minato_kube::gojson::strconv_quote;
use minato_kube::secret::{DEFAULT_SERVER, DockerRegistryOptions, Secret};

/// `minato create ...`.
#[derive(Debug, Args)]
pub struct CreateArgs {
    #[command(subcommand)]
    what: CreateCommand,
}

#[derive(Debug, Subcommand)]
enum CreateCommand {
    /// Create Kubernetes objects for a cluster.
    #[command(subcommand)]
    Secret(SecretCommand),
}

#[derive(Debug, Subcommand)]
enum SecretCommand {
    /// A `kubernetes.io/dockerconfigjson` pull secret, printed as kubectl prints it.
    DockerRegistry(DockerRegistryArgs),
}

/// Flags of `create secret docker-registry`, parsed as kubectl's flag library does: values may
/// start with `-` (`--docker-password -x...`), booleans take Go's spellings (`--append-hash=1`)
/// and only in the `--flag=value` form, and `--from-file` takes comma-separated lists.
#[derive(Debug, Args)]
pub struct DockerRegistryArgs {
    /// The secret's name (exactly one).
    names: Vec<String>,
    /// Registry server, written verbatim as the `auths` key.
    #[arg(long, default_value = DEFAULT_SERVER, allow_hyphen_values = true)]
    docker_server: String,
    /// Username, `<tenancy-namespace>/<user>` for tenancy registries.
    #[arg(long, default_value = "", allow_hyphen_values = true)]
    docker_username: String,
    /// Password (an auth token); prefer --password-stdin.
    #[arg(long, default_value = "", allow_hyphen_values = true)]
    docker_password: String,
    /// Email (optional, omitted when empty).
    #[arg(long, default_value = "", allow_hyphen_values = true)]
    docker_email: String,
    /// `[key=]path` of a docker config file to store verbatim (repeatable, comma-separated).
    #[arg(long = "from-file", allow_hyphen_values = true)]
    from_file: Vec<String>,
    /// Namespace written into the Secret.
    #[arg(short = 'n', long, allow_hyphen_values = true)]
    namespace: Option<String>,
    /// Append a hash of the content to the name.
    #[arg(long, num_args = 0..=1, require_equals = true, default_missing_value = "true",
          default_value = "false", value_parser = go_bool)]
    append_hash: bool,
    /// Output format.
    #[arg(short = 'o', long = "output", value_parser = ["yaml", "json"], default_value = "yaml")]
    output: String,
    /// Accepted for kubectl compatibility; minato never contacts an API server.
    #[arg(long, num_args = 0..=1, require_equals = true, default_missing_value = "client",
          value_parser = ["none", "client", "server"])]
    dry_run: Option<String>,
    /// Read the password from standard input (no shell quoting needed).
    #[arg(long)]
    password_stdin: bool,
    /// Log in to the registry with the credentials first and fail with its reason.
    #[arg(long)]
    verify: bool,
}

/// Runs `minato create ...`.
pub fn run(args: CreateArgs) -> anyhow::Result<()> {
    let CreateCommand::Secret(SecretCommand::DockerRegistry(args)) = args.what;
    docker_registry(args)
}

/// Go's `strconv.ParseBool`, which kubectl's boolean flags use.
fn go_bool(text: &str) -> Result<bool, String> {
    match text {
        "1" | "t" | "T" | "TRUE" | "true" | "True" => Ok(true),
        "0" | "f" | "F" | "FALSE" | "false" | "False" => Ok(false),
        _ => Err(format!(
            "strconv.ParseBool: parsing {}: invalid syntax",
            strconv_quote(text)
        )),
    }
}

/// One value of a string-slice flag (`--from-file`) split as kubectl's flag library does: one
/// CSV record, so fields are separated by commas and a field in double quotes may contain
/// commas (`""` for a quote); an empty value is no field at all. Newlines are not special.
fn split_string_slice(flag: &str, value: &str) -> anyhow::Result<Vec<String>> {
    let mut fields = Vec::new();
    let mut start = Some(0).filter(|_| !value.is_empty());
    while let Some(at) = start {
        let (field, next) = csv_field(value, at).map_err(|(column, problem)| {
            anyhow::anyhow!(
                "invalid argument {} for \"{flag}\" flag: parse error on line 1, column {column}: {problem}",
                strconv_quote(value)
            )
        })?;
        fields.push(field);
        start = next;
    }
    Ok(fields)
}

/// A CSV parse error: the 1-based column and Go's description.
type CsvError = (usize, &'static str);

/// The CSV field starting at byte `start` of `value`, and where the next one starts.
fn csv_field(value: &str, start: usize) -> Result<(String, Option<usize>), CsvError> {
    const BARE_QUOTE: &str = "bare \" in non-quoted-field";
    const BAD_QUOTE: &str = "extraneous or missing \" in quoted-field";
    let rest = &value[start..];
    if !rest.starts_with('"') {
        let field = rest.split(',').next().unwrap_or(rest);
        if let Some(quote) = field.find('"') {
            return Err((start + quote + 1, BARE_QUOTE));
        }
        let next = (field.len() < rest.len()).then_some(start + field.len() + 1);
        return Ok((field.to_owned(), next));
    }
    let mut field = String::new();
    let mut at = start + 1;
    loop {
        let quote = value[at..].find('"').ok_or((value.len() + 1, BAD_QUOTE))?;
        field.push_str(&value[at..at + quote]);
        let after = at + quote + 1;
        match value[after..].chars().next() {
            Some('"') => {
                field.push('"');
                at = after + 1;
            }
            Some(',') => return Ok((field, Some(after + 1))),
            None => return Ok((field, None)),
            Some(_) => return Err((after, BAD_QUOTE)),
        }
    }
}

/// kubectl's check of the positional arguments.
fn exactly_one_name(names: &[String]) -> anyhow::Result<String> {
    match names {
        [name] => Ok(name.clone()),
        _ => bail!(
            "exactly one NAME is required, got {}\nSee 'minato create secret docker-registry -h' for help and examples",
            names.len()
        ),
    }
}

fn warn(message: &str) {
    eprintln!("warning: {message}");
}

/// Warns about surrounding whitespace, which the registry will not forgive.
fn whitespace_warnings(args: &DockerRegistryArgs) {
    for (what, value) in [
        ("password", &args.docker_password),
        ("username", &args.docker_username),
    ] {
        if value.trim() != value.as_str() {
            warn(&format!(
                "the {what} has whitespace at its start or end ({} characters in all); the registry will refuse it",
                value.chars().count()
            ));
        }
    }
}

/// Warns when a tenancy registry gets a username without the tenancy namespace.
fn namespace_warning(username: &str) {
    if !username.contains('/') {
        warn(&format!(
            "username {username:?} has no tenancy namespace; this registry expects <tenancy-namespace>/<username>"
        ));
    }
}

/// Hosts of managed tenancy registries, recognisable without asking them.
fn known_tenancy_host(server: &str) -> bool {
    let host = minato_kube::docker_config::registry_key(server);
    let host = host.rsplit_once(':').map_or(host.as_str(), |(h, _)| h);
    host.ends_with(".ocir.io")
        || (host.starts_with("ocir.") && host.ends_with(".oci.oraclecloud.com"))
}

/// Warns about credentials that are accepted here but fail at pull time and, with `--verify`,
/// logs in with them (failing with the registry's reason).
fn check_credentials(args: &DockerRegistryArgs) -> anyhow::Result<()> {
    whitespace_warnings(args);
    let known_tenancy = known_tenancy_host(&args.docker_server);
    if known_tenancy {
        namespace_warning(&args.docker_username);
    }
    if args.verify {
        let outcome = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()?
            .block_on(minato_kube::login::check(
                &args.docker_server,
                &args.docker_username,
                &args.docker_password,
            ))?;
        if outcome.tenancy_registry && !known_tenancy {
            namespace_warning(&args.docker_username);
        }
    }
    Ok(())
}

fn docker_registry(mut args: DockerRegistryArgs) -> anyhow::Result<()> {
    let mut from_file = Vec::new();
    for value in &args.from_file {
        from_file.extend(split_string_slice("--from-file", value)?);
    }
    let name = exactly_one_name(&args.names)?;
    if args.password_stdin {
        args.docker_password = crate::stdin_secret::read()?;
    }
    let use_credentials = from_file.is_empty();
    let secret = Secret::docker_registry(DockerRegistryOptions {
        name,
        namespace: args.namespace.clone().filter(|n| !n.is_empty()),
        server: args.docker_server.clone(),
        username: args.docker_username.clone(),
        password: args.docker_password.clone(),
        email: args.docker_email.clone(),
        from_file,
        append_hash: args.append_hash,
    })?;
    if use_credentials {
        check_credentials(&args)?;
    }
    let document = if args.output == "json" {
        secret.to_json()
    } else {
        secret.to_yaml()?
    };
    print!("{document}");
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::{go_bool, split_string_slice};

    fn split(value: &str) -> Result<Vec<String>, String> {
        split_string_slice("--from-file", value).map_err(|e| e.to_string())
    }

    #[test]
    fn from_file_values_split_like_kubectl_flags() {
        assert_eq!(split(""), Ok(vec![]));
        assert_eq!(split("a.json"), Ok(vec!["a.json".to_owned()]));
        assert_eq!(
            split("a.json,foo=b.json"),
            Ok(vec!["a.json".to_owned(), "foo=b.json".to_owned()])
        );
        assert_eq!(split(",x"), Ok(vec![String::new(), "x".to_owned()]));
        assert_eq!(
            split(r#""c,d.json","say ""hi""",e"#),
            Ok(vec![
                "c,d.json".to_owned(),
                r#"say "hi""#.to_owned(),
                "e".to_owned()
            ])
        );
        assert_eq!(
            split(r#"a"b"#).unwrap_err(),
            r#"invalid argument "a\"b" for "--from-file" flag: parse error on line 1, column 2: bare " in non-quoted-field"#
        );
        assert_eq!(
            split(r#""ab"#).unwrap_err(),
            r#"invalid argument "\"ab" for "--from-file" flag: parse error on line 1, column 4: extraneous or missing " in quoted-field"#
        );
        assert_eq!(
            split(r#""a9.json"x"#).unwrap_err(),
            r#"invalid argument "\"a9.json\"x" for "--from-file" flag: parse error on line 1, column 9: extraneous or missing " in quoted-field"#
        );
    }

    #[test]
    fn booleans_take_go_spellings() {
        assert_eq!(go_bool("1"), Ok(true));
        assert_eq!(go_bool("F"), Ok(false));
        assert!(go_bool("maybe").is_err());
    }
}
