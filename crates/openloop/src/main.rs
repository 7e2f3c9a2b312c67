//! `openloop`: the server binary and its admin CLI.

mod backup;
mod banner;
mod bench;
mod bench_exports;
mod bench_flows;
mod bench_langgraph;
mod bench_replicas;
mod config;
mod flows_cli;
mod mcp_cli;
mod mcp_stdio;
mod serve;

#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

use std::process::ExitCode;

use clap::{Parser, Subcommand};
use config::{data_location, load_file, CommonArgs, ServeArgs};
use engine::{Engine, EngineConfig, KeyKind, ModelCatalogue, Signer};
use serde_json::json;

#[derive(Parser)]
#[command(name = "openloop", version, about = "Self-hosted Gumloop-compatible agent server")]
struct Cli {
    #[command(flatten)]
    common: CommonArgs,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the HTTP API and the workers (embedded SQLite by default).
    Serve(Box<ServeArgs>),
    /// Apply database migrations and exit.
    Migrate,
    /// Write a consistent online backup (SQLite database + referenced blobs + manifest) to one tar file.
    Backup(backup::BackupArgs),
    /// Restore a backup archive into the data directory (verifies every checksum first).
    Restore(backup::RestoreArgs),
    /// Measure accept latency, run throughput, cold start and idle RSS against a
    /// zero-latency fake provider (see docs/BENCHMARKS.md).
    Bench(bench::BenchArgs),
    /// Manage users.
    #[command(subcommand)]
    Users(UsersCmd),
    /// Manage teams.
    #[command(subcommand)]
    Teams(TeamsCmd),
    /// Manage API keys (secrets are shown once, stored only as SHA-256 hashes).
    #[command(subcommand)]
    Keys(KeysCmd),
    /// Serve Openloop's tools to a desktop MCP client over stdio, forwarding to a running
    /// server over HTTP with an API key.
    ///
    /// Results are shaped like those of /api/v1/tools/mcp; a 429 is an isError result,
    /// never retried. An unknown tool is a JSON-RPC invalid-params error (-32602), as over
    /// HTTP. A server that cannot be reached during a call gives an isError result naming
    /// the URL; one that cannot be reached, or refuses the key, at start ends the command
    /// with exit code 1 and a message on stderr (stdout carries only the protocol).
    McpStdio(mcp_stdio::McpStdioArgs),
    /// Flow documents: validate offline, push to / pull from a running server, run one and
    /// watch it node by node (OPENLOOP_URL, OPENLOOP_API_KEY).
    #[command(subcommand)]
    Flows(flows_cli::FlowsCmd),
    /// MCP servers of a workspace's catalogue, whose tools agents can use: add, list,
    /// remove, tools (OPENLOOP_URL, OPENLOOP_API_KEY).
    #[command(subcommand)]
    Mcp(mcp_cli::McpCmd),
    /// Print an organization's audit log (E3), newest first, one JSON object per line.
    Audit {
        /// Organization id.
        #[arg(long)]
        org: String,
        /// Start (ISO 8601; default: 24 hours ago).
        #[arg(long)]
        since: Option<String>,
        /// End (ISO 8601; default: now).
        #[arg(long)]
        until: Option<String>,
        /// Event types (comma-separated).
        #[arg(long, value_delimiter = ',')]
        event_type: Vec<String>,
        /// Acting users (comma-separated).
        #[arg(long, value_delimiter = ',')]
        user: Vec<String>,
        #[arg(long, default_value_t = 100)]
        limit: usize,
    },
}

#[derive(Subcommand)]
enum UsersCmd {
    /// Create a user (idempotent for an existing --id).
    Create {
        #[arg(long)]
        id: Option<String>,
        #[arg(long)]
        email: Option<String>,
        #[arg(long)]
        first_name: Option<String>,
        #[arg(long)]
        last_name: Option<String>,
        /// Organization id (created if absent; default org_default).
        #[arg(long)]
        org: Option<String>,
        /// Make the user an organization admin.
        #[arg(long)]
        org_admin: bool,
    },
    /// List users (id, organization, role, name, email), oldest first.
    List {
        /// Only this organization's users.
        #[arg(long)]
        org: Option<String>,
    },
}

