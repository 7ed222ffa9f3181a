//! `minato admin ...`: the command-line client of the admin API.

use anyhow::bail;
use clap::{Args, Subcommand};
use serde_json::{Value, json};

use crate::api_client::{Client, Connection, encode, field, lines};

/// Arguments of `minato admin`.
#[derive(Debug, Args)]
pub struct AdminArgs {
    #[command(flatten)]
    connection: Connection,
    #[command(subcommand)]
    command: AdminCommand,
}

#[derive(Debug, Subcommand)]
enum AdminCommand {
    /// Tenancies (namespaces).
    #[command(subcommand)]
    Tenancy(TenancyCommand),
    /// Users of a tenancy.
    #[command(subcommand)]
    User(UserCommand),
    /// Groups of a tenancy.
    #[command(subcommand)]
    Group(GroupCommand),
    /// Auth tokens (registry passwords).
    #[command(subcommand)]
    Token(TokenCommand),
    /// Access policy statements.
    #[command(subcommand)]
    Policy(PolicyCommand),
    /// Repository settings.
    #[command(subcommand)]
    Repo(RepoCommand),
    /// The key that signs registry bearer tokens.
    #[command(subcommand)]
    SigningKey(SigningKeyCommand),
}

#[derive(Debug, Subcommand)]
enum TenancyCommand {
    /// Create a tenancy; the namespace is generated when omitted.
    Create {
        /// Namespace (2-63 lowercase letters and digits).
        namespace: Option<String>,
        /// Human-readable name.
        #[arg(long)]
        display_name: Option<String>,
    },
    /// List the tenancies you can see.
    List,
}

#[derive(Debug, Subcommand)]
enum UserCommand {
    /// Create a user (an email is a valid name; `idp/user` for federated users).
    Create { namespace: String, user: String },
    /// List users.
    List { namespace: String },
}

#[derive(Debug, Subcommand)]
enum GroupCommand {
    /// Create a group.
    Create { namespace: String, group: String },
    /// Add a user to a group.
    AddUser {
        namespace: String,
        group: String,
        user: String,
    },
    /// List groups and members.
    List { namespace: String },
}

#[derive(Debug, Subcommand)]
enum TokenCommand {
    /// Create an auth token; prints only the token.
    Create {
        namespace: String,
        user: String,
        /// What the token is for.
        #[arg(long, default_value = "")]
        description: String,
        /// Lifetime such as `90d` or `12h` [default: never expires].
        #[arg(long, value_parser = humantime::parse_duration)]
        expires_in: Option<std::time::Duration>,
    },
    /// List a user's tokens (never the secrets).
    List { namespace: String, user: String },
    /// Revoke a token.
    Revoke {
        namespace: String,
        user: String,
        token_id: String,
    },
}

#[derive(Debug, Subcommand)]
enum PolicyCommand {
    /// Add statements, e.g. `allow group Pullers to read repos in tenancy`.
    Add {
        namespace: String,
        statement: String,
    },
    /// List statements.
    List { namespace: String },
    /// Delete a statement by id.
    Delete { namespace: String, id: i64 },
}

#[derive(Debug, Subcommand)]
enum RepoCommand {
    /// Create a repository (or change its settings).
    Create {
        /// `<namespace>/<repo>`.
        repository: String,
        /// Anyone may pull without credentials.
        #[arg(long)]
        public: bool,
        /// Tags cannot be moved once pushed.
        #[arg(long)]
        immutable: bool,
    },
    /// List repositories with their settings.
    List { namespace: String },
}

#[derive(Debug, Subcommand)]
enum SigningKeyCommand {
    /// Start signing registry tokens with a new key.
    Rotate,
}

