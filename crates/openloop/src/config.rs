//! Configuration: flags > environment > TOML file > defaults (API.md §9.1). Only this
//! binary reads configuration; libraries receive plain structs.

use std::path::{Path, PathBuf};

use clap::Args;
use serde::Deserialize;

/// Settings every subcommand shares (where the data lives).
#[derive(Debug, Clone, Args, Default)]
pub struct CommonArgs {
    /// TOML configuration file.
    #[arg(long, env = "OPENLOOP_CONFIG", global = true)]
    pub config: Option<PathBuf>,
    /// Data directory (database, blobs, signing keys, flows).
    #[arg(long, env = "OPENLOOP_DATA_DIR", global = true)]
    pub data_dir: Option<PathBuf>,
    /// Database URL: sqlite://path (default: $OPENLOOP_DATA_DIR/openloop.db).
    #[arg(long, env = "OPENLOOP_DATABASE_URL", global = true)]
    pub database_url: Option<String>,
    /// Admin commands: create the data directory and database when they do not exist
    /// (without it they refuse, so a mistyped --data-dir cannot start an empty one).
    #[arg(long, global = true)]
    pub init: bool,
}

/// `openloop serve` settings. Every field is optional here so that "not given" can
/// fall through to the file and then the default.
#[derive(Debug, Clone, Args, Default)]
pub struct ServeArgs {
    /// Listen address host:port (never 8080 by default: the SDK rewrites localhost:8080 for streams).
    #[arg(long, env = "OPENLOOP_ADDR")]
    pub addr: Option<String>,
    /// Extra listen addresses serving the same app, comma-separated.
    #[arg(long, env = "OPENLOOP_EXTRA_ADDRS")]
    pub extra_addrs: Option<String>,
    /// External origin for signed URLs and run URLs.
    #[arg(long, env = "OPENLOOP_PUBLIC_URL")]
    pub public_url: Option<String>,
    #[arg(long, env = "OPENLOOP_BOOTSTRAP_USER_ID")]
    pub bootstrap_user_id: Option<String>,
    #[arg(long, env = "OPENLOOP_BOOTSTRAP_API_KEY", hide_env_values = true)]
    pub bootstrap_api_key: Option<String>,
    #[arg(long, env = "OPENLOOP_BOOTSTRAP_TEAM_ID")]
    pub bootstrap_team_id: Option<String>,
    #[arg(long, env = "OPENLOOP_BOOTSTRAP_TEAM_API_KEY", hide_env_values = true)]
    pub bootstrap_team_api_key: Option<String>,
    /// Requests per window per API key (0 disables).
    #[arg(long, env = "OPENLOOP_RATE_LIMIT_REQUESTS")]
    pub rate_limit_requests: Option<u32>,
    #[arg(long, env = "OPENLOOP_RATE_LIMIT_WINDOW_SECS")]
    pub rate_limit_window_secs: Option<u64>,
    #[arg(long, env = "OPENLOOP_RATE_LIMIT_UNAUTH_PER_MIN")]
    pub rate_limit_unauth_per_min: Option<u32>,
    #[arg(long, env = "OPENLOOP_RATE_LIMIT_FILES_PER_MIN")]
    pub rate_limit_files_per_min: Option<u32>,
    #[arg(long, env = "OPENLOOP_TRUST_PROXY_HEADERS")]
    pub trust_proxy_headers: Option<bool>,
    /// kid:base64secret,… (first signs, all verify).
    #[arg(long, env = "OPENLOOP_SIGNING_KEYS", hide_env_values = true)]
    pub signing_keys: Option<String>,
    #[arg(long, env = "OPENLOOP_MAX_BODY_BYTES")]
    pub max_body_bytes: Option<usize>,
    #[arg(long, env = "OPENLOOP_DEFAULT_MODEL")]
    pub default_model: Option<String>,
    /// Extra catalogue entries provider/model,…
    #[arg(long, env = "OPENLOOP_MODELS")]
    pub models: Option<String>,
    /// GGUF model files run in-process, served as local/<file stem>; comma-separated.
    #[arg(long, env = "OPENLOOP_LOCAL_MODELS")]
    pub local_models: Option<String>,
    /// Local-model generations run at once (others wait in line).
    #[arg(long, env = "OPENLOOP_LOCAL_POOL_SIZE")]
    pub local_pool_size: Option<usize>,
    /// auto | required: whether a local model must answer a user message with a tool call.
    #[arg(long, env = "OPENLOOP_LOCAL_TOOL_CHOICE")]
    pub local_tool_choice: Option<String>,
    /// json | text
    #[arg(long, env = "OPENLOOP_LOG_FORMAT")]
    pub log_format: Option<String>,
    /// Log filter (RUST_LOG syntax).
    #[arg(long, env = "OPENLOOP_LOG")]
    pub log: Option<String>,
    /// Lifetime of signed download URLs (60..86400).
    #[arg(long, env = "OPENLOOP_SIGNED_URL_TTL_SECS")]
    pub signed_url_ttl_secs: Option<u64>,
    /// Decoded upload limit in bytes (S10, F8, F9).
    #[arg(long, env = "OPENLOOP_MAX_UPLOAD_BYTES")]
    pub max_upload_bytes: Option<u64>,
    /// local | s3
    #[arg(long, env = "OPENLOOP_BLOB_STORE")]
    pub blob_store: Option<String>,
    #[arg(long, env = "OPENLOOP_S3_ENDPOINT")]
    pub s3_endpoint: Option<String>,
    #[arg(long, env = "OPENLOOP_S3_BUCKET")]
    pub s3_bucket: Option<String>,
    #[arg(long, env = "OPENLOOP_S3_REGION")]
    pub s3_region: Option<String>,
    #[arg(long, env = "OPENLOOP_S3_ACCESS_KEY_ID", hide_env_values = true)]
    pub s3_access_key_id: Option<String>,
    #[arg(long, env = "OPENLOOP_S3_SECRET_ACCESS_KEY", hide_env_values = true)]
    pub s3_secret_access_key: Option<String>,
    #[arg(long, env = "OPENLOOP_S3_PATH_STYLE")]
    pub s3_path_style: Option<bool>,
    /// Seconds an incognito session lives after its last activity.
    #[arg(long, env = "OPENLOOP_INCOGNITO_TTL_SECS")]
    pub incognito_ttl_secs: Option<u64>,
    /// Seconds of stream silence before a keep-alive comment.
    #[arg(long, env = "OPENLOOP_KEEPALIVE_SECS")]
    pub keepalive_secs: Option<u64>,
    /// Browser origins allowed to call the API (comma-separated; the MCP server refuses others).
    #[arg(long, env = "OPENLOOP_CORS_ORIGINS")]
    pub cors_origins: Option<String>,
    /// Seconds a connection may take to send a request's headers (and may stay idle between requests).
    #[arg(long, env = "OPENLOOP_HEADER_TIMEOUT_SECS")]
    pub header_timeout_secs: Option<u64>,
    /// Seconds stream events are kept after a session's last run ended.
    #[arg(long, env = "OPENLOOP_STREAM_RETENTION_SECS")]
    pub stream_retention_secs: Option<u64>,
    /// Worker tasks per process (0: this process accepts runs but never executes them).
    #[arg(long, env = "OPENLOOP_WORKERS")]
    pub workers: Option<usize>,
    /// Flow runs executed at once per process (0: flows are accepted, never executed here).
    #[arg(long, env = "OPENLOOP_FLOW_WORKERS")]
    pub flow_workers: Option<usize>,
    /// Seconds a data export's CSV stays downloadable.
    #[arg(long, env = "OPENLOOP_EXPORT_RETENTION_SECS")]
    pub export_retention_secs: Option<u64>,
    /// Webhook endpoint for session, flow-run and export events (§11).
    #[arg(long, env = "OPENLOOP_WEBHOOK_URL")]
    pub webhook_url: Option<String>,
    /// HMAC secret of the Openloop-Signature header (required with a webhook URL).
    #[arg(long, env = "OPENLOOP_WEBHOOK_SECRET", hide_env_values = true)]
    pub webhook_secret: Option<String>,
    /// Seconds before each webhook retry (comma-separated; default 10,60,300,1800,7200).
    #[arg(long, env = "OPENLOOP_WEBHOOK_RETRY_SECS")]
    pub webhook_retry_secs: Option<String>,
    /// Job lease in seconds (renewed every third of it).
    #[arg(long, env = "OPENLOOP_LEASE_SECS")]
    pub lease_secs: Option<u64>,
    /// Interrupted attempts before a run fails.
    #[arg(long, env = "OPENLOOP_RUN_MAX_ATTEMPTS")]
    pub run_max_attempts: Option<i64>,
    #[arg(long, env = "OPENLOOP_AGENT_MAX_CONCURRENCY")]
    pub agent_max_concurrency: Option<i64>,
    #[arg(long, env = "OPENLOOP_AGENT_MAX_QUEUE")]
    pub agent_max_queue: Option<i64>,
    #[arg(long, env = "OPENLOOP_ORG_MAX_CONCURRENCY")]
    pub org_max_concurrency: Option<i64>,
    /// queue | reject
    #[arg(long, env = "OPENLOOP_CONCURRENCY_OVERFLOW")]
    pub concurrency_overflow: Option<String>,
    #[arg(long, env = "OPENLOOP_MAX_STEPS_DEFAULT")]
    pub max_steps_default: Option<u32>,
    #[arg(long, env = "OPENLOOP_MAX_STEPS_CAP")]
    pub max_steps_cap: Option<u32>,
    #[arg(long, env = "OPENLOOP_RUN_TIMEOUT_SECS")]
    pub run_timeout_secs: Option<u64>,
    #[arg(long, env = "OPENLOOP_CREDITS_PER_1K_TOKENS")]
    pub credits_per_1k_tokens: Option<f64>,
    #[arg(long, env = "OPENLOOP_SSRF_ALLOW_PRIVATE")]
    pub ssrf_allow_private: Option<bool>,
    /// Hosts, host:port or CIDRs agent HTTP tools may reach despite the SSRF policy.
    #[arg(long, env = "OPENLOOP_SSRF_ALLOWLIST")]
    pub ssrf_allowlist: Option<String>,
    /// Let users register stdio MCP servers (commands this server runs).
    #[arg(long, env = "OPENLOOP_MCP_ALLOW_STDIO")]
    pub mcp_allow_stdio: Option<bool>,
    /// Bearer token `/metrics` requires (unset: the page is open).
    #[arg(long, env = "OPENLOOP_METRICS_TOKEN", hide_env_values = true)]
    pub metrics_token: Option<String>,
    #[arg(long, env = "OPENAI_API_KEY", hide_env_values = true)]
    pub openai_api_key: Option<String>,
    #[arg(long, env = "OPENAI_BASE_URL")]
    pub openai_base_url: Option<String>,
    #[arg(long, env = "ANTHROPIC_API_KEY", hide_env_values = true)]
    pub anthropic_api_key: Option<String>,
    #[arg(long, env = "ANTHROPIC_BASE_URL")]
    pub anthropic_base_url: Option<String>,
    #[arg(long, env = "OLLAMA_HOST")]
    pub ollama_host: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ProviderFile {
    pub api_key: Option<String>,
    pub base_url: Option<String>,
    pub host: Option<String>,
}

#[derive(Debug, Default, Clone, Copy, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Price {
    pub input_per_1k: f64,
    pub output_per_1k: f64,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Providers {
    pub openai: Option<ProviderFile>,
    pub anthropic: Option<ProviderFile>,
    pub ollama: Option<ProviderFile>,
}

/// The TOML file: keys are the variable names without `OPENLOOP_`, lower-cased.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileSettings {
    pub data_dir: Option<PathBuf>,
    pub database_url: Option<String>,
    pub addr: Option<String>,
    pub extra_addrs: Option<String>,
    pub public_url: Option<String>,
    pub bootstrap_user_id: Option<String>,
    pub bootstrap_api_key: Option<String>,
    pub bootstrap_team_id: Option<String>,
    pub bootstrap_team_api_key: Option<String>,
    pub rate_limit_requests: Option<u32>,
    pub rate_limit_window_secs: Option<u64>,
    pub rate_limit_unauth_per_min: Option<u32>,
    pub rate_limit_files_per_min: Option<u32>,
    pub trust_proxy_headers: Option<bool>,
    pub signing_keys: Option<String>,
    pub max_body_bytes: Option<usize>,
    pub default_model: Option<String>,
    pub models: Option<String>,
    pub local_models: Option<String>,
    pub local_pool_size: Option<usize>,
    pub local_tool_choice: Option<String>,
    pub log_format: Option<String>,
    pub log: Option<String>,
    pub max_upload_bytes: Option<u64>,
    pub signed_url_ttl_secs: Option<u64>,
    pub blob_store: Option<String>,
    pub s3_endpoint: Option<String>,
    pub s3_bucket: Option<String>,
    pub s3_region: Option<String>,
    pub s3_access_key_id: Option<String>,
    pub s3_secret_access_key: Option<String>,
    pub s3_path_style: Option<bool>,
    pub stream_retention_secs: Option<u64>,
    pub incognito_ttl_secs: Option<u64>,
    pub keepalive_secs: Option<u64>,
    pub cors_origins: Option<String>,
    pub header_timeout_secs: Option<u64>,
    pub workers: Option<usize>,
    pub flow_workers: Option<usize>,
    pub export_retention_secs: Option<u64>,
    pub lease_secs: Option<u64>,
    pub run_max_attempts: Option<i64>,
    pub agent_max_concurrency: Option<i64>,
    pub agent_max_queue: Option<i64>,
    pub org_max_concurrency: Option<i64>,
    pub concurrency_overflow: Option<String>,
    pub max_steps_default: Option<u32>,
    pub max_steps_cap: Option<u32>,
    pub run_timeout_secs: Option<u64>,
    pub credits_per_1k_tokens: Option<f64>,
    pub ssrf_allow_private: Option<bool>,
    pub ssrf_allowlist: Option<String>,
    pub mcp_allow_stdio: Option<bool>,
    pub metrics_token: Option<String>,
    pub providers: Option<Providers>,
    pub pricing: Option<std::collections::HashMap<String, Price>>,
}