#[derive(Subcommand)]
enum TeamsCmd {
    /// Create a team.
    Create {
        #[arg(long)]
        name: String,
        #[arg(long)]
        id: Option<String>,
        #[arg(long)]
        org: Option<String>,
    },
    /// Add (or change the role of) a team member.
    AddMember {
        #[arg(long)]
        team: String,
        #[arg(long)]
        user: String,
        #[arg(long, default_value = "member")]
        role: String,
    },
    /// List teams with their member counts, by name.
    List {
        /// Only this organization's teams.
        #[arg(long)]
        org: Option<String>,
    },
}

#[derive(Subcommand)]
enum KeysCmd {
    /// Create a personal (--user) or team (--team) key; prints the secret once.
    Create {
        #[arg(long, conflicts_with = "team", required_unless_present = "team")]
        user: Option<String>,
        #[arg(long)]
        team: Option<String>,
        #[arg(long)]
        name: Option<String>,
    },
    /// List keys (never secrets).
    List {
        #[arg(long)]
        user: Option<String>,
        #[arg(long)]
        team: Option<String>,
    },
    /// Revoke a key by id (immediate).
    Revoke { key_id: String },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    // Named failure points from FAILPOINTS (test builds only; see engine::faults).
    let _faults = engine::faults::setup();
    let rt = match tokio::runtime::Builder::new_multi_thread().enable_all().build() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("openloop: cannot start the async runtime: {e}");
            return ExitCode::from(1);
        }
    };
    rt.block_on(run(cli))
}

async fn run(cli: Cli) -> ExitCode {
    // The stdio bridge reads no data directory or config file.
    let command = match cli.command {
        Command::McpStdio(args) => return mcp_stdio::run(args).await,
        Command::Flows(cmd) => return flows_cli::run(cmd).await,
        Command::Mcp(cmd) => return mcp_cli::run(cmd).await,
        other => other,
    };
    let file = match load_file(cli.common.config.as_deref()) {
        Ok(f) => f,
        Err(e) => {
            eprintln!("openloop: {e}");
            return ExitCode::from(2);
        }
    };
    let result = match command {
        Command::Serve(args) => return serve::run(&cli.common, *args, file).await,
        Command::Bench(args) => bench::run(args).await,
        Command::Backup(args) => backup::backup(&cli.common, &file, args).await,
        Command::Restore(args) => backup::restore(&cli.common, &file, args).await,
        // Admin commands are audited as the local operator.
        other => {
            let ctx = store::audit::AuditContext {
                user_id: Some("openloop-cli".into()),
                source_ip: None,
                user_agent: Some(format!("openloop-cli/{}", env!("CARGO_PKG_VERSION"))),
            };
            store::audit::scope(ctx, admin(&cli.common, &file, other)).await
        }
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("openloop: {e:#}");
            ExitCode::from(1)
        }
    }
}

/// An engine over the configured store, for admin commands.
pub async fn open_engine(
    data_dir: &std::path::Path,
    database_url: &str,
    signer: Signer,
    catalogue: ModelCatalogue,
    public_url: String,
) -> anyhow::Result<Engine> {
    serve::ensure_data_dir(data_dir)?;
    if !store::Database::supports(database_url) {
        anyhow::bail!("OPENLOOP_DATABASE_URL: use sqlite://PATH or postgres://USER:PASSWORD@HOST:PORT/DB");
    }
    let db = store::Database::open(database_url).await.map_err(|e| anyhow::anyhow!("cannot open the database {}: {e}", store::redact_url(database_url)))?;
    Ok(Engine::new(db.store(), signer, catalogue, EngineConfig { public_url, ..Default::default() }))
}