/// Runs an admin command.
pub fn run(args: AdminArgs) -> anyhow::Result<()> {
    let client = Client::connect(&args.connection)?;
    let (answer, printer): (Value, fn(&Value) -> String) = match args.command {
        AdminCommand::Tenancy(TenancyCommand::Create {
            namespace,
            display_name,
        }) => (
            client.post("/admin/tenancies", json!({"namespace": namespace, "display_name": display_name}))?,
            |v| field(v, "namespace"),
        ),
        AdminCommand::Tenancy(TenancyCommand::List) => (client.get("/admin/tenancies")?, |v| {
            lines(v, |t| format!("{}\t{}", field(t, "namespace"), field(t, "display_name")))
        }),
        AdminCommand::User(UserCommand::Create { namespace, user }) => (
            client.post(&format!("/admin/tenancies/{namespace}/users"), json!({"name": user}))?,
            |v| field(v, "username"),
        ),
        AdminCommand::User(UserCommand::List { namespace }) => (
            client.get(&format!("/admin/tenancies/{namespace}/users"))?,
            |v| lines(v, |u| u.as_str().unwrap_or_default().to_owned()),
        ),
        AdminCommand::Group(GroupCommand::Create { namespace, group }) => (
            client.post(&format!("/admin/tenancies/{namespace}/groups"), json!({"name": group}))?,
            |v| field(v, "name"),
        ),
        AdminCommand::Group(GroupCommand::AddUser {
            namespace,
            group,
            user,
        }) => (
            client.post(
                &format!("/admin/tenancies/{namespace}/groups/{}/members", encode(&group)),
                json!({"user": user}),
            )?,
            |v| format!("{} added to {}", field(v, "user"), field(v, "group")),
        ),
        AdminCommand::Group(GroupCommand::List { namespace }) => (
            client.get(&format!("/admin/tenancies/{namespace}/groups"))?,
            |v| {
                lines(v, |g| {
                    let members: Vec<&str> = g["members"]
                        .as_array()
                        .map(|m| m.iter().filter_map(Value::as_str).collect())
                        .unwrap_or_default();
                    format!("{}\t{}", field(g, "name"), members.join(","))
                })
            },
        ),
        AdminCommand::Token(TokenCommand::Create {
            namespace,
            user,
            description,
            expires_in,
        }) => (
            client.post(
                &format!("/admin/tenancies/{namespace}/tokens"),
                json!({"user": user, "description": description, "expires_in_secs": expires_in.map(|d| d.as_secs())}),
            )?,
            |v| field(v, "token"),
        ),
        AdminCommand::Token(TokenCommand::List { namespace, user }) => (
            client.get(&format!("/admin/tenancies/{namespace}/tokens?user={}", encode(&user)))?,
            |v| lines(v, |t| format!("{}\t{}", field(t, "id"), field(t, "description"))),
        ),
        AdminCommand::Token(TokenCommand::Revoke {
            namespace,
            user,
            token_id,
        }) => (
            client.delete(&format!(
                "/admin/tenancies/{namespace}/tokens/{}?user={}",
                encode(&token_id),
                encode(&user)
            ))?,
            |_| "revoked".to_owned(),
        ),
        AdminCommand::Policy(PolicyCommand::Add {
            namespace,
            statement,
        }) => (
            client.post(&format!("/admin/tenancies/{namespace}/policies"), json!({"statement": statement}))?,
            policy_lines,
        ),
        AdminCommand::Policy(PolicyCommand::List { namespace }) => (
            client.get(&format!("/admin/tenancies/{namespace}/policies"))?,
            policy_lines,
        ),
        AdminCommand::Policy(PolicyCommand::Delete { namespace, id }) => (
            client.delete(&format!("/admin/tenancies/{namespace}/policies/{id}"))?,
            |_| "deleted".to_owned(),
        ),
        AdminCommand::Repo(RepoCommand::Create {
            repository,
            public,
            immutable,
        }) => {
            let Some((namespace, name)) = repository.split_once('/') else {
                bail!("repository must be <namespace>/<repo>, got {repository:?}");
            };
            (
                client.post(
                    &format!("/admin/tenancies/{namespace}/repositories"),
                    json!({"name": name, "public": public, "immutable": immutable}),
                )?,
                |v| field(v, "name"),
            )
        }
        AdminCommand::Repo(RepoCommand::List { namespace }) => (
            client.get(&format!("/admin/tenancies/{namespace}/repositories"))?,
            |v| {
                lines(v, |r| {
                    let mut flags = Vec::new();
                    if r["public"] == true {
                        flags.push("public");
                    }
                    if r["immutable"] == true {
                        flags.push("immutable");
                    }
                    format!("{}\t{}", field(r, "name"), flags.join(" "))
                })
            },
        ),
        AdminCommand::SigningKey(SigningKeyCommand::Rotate) => {
            (client.post("/admin/signing-keys/rotate", json!({}))?, |v| field(v, "kid"))
        }
    };
    args.connection.output.print(&answer, printer)
}

fn policy_lines(value: &Value) -> String {
    lines(value, |p| {
        format!("{}\t{}", field(p, "id"), field(p, "statement"))
    })
}
