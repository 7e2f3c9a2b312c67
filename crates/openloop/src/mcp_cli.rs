//! `openloop mcp add|list|remove|tools`: a workspace's MCP server catalogue on a running
//! server (over HTTP with an API key, like `openloop flows`). Registered headers are
//! stored encrypted by the server and never printed.

use std::process::ExitCode;

use clap::Subcommand;
use serde_json::{json, Value};

use crate::flows_cli::{error_text, Client, Conn};

#[derive(Subcommand)]
pub enum McpCmd {
    /// Register an MCP server: its Streamable HTTP URL, or a stdio command after `--`
    /// (only when the server allows stdio: OPENLOOP_MCP_ALLOW_STDIO).
    Add {
        /// Display name.
        name: String,
        /// The server's Streamable HTTP endpoint, e.g. https://mcp.example.com/mcp.
        mcp_url: Option<String>,
        /// Id in the catalogue (default: generated), e.g. a well-known one such as gmail.
        #[arg(long)]
        id: Option<String>,
        /// A header sent with every request, `Name: value` (repeatable; stored encrypted).
        /// Values on the command line are visible to other local users: prefer
        /// `--header-env Name=ENV_VAR`.
        #[arg(long = "header", value_parser = parse_header)]
        headers: Vec<(String, String)>,
        /// A header whose value is read from an environment variable, `Name=ENV_VAR`.
        #[arg(long = "header-env", value_parser = parse_header_env)]
        header_env: Vec<(String, String)>,
        #[arg(long)]
        description: Option<String>,
        #[command(flatten)]
        conn: Conn,
        /// The stdio command and its arguments (after `--`).
        #[arg(last = true)]
        command: Vec<String>,
    },
    /// List the workspace's MCP servers (never their credentials).
    List {
        #[command(flatten)]
        conn: Conn,
    },
    /// Remove an MCP server from the catalogue.
    Remove {
        id: String,
        #[command(flatten)]
        conn: Conn,
    },
    /// List a server's tools (asks the server).
    Tools {
        id: String,
        #[command(flatten)]
        conn: Conn,
    },
}

fn parse_header(s: &str) -> Result<(String, String), String> {
    s.split_once(':').map(|(k, v)| (k.trim().to_string(), v.trim().to_string())).ok_or_else(|| format!("{s:?}: give a header as 'Name: value'"))
}

fn parse_header_env(s: &str) -> Result<(String, String), String> {
    let (name, var) = s.split_once('=').ok_or_else(|| format!("{s:?}: give Name=ENV_VAR"))?;
    let value = std::env::var(var.trim()).map_err(|_| format!("--header-env {s}: the environment variable {} is not set", var.trim()))?;
    Ok((name.trim().to_string(), value))
}

pub async fn run(cmd: McpCmd) -> ExitCode {
    match run_inner(cmd).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("openloop mcp: {e}");
            ExitCode::from(1)
        }
    }
}

fn check(status: u16, body: Value, what: &str) -> Result<Value, String> {
    if (200..300).contains(&status) {
        Ok(body)
    } else {
        Err(format!("{what} failed ({status}): {}", error_text(&body)))
    }
}

async fn run_inner(cmd: McpCmd) -> Result<(), String> {
    let out = match cmd {
        McpCmd::Add { name, mcp_url: url, id, headers, header_env, description, conn, command } => {
            let client = Client::new(conn)?;
            let mut body = json!({"name": name});
            match (url, command.is_empty()) {
                (Some(u), true) => body["url"] = json!(u),
                (None, false) => body["command"] = json!(command),
                (Some(_), false) => return Err("give either the server's URL or a stdio command after --, not both".into()),
                (None, true) => {
                    return Err("give the server's URL (Streamable HTTP), e.g. `openloop mcp add Notes https://host/mcp`, or a stdio command after --".into())
                }
            }
            if let Some(id) = id {
                body["id"] = json!(id);
            }
            if let Some(d) = description {
                body["description"] = json!(d);
            }
            let all: serde_json::Map<String, Value> = headers.into_iter().chain(header_env).map(|(k, v)| (k, Value::String(v))).collect();
            if !all.is_empty() {
                body["headers"] = Value::Object(all);
            }
            let (status, resp) = client.call(reqwest::Method::POST, "/mcp/servers", &[], Some(body)).await?;
            let resp = check(status, resp, "registering the MCP server")?;
            let server = resp.get("server").cloned().unwrap_or(Value::Null);
            eprintln!(
                "Registered MCP server {}; attach it to an agent with PUT /api/v1/agents/<agent_id>/mcp-servers/{} (SDK: agents.attach_mcp_server).",
                server["server_id"].as_str().unwrap_or("?"),
                server["server_id"].as_str().unwrap_or("?")
            );
            server
        }
        McpCmd::List { conn } => {
            let client = Client::new(conn)?;
            let (status, resp) = client.call(reqwest::Method::GET, "/mcp/servers", &[], None).await?;
            check(status, resp, "listing MCP servers")?
        }
        McpCmd::Remove { id, conn } => {
            let client = Client::new(conn)?;
            let path = format!("/mcp/servers/{}", percent_encoding::utf8_percent_encode(&id, percent_encoding::NON_ALPHANUMERIC));
            let (status, resp) = client.call(reqwest::Method::DELETE, &path, &[], None).await?;
            check(status, resp, "removing the MCP server")?
        }
        McpCmd::Tools { id, conn } => {
            let client = Client::new(conn)?;
            let path = format!("/mcp/servers/{}/tools", percent_encoding::utf8_percent_encode(&id, percent_encoding::NON_ALPHANUMERIC));
            let (status, resp) = client.call(reqwest::Method::GET, &path, &[], None).await?;
            check(status, resp, "listing the server's tools")?
        }
    };
    println!("{}", serde_json::to_string_pretty(&out).unwrap_or_default());
    Ok(())
}