/// Admin commands work on an existing installation: a mistyped or missing `--data-dir`
/// must not quietly create an empty one (and a first admin nobody can sign in as).
fn check_existing_installation(data_dir: &std::path::Path, database_url: &str, init: bool) -> anyhow::Result<()> {
    if init {
        return Ok(());
    }
    let Some(db_path) = database_url.strip_prefix("sqlite://").or_else(|| database_url.strip_prefix("sqlite:")) else {
        // PostgreSQL: the database is wherever the URL points; nothing local to create.
        return Ok(());
    };
    let db_path = std::path::Path::new(db_path.split('?').next().unwrap_or(db_path));
    if !data_dir.is_dir() {
        anyhow::bail!(
            "the data directory {} does not exist. Run this command with the server's --data-dir (or OPENLOOP_DATA_DIR), \
             from the directory the server runs in, or add --init to create a new, empty installation there",
            data_dir.display()
        );
    }
    if !db_path.exists() {
        anyhow::bail!(
            "there is no database at {} (the data directory {} has none). Point --data-dir or --database-url at the server's, \
             or add --init to create a new, empty one",
            db_path.display(),
            data_dir.display()
        );
    }
    Ok(())
}

/// Where the SDK should point, as the server's configuration says (admin commands do
/// not know the running server's address otherwise).
fn sdk_base_url(file: &config::FileSettings) -> String {
    let from_env = |k: &str| std::env::var(k).ok().map(|v| v.trim().trim_end_matches('/').to_string()).filter(|v| !v.is_empty());
    if let Some(u) = from_env("OPENLOOP_PUBLIC_URL").or_else(|| file.public_url.clone().map(|u| u.trim_end_matches('/').to_string())) {
        return format!("{u}/api/v1");
    }
    let addr = from_env("OPENLOOP_ADDR").or_else(|| file.addr.clone()).unwrap_or_else(|| "127.0.0.1:8765".into());
    format!("http://{addr}/api/v1")
}

