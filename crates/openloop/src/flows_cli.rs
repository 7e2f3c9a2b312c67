//! `openloop flows validate|push|pull|run`: flow documents from files to a running
//! server (over HTTP with an API key) and runs watched node by node.

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::{Duration, Instant};

use clap::{Args, Subcommand};
use engine::flows::document::{parse_text, validate};
use serde_json::{json, Value};

#[derive(Subcommand)]
pub enum FlowsCmd {
    /// Validate a flow document (JSON or YAML) without a server; prints every error with
    /// its node and field (exit code 2 when invalid).
    Validate { file: PathBuf },
    /// Save a document: a new flow, or with --id of an existing flow its next version.
    Push {
        file: PathBuf,
        /// saved_item_id: updated when it exists, else created with this id.
        #[arg(long)]
        id: Option<String>,
        #[arg(long)]
        workbook: Option<String>,
        #[command(flatten)]
        conn: Conn,
    },
    /// Print a saved flow's document (JSON) to stdout.
    Pull {
        id: String,
        #[arg(long)]
        version: Option<i64>,
        #[command(flatten)]
        conn: Conn,
    },
    /// Run a saved flow: progress per node on stderr, the outputs (JSON) on stdout.
    Run {
        id: String,
        /// An input value, `name=value` (repeatable).
        #[arg(long = "input", value_parser = parse_input)]
        inputs: Vec<(String, String)>,
        #[command(flatten)]
        conn: Conn,
    },
}

/// Where the server is and who calls it.
#[derive(Args)]
pub struct Conn {
    /// Openloop server: an origin (http://host:port) or an origin + /api/v1.
    #[arg(long, env = "OPENLOOP_URL", default_value = "http://127.0.0.1:8765")]
    url: String,
    /// API key. Prefer the environment: flags are visible to other local users.
    #[arg(long, env = "OPENLOOP_API_KEY", hide_env_values = true)]
    api_key: Option<String>,
    /// Acting user (required with a team key).
    #[arg(long, env = "GUMLOOP_USER_ID")]
    user_id: Option<String>,
    /// Team workspace (`project_id` / `team_id`).
    #[arg(long, env = "GUMLOOP_TEAM_ID")]
    team_id: Option<String>,
}

fn parse_input(s: &str) -> Result<(String, String), String> {
    s.split_once('=').map(|(k, v)| (k.trim().to_string(), v.to_string())).ok_or_else(|| format!("{s:?}: give an input as name=value"))
}

pub(crate) struct Client {
    http: reqwest::Client,
    api: String,
    key: String,
    user_id: Option<String>,
    team_id: Option<String>,
}

impl Client {
    pub(crate) fn new(c: Conn) -> Result<Client, String> {
        let api = crate::mcp_stdio::api_base(&c.url)?.to_string().trim_end_matches('/').to_string();
        let key = c
            .api_key
            .filter(|k| !k.trim().is_empty())
            .ok_or("an API key is required: set OPENLOOP_API_KEY (or pass --api-key); `openloop keys create --user <id>` makes one")?;
        let http = reqwest::Client::builder().timeout(Duration::from_secs(60)).build().map_err(|e| e.to_string())?;
        Ok(Client { http, api, key, user_id: c.user_id, team_id: c.team_id })
    }

    pub(crate) async fn call(&self, method: reqwest::Method, path: &str, query: &[(&str, String)], body: Option<Value>) -> Result<(u16, Value), String> {
        let mut q: Vec<(&str, String)> = query.to_vec();
        if let Some(t) = &self.team_id {
            q.push(("team_id", t.clone()));
        }
        let mut rb = self.http.request(method, format!("{}{path}", self.api)).bearer_auth(&self.key).query(&q);
        if let Some(u) = &self.user_id {
            rb = rb.header("x-auth-key", u);
        }
        if let Some(b) = body {
            rb = rb.json(&b);
        }
        let r = rb
            .send()
            .await
            .map_err(|e| format!("cannot reach Openloop at {} ({e}). Is `openloop serve` running? Point --url / OPENLOOP_URL at it.", self.api))?;
        let status = r.status().as_u16();
        let text = r.text().await.map_err(|e| e.to_string())?;
        Ok((status, serde_json::from_str(&text).unwrap_or(Value::String(text))))
    }
}

pub(crate) fn error_text(body: &Value) -> String {
    body.pointer("/error/message")
        .or_else(|| body.get("message"))
        .or_else(|| body.get("error"))
        .and_then(Value::as_str)
        .map(str::to_string)
        .unwrap_or_else(|| body.to_string())
}

fn read_doc(file: &PathBuf) -> Result<Value, String> {
    let text = std::fs::read_to_string(file).map_err(|e| format!("cannot read {}: {e}", file.display()))?;
    parse_text(&text).map_err(|e| format!("{}: {e}", file.display()))
}

