//! The blocking JSON client of the admin API shared by `minato admin`, `minato keys` and
//! `minato sign`: connection flags, Basic credentials, error messages from the API's error
//! shape, and text / JSON output.

use anyhow::{Context, bail};
use clap::Args;
use serde_json::Value;

/// How answers are printed (`-o text|json`).
#[derive(Debug, Args)]
pub struct Output {
    /// Print raw JSON answers.
    #[arg(short = 'o', long = "output", value_parser = ["text", "json"], default_value = "text", global = true)]
    output: String,
}

impl Output {
    /// Prints `answer` with `printer` in text mode, as pretty JSON otherwise.
    pub fn print(&self, answer: &Value, printer: impl Fn(&Value) -> String) -> anyhow::Result<()> {
        if self.output == "text" {
            println!("{}", printer(answer));
        } else {
            println!("{}", serde_json::to_string_pretty(answer)?);
        }
        Ok(())
    }
}

/// Where and as whom to reach the admin API.
#[derive(Debug, Args)]
pub struct Connection {
    /// Registry URL.
    #[arg(
        long,
        env = "MINATO_SERVER",
        default_value = "http://127.0.0.1:5000",
        global = true
    )]
    server: String,
    /// Login, `<tenancy-namespace>/<username>`.
    #[arg(long, env = "MINATO_USERNAME", global = true)]
    username: Option<String>,
    /// Read the auth token from standard input (else from MINATO_PASSWORD).
    #[arg(long, global = true)]
    password_stdin: bool,
    /// Output format.
    #[command(flatten)]
    pub output: Output,
}

/// A blocking HTTP client of one server, with the caller's credentials when it has any.
pub struct Client {
    http: reqwest::blocking::Client,
    server: String,
    credentials: Option<(String, String)>,
}

impl Client {
    /// A client for the `--server`, `--username` and auth token of `connection`.
    pub fn connect(connection: &Connection) -> anyhow::Result<Client> {
        let username = connection
            .username
            .clone()
            .context("give --username <tenancy-namespace>/<user> (or MINATO_USERNAME)")?;
        let password = if connection.password_stdin {
            crate::stdin_secret::read()?
        } else {
            std::env::var("MINATO_PASSWORD")
                .context("give --password-stdin or set MINATO_PASSWORD to an auth token")?
        };
        Client::new(&connection.server, Some((username, password)))
    }

    /// A client of `server` (a base URL) sending `credentials` as Basic auth, if any.
    pub fn new(server: &str, credentials: Option<(String, String)>) -> anyhow::Result<Client> {
        Ok(Client {
            http: reqwest::blocking::Client::builder()
                .timeout(std::time::Duration::from_secs(30))
                .build()?,
            server: server.trim_end_matches('/').to_owned(),
            credentials,
        })
    }

    fn send(&self, request: reqwest::blocking::RequestBuilder) -> anyhow::Result<Value> {
        let request = match &self.credentials {
            Some((username, password)) => request.basic_auth(username, Some(password)),
            None => request,
        };
        let response = request
            .send()
            .with_context(|| format!("cannot reach {}", self.server))?;
        let status = response.status();
        let body = response.text().unwrap_or_default();
        if status.is_success() {
            if body.is_empty() {
                return Ok(Value::Null);
            }
            return serde_json::from_str(&body).context("the server answered with invalid JSON");
        }
        let message = serde_json::from_str::<Value>(&body)
            .ok()
            .and_then(|v| v["errors"][0]["message"].as_str().map(str::to_owned))
            .unwrap_or(body);
        bail!("{} ({status})", message.trim())
    }

    /// `GET` a path of the server.
    pub fn get(&self, path: &str) -> anyhow::Result<Value> {
        self.send(self.http.get(format!("{}{path}", self.server)))
    }

    /// `POST` a JSON body to a path of the server.
    pub fn post(&self, path: &str, body: Value) -> anyhow::Result<Value> {
        self.send(self.http.post(format!("{}{path}", self.server)).json(&body))
    }

    /// `DELETE` a path of the server.
    pub fn delete(&self, path: &str) -> anyhow::Result<Value> {
        self.send(self.http.delete(format!("{}{path}", self.server)))
    }
}

/// A field of a JSON object as text (`""` when absent).
pub fn field(value: &Value, key: &str) -> String {
    match &value[key] {
        Value::String(s) => s.clone(),
        Value::Null => String::new(),
        other => other.to_string(),
    }
}

/// One line per element of a JSON array.
pub fn lines(value: &Value, line: impl Fn(&Value) -> String) -> String {
    value
        .as_array()
        .map(|items| items.iter().map(line).collect::<Vec<_>>().join("\n"))
        .unwrap_or_default()
}

/// Percent-encodes a path segment or query value.
pub fn encode(text: &str) -> String {
    form_urlencoded::byte_serialize(text.as_bytes()).collect()
}