/// Resolved settings.
#[derive(Debug, Clone)]
pub struct Settings {
    pub data_dir: PathBuf,
    pub database_url: String,
    pub addr: String,
    pub extra_addrs: Vec<String>,
    pub public_url: String,
    pub bootstrap_user_id: Option<String>,
    pub bootstrap_api_key: Option<String>,
    pub bootstrap_team_id: Option<String>,
    pub bootstrap_team_api_key: Option<String>,
    pub rate_limit_requests: u32,
    pub rate_limit_window_secs: u64,
    pub rate_limit_unauth_per_min: u32,
    pub rate_limit_files_per_min: u32,
    pub trust_proxy_headers: bool,
    pub signing_keys: Option<String>,
    pub max_body_bytes: usize,
    pub default_model: Option<String>,
    pub models: Vec<String>,
    /// GGUF files served as `local/<file stem>`.
    pub local_models: Vec<PathBuf>,
    pub local_pool_size: usize,
    pub local_tool_choice: llm::LocalToolChoice,
    pub log_format: String,
    pub log: String,
    pub openai_api_key: Option<String>,
    pub openai_base_url: Option<String>,
    pub anthropic_api_key: Option<String>,
    pub anthropic_base_url: Option<String>,
    pub ollama_host: Option<String>,
    pub runtime: engine::RuntimeConfig,
    pub max_upload_bytes: u64,
    pub signed_url_ttl_secs: u64,
    pub keepalive_secs: u64,
    pub cors_origins: Vec<String>,
    pub header_timeout_secs: u64,
    pub blobs: blobs::BlobConfig,
    pub webhook: engine::webhooks::WebhookConfig,
    pub metrics_token: Option<String>,
}