async fn admin(common: &CommonArgs, file: &config::FileSettings, cmd: Command) -> anyhow::Result<()> {
    let (data_dir, database_url) = data_location(common, file);
    check_existing_installation(&data_dir, &database_url, common.init)?;
    // Admin commands never sign anything; a throwaway key keeps the engine whole.
    let signer = Signer::parse(&Signer::generate_spec()).map_err(anyhow::Error::msg)?;
    let engine = open_engine(&data_dir, &database_url, signer, ModelCatalogue::default(), String::new()).await?;
    let out = match cmd {
        Command::Serve(_) | Command::Bench(_) | Command::McpStdio(_) | Command::Flows(_) | Command::Mcp(_) | Command::Backup(_) | Command::Restore(_) => {
            unreachable!("handled by run")
        }
        Command::Migrate => json!({"migrated": true, "database_url": store::redact_url(&database_url)}),
        Command::Audit { org, since, until, event_type, user, limit } => {
            let now = wire::time::now_micros();
            let parse = |v: Option<String>, default: i64, what: &str| match v {
                None => Ok(default),
                Some(s) => wire::time::parse(&s).ok_or_else(|| anyhow::anyhow!("--{what}: {s:?} is not an ISO 8601 date or time")),
            };
            let filter = store::audit::AuditFilter {
                organization_id: org,
                start: parse(since, now - 86_400_000_000, "since")?,
                end: parse(until, now, "until")?,
                event_types: event_type,
                user_ids: user,
                ..Default::default()
            };
            let (rows, total) = engine.store.audit_events(&filter, 0, limit).await?;
            for r in &rows {
                println!(
                    "{}",
                    json!({"event_id": r.id, "timestamp": wire::time::legacy(r.created_at), "event_type": r.event_type, "user_id": r.user_id,
                           "source_ip": r.source_ip, "user_agent": r.user_agent, "details": r.details})
                );
            }
            eprintln!("{} of {total} events", rows.len());
            return Ok(());
        }
        Command::Users(UsersCmd::Create { id, email, first_name, last_name, org, org_admin }) => {
            let u = engine.create_user(engine::tenancy::NewUser { id, organization_id: org, email, first_name, last_name, org_admin }).await?;
            json!({"user_id": u.id, "organization_id": u.organization_id, "org_role": u.org_role})
        }
        Command::Teams(TeamsCmd::Create { name, id, org }) => {
            let t = engine.create_team(id, &name, org).await?;
            json!({"team_id": t.id, "name": t.name, "organization_id": t.organization_id})
        }
        Command::Users(UsersCmd::List { org }) => {
            let users = engine.store.list_users(org.as_deref()).await?;
            json!({"users": users.iter().map(|u| json!({
                "user_id": u.id, "organization_id": u.organization_id, "org_role": u.org_role, "email": u.email,
                "first_name": u.first_name, "last_name": u.last_name, "created_at": wire::time::v1(u.created_at),
            })).collect::<Vec<_>>()})
        }
        Command::Teams(TeamsCmd::List { org }) => {
            let teams = engine.store.list_teams(org.as_deref()).await?;
            json!({"teams": teams.iter().map(|(t, members)| json!({
                "team_id": t.id, "name": t.name, "organization_id": t.organization_id, "members": members,
                "created_at": wire::time::v1(t.created_at),
            })).collect::<Vec<_>>()})
        }
        Command::Teams(TeamsCmd::AddMember { team, user, role }) => {
            engine.add_team_member(&team, &user, &role).await?;
            json!({"team_id": team, "user_id": user, "role": role})
        }
        Command::Keys(KeysCmd::Create { user, team, name }) => {
            let owner = match (user, team) {
                (Some(u), _) => KeyKind::Personal { user_id: u },
                (None, Some(t)) => KeyKind::Team { team_id: t },
                (None, None) => anyhow::bail!("give --user <user_id> or --team <team_id>"),
            };
            let user_line = match &owner {
                KeyKind::Personal { user_id } => format!("GUMLOOP_USER_ID={user_id}"),
                // A team key acts as the member its caller names.
                KeyKind::Team { .. } => "GUMLOOP_USER_ID=<a team member's user id>".to_string(),
            };
            let k = engine.create_key(&owner, name, None, None).await?;
            let env = format!("export GUMLOOP_BASE_URL={} GUMLOOP_ACCESS_TOKEN={} {user_line}", sdk_base_url(file), k.secret);
            eprintln!("For the SDK (shown once; store the secret now):\n  {env}");
            json!({"key_id": k.key_id, "secret": k.secret, "sdk_env": env, "note": "The secret is shown only now; store it safely."})
        }
        Command::Keys(KeysCmd::List { user, team }) => {
            let keys = engine.store.list_api_keys(user.as_deref(), team.as_deref()).await?;
            json!({"keys": keys.iter().map(|k| json!({
                "key_id": k.id, "prefix": k.prefix, "name": k.name, "user_id": k.user_id, "team_id": k.team_id,
                "created_at": wire::time::v1(k.created_at), "revoked_at": k.revoked_at.map(wire::time::v1),
            })).collect::<Vec<_>>()})
        }
        Command::Keys(KeysCmd::Revoke { key_id }) => {
            if !engine.store.revoke_api_key(&key_id, wire::time::now_micros()).await? {
                anyhow::bail!("no active key with id {key_id} (see `openloop keys list`)");
            }
            json!({"key_id": key_id, "revoked": true})
        }
    };
    println!("{out}");
    Ok(())
}

#[cfg(test)]
mod cli_tests {
    use clap::CommandFactory;

    /// Every subcommand's flags are consistent (clap checks this only when a command runs).
    #[test]
    fn cli_definition_is_valid() {
        super::Cli::command().debug_assert();
    }
}