pub async fn run(cmd: FlowsCmd) -> ExitCode {
    match run_inner(cmd).await {
        Ok(code) => code,
        Err(e) => {
            eprintln!("openloop flows: {e}");
            ExitCode::from(1)
        }
    }
}

async fn run_inner(cmd: FlowsCmd) -> Result<ExitCode, String> {
    match cmd {
        FlowsCmd::Validate { file } => {
            let doc = read_doc(&file)?;
            match validate(&doc) {
                Ok(g) => {
                    println!("{}", json!({"valid": true, "name": g.name, "nodes": g.nodes.len(), "order": g.nodes.iter().map(|n| &n.id).collect::<Vec<_>>()}));
                    Ok(ExitCode::SUCCESS)
                }
                Err(errs) => {
                    for e in &errs {
                        eprintln!("{}: {e}", file.display());
                    }
                    Ok(ExitCode::from(2))
                }
            }
        }
        FlowsCmd::Push { file, id, workbook, conn } => {
            let doc = read_doc(&file)?;
            if let Err(errs) = validate(&doc) {
                for e in &errs {
                    eprintln!("{}: {e}", file.display());
                }
                return Ok(ExitCode::from(2));
            }
            let c = Client::new(conn)?;
            let mut body = json!({"document": doc});
            if let Some(w) = workbook {
                body["workbook_id"] = json!(w);
            }
            let exists = match &id {
                Some(id) => c.call(reqwest::Method::GET, &format!("/flows/{id}"), &[], None).await?.0 == 200,
                None => false,
            };
            let (status, b) = match (&id, exists) {
                (Some(id), true) => c.call(reqwest::Method::PUT, &format!("/flows/{id}"), &[], Some(body)).await?,
                (Some(id), false) => {
                    body["saved_item_id"] = json!(id);
                    c.call(reqwest::Method::POST, "/flows", &[], Some(body)).await?
                }
                (None, _) => c.call(reqwest::Method::POST, "/flows", &[], Some(body)).await?,
            };
            if status >= 400 {
                return Err(format!("saving failed ({status}): {}", error_text(&b)));
            }
            println!("{}", json!({"saved_item_id": b["saved_item_id"], "version": b["version"], "workbook_id": b["workbook_id"]}));
            Ok(ExitCode::SUCCESS)
        }
        FlowsCmd::Pull { id, version, conn } => {
            let c = Client::new(conn)?;
            let q: Vec<(&str, String)> = version.map(|v| ("version", v.to_string())).into_iter().collect();
            let (status, b) = c.call(reqwest::Method::GET, &format!("/flows/{id}"), &q, None).await?;
            if status >= 400 {
                return Err(format!("{id} ({status}): {}", error_text(&b)));
            }
            println!("{}", serde_json::to_string_pretty(&b["document"]).unwrap_or_default());
            Ok(ExitCode::SUCCESS)
        }
        FlowsCmd::Run { id, inputs, conn } => {
            let c = Client::new(conn)?;
            let mut body =
                json!({"saved_item_id": id, "pipeline_inputs": inputs.iter().map(|(k, v)| json!({"input_name": k, "value": v})).collect::<Vec<_>>()});
            if let Some(u) = &c.user_id {
                body["user_id"] = json!(u);
            }
            if let Some(t) = &c.team_id {
                body["project_id"] = json!(t);
            }
            let (status, b) = c.call(reqwest::Method::POST, "/start_pipeline", &[], Some(body)).await?;
            if status >= 400 {
                return Err(format!("starting {id} failed ({status}): {}", error_text(&b)));
            }
            let run_id = b["run_id"].as_str().unwrap_or_default().to_string();
            eprintln!("run {run_id} started");
            let t0 = Instant::now();
            let mut shown = 0;
            loop {
                let mut q = vec![("run_id", run_id.clone())];
                if let Some(t) = &c.team_id {
                    q.push(("project_id", t.clone()));
                }
                let (status, r) = c.call(reqwest::Method::GET, "/get_pl_run", &q, None).await?;
                if status >= 400 {
                    return Err(format!("polling {run_id} failed ({status}): {}", error_text(&r)));
                }
                let log = r["log"].as_array().cloned().unwrap_or_default();
                for line in log.iter().skip(shown) {
                    eprintln!("[{:>6.1}s] {}", t0.elapsed().as_secs_f64(), line.as_str().unwrap_or_default());
                }
                shown = log.len();
                match r["state"].as_str() {
                    Some("DONE") => {
                        println!("{}", serde_json::to_string_pretty(&r["outputs"]).unwrap_or_default());
                        eprintln!("done in {:.1}s, {} credits", t0.elapsed().as_secs_f64(), r["credit_cost"]);
                        return Ok(ExitCode::SUCCESS);
                    }
                    Some(s @ ("FAILED" | "TERMINATED")) => {
                        eprintln!("run {run_id} {s}");
                        return Ok(ExitCode::from(1));
                    }
                    _ => tokio::time::sleep(Duration::from_millis(200)).await,
                }
            }
        }
    }
}