/// A provider endpoint must be an absolute http(s) URL with a host: a typo here would
/// otherwise surface only as every run failing.
fn check_http_url(name: &str, value: &str) -> Result<(), ConfigError> {
    match reqwest::Url::parse(value) {
        Ok(u) if matches!(u.scheme(), "http" | "https") && u.host_str().is_some_and(|h| !h.is_empty()) => Ok(()),
        _ => Err(ConfigError(format!("{name}: {value:?} is not an http(s) URL (e.g. https://api.openai.com/v1 or http://127.0.0.1:8000/v1)"))),
    }
}

/// A setting that failed validation: startup aborts with exit code 2.
#[derive(Debug)]
pub struct ConfigError(pub String);

impl std::fmt::Display for ConfigError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for ConfigError {}

pub fn load_file(path: Option<&Path>) -> Result<FileSettings, ConfigError> {
    let Some(path) = path else {
        return Ok(FileSettings::default());
    };
    let text = std::fs::read_to_string(path).map_err(|e| ConfigError(format!("config file {}: {e}", path.display())))?;
    toml::from_str(&text).map_err(|e| ConfigError(format!("config file {}: {e}", path.display())))
}

fn non_empty(s: Option<String>) -> Option<String> {
    s.map(|v| v.trim().to_string()).filter(|v| !v.is_empty())
}

fn split_list(s: Option<String>) -> Vec<String> {
    s.map(|v| v.split(',').map(|x| x.trim().to_string()).filter(|x| !x.is_empty()).collect()).unwrap_or_default()
}

pub fn data_location(common: &CommonArgs, file: &FileSettings) -> (PathBuf, String) {
    let data_dir = common.data_dir.clone().or_else(|| file.data_dir.clone()).unwrap_or_else(|| PathBuf::from("./openloop-data"));
    let database_url = non_empty(common.database_url.clone())
        .or_else(|| non_empty(file.database_url.clone()))
        .unwrap_or_else(|| format!("sqlite://{}", data_dir.join("openloop.db").display()));
    (data_dir, database_url)
}

impl Settings {
    pub fn resolve(common: &CommonArgs, a: ServeArgs, f: FileSettings) -> Result<Settings, ConfigError> {
        let (data_dir, database_url) = data_location(common, &f);
        let prov = f.providers.unwrap_or_default();
        let (openai, anthropic, ollama) = (prov.openai.unwrap_or_default(), prov.anthropic.unwrap_or_default(), prov.ollama.unwrap_or_default());
        let addr = non_empty(a.addr).or(non_empty(f.addr)).unwrap_or_else(|| "127.0.0.1:8765".into());
        if addr.parse::<std::net::SocketAddr>().is_err() {
            return Err(ConfigError(format!("OPENLOOP_ADDR: {addr:?} is not host:port (e.g. 127.0.0.1:8765)")));
        }
        let extra_addrs = split_list(a.extra_addrs.or(f.extra_addrs));
        for x in &extra_addrs {
            if x.parse::<std::net::SocketAddr>().is_err() {
                return Err(ConfigError(format!("OPENLOOP_EXTRA_ADDRS: {x:?} is not host:port")));
            }
        }
        let public_url = non_empty(a.public_url).or(non_empty(f.public_url)).map(|u| u.trim_end_matches('/').to_string());
        if let Some(u) = &public_url {
            if !(u.starts_with("http://") || u.starts_with("https://")) {
                return Err(ConfigError(format!("OPENLOOP_PUBLIC_URL: {u:?} must start with http:// or https://")));
            }
        }
        let d = engine::RuntimeConfig::default();
        let cores = std::thread::available_parallelism().map(|n| n.get()).unwrap_or(2);
        let overflow = non_empty(a.concurrency_overflow).or(non_empty(f.concurrency_overflow)).unwrap_or_else(|| "queue".into());
        if !["queue", "reject"].contains(&overflow.as_str()) {
            return Err(ConfigError(format!("OPENLOOP_CONCURRENCY_OVERFLOW: {overflow:?} must be queue or reject")));
        }
        let org_max = a.org_max_concurrency.or(f.org_max_concurrency).unwrap_or(d.org_max_concurrency);
        let runtime = engine::RuntimeConfig {
            // Runs wait on the network (a worker is a task, not a thread): enough that a fast
            // provider keeps both cores busy (16 workers: 1,730 runs/s, 64: 2,320 on the
            // bench), and at least as many as the organization may run.
            workers: a.workers.or(f.workers).unwrap_or_else(|| (32 * cores).max(64).max(org_max.max(1) as usize)),
            flow_workers: a.flow_workers.or(f.flow_workers).unwrap_or(d.flow_workers),
            export_retention: a.export_retention_secs.or(f.export_retention_secs).map(std::time::Duration::from_secs).unwrap_or(d.export_retention),
            lease: std::time::Duration::from_secs(a.lease_secs.or(f.lease_secs).unwrap_or(30)),
            max_attempts: a.run_max_attempts.or(f.run_max_attempts).unwrap_or(d.max_attempts),
            agent_max_concurrency: a.agent_max_concurrency.or(f.agent_max_concurrency).unwrap_or(d.agent_max_concurrency),
            org_max_concurrency: org_max,
            agent_max_queue: a.agent_max_queue.or(f.agent_max_queue).unwrap_or(d.agent_max_queue),
            overflow_reject: overflow == "reject",
            max_steps_default: a.max_steps_default.or(f.max_steps_default).unwrap_or(d.max_steps_default),
            max_steps_cap: a.max_steps_cap.or(f.max_steps_cap).unwrap_or(d.max_steps_cap),
            run_timeout: std::time::Duration::from_secs(a.run_timeout_secs.or(f.run_timeout_secs).unwrap_or(1800)),
            credits_per_1k_tokens: a.credits_per_1k_tokens.or(f.credits_per_1k_tokens).unwrap_or(d.credits_per_1k_tokens),
            pricing: f.pricing.unwrap_or_default().into_iter().map(|(k, p)| (k, (p.input_per_1k, p.output_per_1k))).collect(),
            ssrf_allow_private: a.ssrf_allow_private.or(f.ssrf_allow_private).unwrap_or(false),
            ssrf_allowlist: split_list(a.ssrf_allowlist.or(f.ssrf_allowlist)),
            mcp_allow_stdio: a.mcp_allow_stdio.or(f.mcp_allow_stdio).unwrap_or(false),
            stream_retention: std::time::Duration::from_secs(a.stream_retention_secs.or(f.stream_retention_secs).unwrap_or(86400)),
            incognito_ttl: std::time::Duration::from_secs(a.incognito_ttl_secs.or(f.incognito_ttl_secs).unwrap_or(900).max(1)),
            shared_database: false,
        };
        for (name, v) in [
            ("OPENLOOP_RUN_MAX_ATTEMPTS", runtime.max_attempts),
            ("OPENLOOP_AGENT_MAX_CONCURRENCY", runtime.agent_max_concurrency),
            ("OPENLOOP_ORG_MAX_CONCURRENCY", runtime.org_max_concurrency),
            ("OPENLOOP_MAX_STEPS_DEFAULT", runtime.max_steps_default as i64),
            ("OPENLOOP_MAX_STEPS_CAP", runtime.max_steps_cap as i64),
            ("OPENLOOP_LEASE_SECS", runtime.lease.as_secs() as i64),
            ("OPENLOOP_RUN_TIMEOUT_SECS", runtime.run_timeout.as_secs() as i64),
        ] {
            if v < 1 {
                return Err(ConfigError(format!("{name} must be at least 1")));
            }
        }
        if runtime.agent_max_queue < 0 {
            return Err(ConfigError("OPENLOOP_AGENT_MAX_QUEUE must not be negative".into()));
        }
        let blob_kind = non_empty(a.blob_store).or(non_empty(f.blob_store)).unwrap_or_else(|| "local".into());
        let blobs = match blob_kind.as_str() {
            "local" => blobs::BlobConfig::Local { root: data_dir.join("blobs") },
            "s3" => {
                let bucket = non_empty(a.s3_bucket)
                    .or(non_empty(f.s3_bucket))
                    .ok_or_else(|| ConfigError("OPENLOOP_S3_BUCKET is required when OPENLOOP_BLOB_STORE=s3".into()))?;
                let endpoint = non_empty(a.s3_endpoint).or(non_empty(f.s3_endpoint));
                blobs::BlobConfig::S3 {
                    allow_http: endpoint.as_deref().is_some_and(|e| e.starts_with("http://")),
                    endpoint,
                    bucket,
                    region: non_empty(a.s3_region).or(non_empty(f.s3_region)).unwrap_or_else(|| "us-east-1".into()),
                    access_key_id: non_empty(a.s3_access_key_id).or(non_empty(f.s3_access_key_id)),
                    secret_access_key: non_empty(a.s3_secret_access_key).or(non_empty(f.s3_secret_access_key)),
                    path_style: a.s3_path_style.or(f.s3_path_style).unwrap_or(false),
                }
            }
            other => return Err(ConfigError(format!("OPENLOOP_BLOB_STORE: {other:?} must be local or s3"))),
        };
        let max_upload_bytes = a.max_upload_bytes.or(f.max_upload_bytes).unwrap_or(200 * 1024 * 1024);
        let signed_url_ttl_secs = a.signed_url_ttl_secs.or(f.signed_url_ttl_secs).unwrap_or(900);
        if !(60..=86400).contains(&signed_url_ttl_secs) {
            return Err(ConfigError("OPENLOOP_SIGNED_URL_TTL_SECS must be between 60 and 86400".into()));
        }
        let s = Settings {
            data_dir,
            database_url,
            public_url: public_url.unwrap_or_default(),
            addr,
            extra_addrs,
            bootstrap_user_id: non_empty(a.bootstrap_user_id).or(non_empty(f.bootstrap_user_id)),
            bootstrap_api_key: non_empty(a.bootstrap_api_key).or(non_empty(f.bootstrap_api_key)),
            bootstrap_team_id: non_empty(a.bootstrap_team_id).or(non_empty(f.bootstrap_team_id)),
            bootstrap_team_api_key: non_empty(a.bootstrap_team_api_key).or(non_empty(f.bootstrap_team_api_key)),
            rate_limit_requests: a.rate_limit_requests.or(f.rate_limit_requests).unwrap_or(600),
            rate_limit_window_secs: a.rate_limit_window_secs.or(f.rate_limit_window_secs).unwrap_or(60),
            rate_limit_unauth_per_min: a.rate_limit_unauth_per_min.or(f.rate_limit_unauth_per_min).unwrap_or(60),
            rate_limit_files_per_min: a.rate_limit_files_per_min.or(f.rate_limit_files_per_min).unwrap_or(300),
            trust_proxy_headers: a.trust_proxy_headers.or(f.trust_proxy_headers).unwrap_or(false),
            signing_keys: non_empty(a.signing_keys).or(non_empty(f.signing_keys)),
            max_body_bytes: a.max_body_bytes.or(f.max_body_bytes).unwrap_or(10 * 1024 * 1024),
            default_model: non_empty(a.default_model).or(non_empty(f.default_model)),
            models: split_list(a.models.or(f.models)),
            local_models: split_list(a.local_models.or(f.local_models)).into_iter().map(PathBuf::from).collect(),
            local_pool_size: a.local_pool_size.or(f.local_pool_size).unwrap_or(1),
            local_tool_choice: match non_empty(a.local_tool_choice).or(non_empty(f.local_tool_choice)) {
                None => llm::LocalToolChoice::Auto,
                Some(v) => v.parse().map_err(|e| ConfigError(format!("OPENLOOP_LOCAL_TOOL_CHOICE: {e}")))?,
            },
            log_format: non_empty(a.log_format).or(non_empty(f.log_format)).unwrap_or_else(|| "auto".into()),
            log: non_empty(a.log).or(non_empty(f.log)).unwrap_or_else(|| "info".into()),
            openai_api_key: non_empty(a.openai_api_key).or(non_empty(openai.api_key)),
            openai_base_url: non_empty(a.openai_base_url).or(non_empty(openai.base_url)),
            anthropic_api_key: non_empty(a.anthropic_api_key).or(non_empty(anthropic.api_key)),
            anthropic_base_url: non_empty(a.anthropic_base_url).or(non_empty(anthropic.base_url)),
            ollama_host: non_empty(a.ollama_host).or(non_empty(ollama.host)),
            runtime,
            max_upload_bytes,
            signed_url_ttl_secs,
            keepalive_secs: a.keepalive_secs.or(f.keepalive_secs).unwrap_or(15).max(1),
            cors_origins: split_list(a.cors_origins.or(f.cors_origins)),
            header_timeout_secs: a.header_timeout_secs.or(f.header_timeout_secs).unwrap_or(10).max(1),
            metrics_token: non_empty(a.metrics_token).or(non_empty(f.metrics_token)),
            blobs,
            webhook: {
                let url = non_empty(a.webhook_url.clone());
                let secret = non_empty(a.webhook_secret.clone());
                if url.is_some() && secret.is_none() {
                    return Err(ConfigError(
                        "OPENLOOP_WEBHOOK_SECRET is required with OPENLOOP_WEBHOOK_URL (receivers verify Openloop-Signature with it)".into(),
                    ));
                }
                if let Some(u) = &url {
                    if reqwest::Url::parse(u).map(|p| !matches!(p.scheme(), "http" | "https")).unwrap_or(true) {
                        return Err(ConfigError(format!("OPENLOOP_WEBHOOK_URL: {u:?} is not an http(s) URL")));
                    }
                }
                let retry = match non_empty(a.webhook_retry_secs.clone()) {
                    None => engine::webhooks::WebhookConfig::default_retry(),
                    Some(list) => list
                        .split(',')
                        .map(|x| x.trim().parse::<u64>().map(std::time::Duration::from_secs))
                        .collect::<Result<Vec<_>, _>>()
                        .map_err(|_| ConfigError(format!("OPENLOOP_WEBHOOK_RETRY_SECS: {list:?} must be comma-separated seconds")))?,
                };
                engine::webhooks::WebhookConfig { url, secret: secret.unwrap_or_default(), retry }
            },
        };
        s.validate()?;
        Ok(s)
    }

    fn validate(&self) -> Result<(), ConfigError> {
        if self.rate_limit_window_secs == 0 {
            return Err(ConfigError("OPENLOOP_RATE_LIMIT_WINDOW_SECS must be at least 1".into()));
        }
        if self.max_body_bytes < 1024 {
            return Err(ConfigError("OPENLOOP_MAX_BODY_BYTES must be at least 1024".into()));
        }
        if !["auto", "json", "text"].contains(&self.log_format.as_str()) {
            return Err(ConfigError(format!("OPENLOOP_LOG_FORMAT: {:?} must be auto (text on a terminal, else json), json or text", self.log_format)));
        }
        for (name, url) in [("OPENAI_BASE_URL", &self.openai_base_url), ("ANTHROPIC_BASE_URL", &self.anthropic_base_url)] {
            if let Some(u) = url {
                check_http_url(name, u)?;
            }
        }
        if let Some(h) = &self.ollama_host {
            // Ollama's own forms: `host`, `host:port` or a URL.
            let as_url = if h.contains("://") { h.clone() } else { format!("http://{h}") };
            check_http_url("OLLAMA_HOST", &as_url)
                .map_err(|_| ConfigError(format!("OLLAMA_HOST: {h:?} is not host, host:port or an http(s) URL (e.g. http://127.0.0.1:11434)")))?;
        }
        if self.bootstrap_api_key.is_some() && self.bootstrap_user_id.is_none() {
            return Err(ConfigError("OPENLOOP_BOOTSTRAP_API_KEY needs OPENLOOP_BOOTSTRAP_USER_ID".into()));
        }
        if self.bootstrap_team_api_key.is_some() && self.bootstrap_team_id.is_none() {
            return Err(ConfigError("OPENLOOP_BOOTSTRAP_TEAM_API_KEY needs OPENLOOP_BOOTSTRAP_TEAM_ID".into()));
        }
        if self.bootstrap_team_id.is_some() && self.bootstrap_user_id.is_none() {
            return Err(ConfigError("OPENLOOP_BOOTSTRAP_TEAM_ID needs OPENLOOP_BOOTSTRAP_USER_ID (the team's admin)".into()));
        }
        for (name, v) in [("OPENLOOP_BOOTSTRAP_API_KEY", &self.bootstrap_api_key), ("OPENLOOP_BOOTSTRAP_TEAM_API_KEY", &self.bootstrap_team_api_key)] {
            if let Some(k) = v {
                if !engine::tenancy::valid_secret(k) {
                    return Err(ConfigError(format!("{name} must be olk_… or at least 32 printable characters")));
                }
            }
        }
        for (name, v) in [("OPENLOOP_BOOTSTRAP_USER_ID", &self.bootstrap_user_id), ("OPENLOOP_BOOTSTRAP_TEAM_ID", &self.bootstrap_team_id)] {
            if let Some(id) = v {
                if !wire::ids::is_valid_caller_id(id) {
                    return Err(ConfigError(format!("{name}: {id:?} must match ^[A-Za-z0-9_-]{{1,128}}$")));
                }
            }
        }
        if let Some(spec) = &self.signing_keys {
            engine::Signer::parse(spec).map_err(|e| ConfigError(format!("OPENLOOP_SIGNING_KEYS: {e}")))?;
        }
        if self.local_pool_size == 0 {
            return Err(ConfigError("OPENLOOP_LOCAL_POOL_SIZE must be at least 1".into()));
        }
        for path in &self.local_models {
            if let Err(e) =
                std::fs::File::open(path).and_then(|f| f.metadata()).and_then(|m| if m.is_file() { Ok(()) } else { Err(std::io::Error::other("not a file")) })
            {
                return Err(ConfigError(format!(
                    "OPENLOOP_LOCAL_MODELS: cannot read {}: {e} (give the path of a readable .gguf model file, or remove it from --local-models)",
                    path.display()
                )));
            }
        }
        if !store::Database::supports(&self.database_url) {
            return Err(ConfigError(format!(
                "OPENLOOP_DATABASE_URL: use sqlite://PATH or postgres://USER:PASSWORD@HOST:PORT/DB (got scheme {:?})",
                self.database_url.split(':').next().unwrap_or("")
            )));
        }
        Ok(())
    }
}
