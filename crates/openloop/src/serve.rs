//! `openloop serve`: wiring, bootstrap, listeners, graceful shutdown.

use std::path::Path;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use engine::catalogue::Provider;
use engine::{Engine, KeyKind, ModelCatalogue, Signer};
use server::{AppState, Lifecycle, RateLimitConfig, ServerConfig};

use crate::config::{CommonArgs, FileSettings, ServeArgs, Settings};

pub fn ensure_data_dir(dir: &Path) -> anyhow::Result<()> {
    std::fs::create_dir_all(dir).map_err(|e| anyhow::anyhow!("cannot create the data directory {}: {e}", dir.display()))?;
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let _ = std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700));
    }
    Ok(())
}

/// Signing keys: configured, else kept in `$DATA_DIR/signing.keys` (0600).
fn signing_keys(settings: &Settings) -> anyhow::Result<Signer> {
    if let Some(spec) = &settings.signing_keys {
        return Signer::parse(spec).map_err(anyhow::Error::msg);
    }
    let path = settings.data_dir.join("signing.keys");
    if let Ok(spec) = std::fs::read_to_string(&path) {
        return Signer::parse(spec.trim()).map_err(|e| anyhow::anyhow!("{}: {e}", path.display()));
    }
    let spec = Signer::generate_spec();
    let tmp = path.with_extension("tmp");
    std::fs::write(&tmp, &spec)?;
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&tmp, std::fs::Permissions::from_mode(0o600))?;
    }
    std::fs::rename(&tmp, &path)?;
    Signer::parse(&spec).map_err(anyhow::Error::msg)
}

fn init_tracing(settings: &Settings) {
    use tracing_subscriber::EnvFilter;
    let filter = EnvFilter::try_new(&settings.log).unwrap_or_else(|_| EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt().with_env_filter(filter).with_writer(std::io::stderr);
    // `auto`: text for a person at a terminal, JSON for a log collector.
    let json = match settings.log_format.as_str() {
        "auto" => !std::io::IsTerminal::is_terminal(&std::io::stderr()),
        f => f == "json",
    };
    if json {
        let _ = builder.json().flatten_event(true).with_current_span(false).try_init();
    } else {
        let _ = builder.try_init();
    }
}

fn providers(settings: &Settings) -> llm::Providers {
    let cred = |key: &Option<String>, url: &Option<String>| llm::ProviderCredentials { api_key: key.clone(), base_url: url.clone() };
    let openai = (settings.openai_api_key.is_some() || settings.openai_base_url.is_some()).then(|| cred(&settings.openai_api_key, &settings.openai_base_url));
    let anthropic = settings.anthropic_api_key.is_some().then(|| cred(&settings.anthropic_api_key, &settings.anthropic_base_url));
    let cfg = llm::ProvidersConfig {
        openai,
        anthropic,
        ollama_host: settings.ollama_host.clone(),
        local_models: settings.local_models.clone(),
        local_pool_size: settings.local_pool_size,
        local_tool_choice: settings.local_tool_choice,
        ..Default::default()
    };
    match llm::Providers::try_new(cfg) {
        Ok(p) => p,
        Err(e) => {
            // Like an invalid setting: stop start-up with exit code 2.
            eprintln!(
                "openloop: invalid configuration: OPENLOOP_LOCAL_MODELS: {} (each entry of --local-models must be a llama-architecture GGUF model with a ChatML template, e.g. SmolLM2-135M-Instruct.Q4_1.gguf)",
                e.message
            );
            std::process::exit(2);
        }
    }
}

/// Models the configured servers report (an OpenAI-compatible server at a non-default
/// base URL, Ollama), so local servers work without extra configuration.
async fn discover_models(settings: &Settings, providers: &llm::Providers) -> Vec<String> {
    let mut out = Vec::new();
    let wait = Duration::from_secs(3);
    if settings.openai_base_url.as_deref().is_some_and(|u| u.trim_end_matches('/') != llm::openai::DEFAULT_BASE_URL.trim_end_matches('/')) {
        if let Some(c) = providers.openai() {
            match tokio::time::timeout(wait, c.list_models()).await {
                Ok(Ok(models)) => out.extend(models.into_iter().map(|m| format!("openai/{m}"))),
                Ok(Err(e)) => {
                    tracing::warn!(error = %e, "could not list the OpenAI-compatible server's models")
                }
                Err(_) => tracing::warn!("listing the OpenAI-compatible server's models timed out"),
            }
        }
    }
    if let Some(c) = providers.ollama() {
        match tokio::time::timeout(wait, c.list_models()).await {
            Ok(Ok(models)) => out.extend(models.into_iter().map(|m| format!("ollama/{m}"))),
            Ok(Err(e)) => tracing::warn!(error = %e, "could not list Ollama's models"),
            Err(_) => tracing::warn!("listing Ollama's models timed out"),
        }
    }
    out
}

fn catalogue(settings: &Settings, discovered: &[String]) -> ModelCatalogue {
    let mut available = Vec::new();
    if settings.openai_api_key.is_some() || settings.openai_base_url.is_some() {
        available.push(Provider::OpenAi);
    }
    if settings.anthropic_api_key.is_some() {
        available.push(Provider::Anthropic);
    }
    if settings.ollama_host.is_some() {
        available.push(Provider::Ollama);
    }
    if !settings.local_models.is_empty() {
        available.push(Provider::Local);
    }
    let mut extra = settings.models.clone();
    // `local/<file stem>`, as llm::LocalModels names them.
    extra.extend(settings.local_models.iter().filter_map(|p| p.file_stem()?.to_str().map(|s| format!("local/{s}"))));
    extra.extend(discovered.iter().cloned());
    ModelCatalogue::new(available, &extra, settings.default_model.clone())
}

/// An organization admin of the default organization.
fn admin_user(id: Option<String>) -> engine::tenancy::NewUser {
    engine::tenancy::NewUser { id, organization_id: None, email: None, first_name: Some("Admin".into()), last_name: None, org_admin: true }
}

/// Idempotently ensures the bootstrap identity, or creates a first admin on an empty
/// database and prints its credentials once.
async fn bootstrap(engine: &Engine, s: &Settings) -> anyhow::Result<()> {
    if let Some(user_id) = &s.bootstrap_user_id {
        let user = engine.create_user(admin_user(Some(user_id.clone()))).await?;
        if let Some(secret) = &s.bootstrap_api_key {
            engine.ensure_key(&KeyKind::Personal { user_id: user.id.clone() }, secret, Some(user.id.clone())).await?;
        }
        if let Some(team_id) = &s.bootstrap_team_id {
            let team = engine.create_team(Some(team_id.clone()), team_id, Some(user.organization_id.clone())).await?;
            engine.add_team_member(&team.id, &user.id, "admin").await?;
            if let Some(secret) = &s.bootstrap_team_api_key {
                engine.ensure_key(&KeyKind::Team { team_id: team.id.clone() }, secret, Some(user.id.clone())).await?;
            }
        }
        return Ok(());
    }
    if engine.store.count_users().await? == 0 {
        let user = engine.create_user(admin_user(None)).await?;
        let key = engine.create_key(&KeyKind::Personal { user_id: user.id.clone() }, Some("first-start".into()), None, Some(user.id.clone())).await?;
        println!("openloop: created the first organization admin (shown once, store it now):");
        println!("  GUMLOOP_USER_ID={}", user.id);
        println!("  GUMLOOP_ACCESS_TOKEN={}", key.secret);
    }
    Ok(())
}

async fn shutdown_signal(lifecycle: Arc<Lifecycle>) {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => futures::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = futures::future::pending::<()>();
    tokio::select! { _ = ctrl_c => {}, _ = term => {} }
    tracing::info!("shutdown requested: draining");
    lifecycle.start_draining();
}

pub async fn run(common: &CommonArgs, args: ServeArgs, file: FileSettings) -> ExitCode {
    let mut settings = match Settings::resolve(common, args, file) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("openloop: invalid configuration: {e}");
            return ExitCode::from(2);
        }
    };
    init_tracing(&settings);
    match serve(&mut settings).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("openloop: {e:#}");
            ExitCode::from(1)
        }
    }
}

async fn serve(settings: &mut Settings) -> anyhow::Result<()> {
    server::metrics::install();
    ensure_data_dir(&settings.data_dir)?;
    let signer = signing_keys(settings)?;
    let listener =
        tokio::net::TcpListener::bind(&settings.addr).await.map_err(|e| anyhow::anyhow!("cannot listen on {} (OPENLOOP_ADDR): {e}", settings.addr))?;
    let local = listener.local_addr()?;
    if settings.public_url.is_empty() {
        settings.public_url = format!("http://{local}");
    }
    let database = store::Database::open(&settings.database_url)
        .await
        .map_err(|e| anyhow::anyhow!("cannot open the database {}: {e}", store::redact_url(&settings.database_url)))?;
    // On a shared database other replicas hold leases: a start-up takes over none of
    // them (runs of a dead replica are reaped when their leases expire).
    settings.runtime.shared_database = database.is_shared();
    let store = database.store();
    let blob_store =
        blobs::BlobStore::open(settings.blobs.clone()).await.map_err(|e| anyhow::anyhow!("cannot open the blob store (OPENLOOP_BLOB_STORE): {e}"))?;
    let providers = providers(settings);
    let discovered = discover_models(settings, &providers).await;
    let policy = tools::SsrfPolicy::new(settings.runtime.ssrf_allow_private, &settings.runtime.ssrf_allowlist)
        .map_err(|e| anyhow::anyhow!("OPENLOOP_SSRF_ALLOWLIST: {e}"))?;
    let http = tools::WebFetch::new(policy);
    let builtin: Vec<Arc<dyn tools::Tool>> = vec![Arc::new(tools::CurrentTime::new()), Arc::new(http.clone())];
    let engine = Arc::new(
        Engine::new(
            store.clone(),
            signer,
            catalogue(settings, &discovered),
            engine::EngineConfig {
                public_url: settings.public_url.clone(),
                runtime: settings.runtime.clone(),
                signed_url_ttl_secs: settings.signed_url_ttl_secs,
                max_upload_bytes: settings.max_upload_bytes,
                incognito: false,
            },
        )
        .with_providers(providers)
        .with_tools(builtin)
        .with_blobs(blob_store.clone())
        .with_process_id(replica_id(&settings.data_dir)?),
    );
    bootstrap(&engine, settings).await?;
    let _ = engine.http.set(http);
    load_flow_files(&engine, &settings.data_dir).await;
    // Incognito sessions (§7.10): the same agents and identities, session data in an
    // in-memory database that dies with the process.
    let memory = Arc::new(
        store::sqlite::SqliteStore::open(&format!("sqlite:file:openloop-incognito-{}?mode=memory&cache=shared", wire::ids::random_base62(12)))
            .await
            .map_err(|e| anyhow::anyhow!("cannot open the in-memory incognito store: {e}"))?,
    );
    let split: Arc<dyn store::Store> = Arc::new(store::split::SplitStore { shared: store.clone(), sessions: memory });
    let mut incognito_engine =
        Engine::new(split, engine.signer.clone(), engine.catalogue.clone(), engine::EngineConfig { incognito: true, ..engine.config.clone() })
            .with_blobs(blob_store.clone());
    incognito_engine.providers = engine.providers.clone();
    incognito_engine.builtin_tools = engine.builtin_tools.clone();
    let incognito = Arc::new(incognito_engine);

    let lifecycle = Arc::new(Lifecycle::default());
    let limiter = Arc::new(
        server::ratelimit::Limiter::new(RateLimitConfig {
            requests: settings.rate_limit_requests,
            window_secs: settings.rate_limit_window_secs,
            unauth_per_min: settings.rate_limit_unauth_per_min,
            files_per_min: settings.rate_limit_files_per_min,
        })
        .with_shared_buckets(store.clone()),
    );
    let health_store = store.clone();
    let state = AppState {
        engine: engine.clone(),
        incognito: Some(incognito.clone()),
        config: Arc::new(ServerConfig {
            max_body_bytes: settings.max_body_bytes,
            max_upload_bytes: settings.max_upload_bytes,
            keepalive_secs: settings.keepalive_secs,
            rate_limits: RateLimitConfig {
                requests: settings.rate_limit_requests,
                window_secs: settings.rate_limit_window_secs,
                unauth_per_min: settings.rate_limit_unauth_per_min,
                files_per_min: settings.rate_limit_files_per_min,
            },
            trust_proxy_headers: settings.trust_proxy_headers,
            public_url: settings.public_url.clone(),
            data_dir: settings.data_dir.clone(),
            cors_origins: settings.cors_origins.clone(),
            metrics_token: settings.metrics_token.clone(),
        }),
        app: Default::default(),
        limiter: limiter.clone(),
        lifecycle: lifecycle.clone(),
        health: Arc::new(move || {
            let s = health_store.clone();
            Box::pin(async move { s.ping().await.map_err(|e| e.to_string()) })
        }),
    };
    let app = server::router(state);

    // Idle rate-limit buckets are dropped once a minute.
    let housekeeping = limiter.clone();
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(Duration::from_secs(60));
        loop {
            tick.tick().await;
            housekeeping.housekeeping().await;
        }
    });

    let (workers_stop, workers_rx) = tokio::sync::watch::channel(false);
    // Flow runs and exports: a restart takes back the leases it held (on a shared
    // database only this replica's; a dead replica's expire and are claimed by others).
    let own = engine.own_lease_prefix();
    if let Err(e) = engine.store.release_flow_leases(&own).await {
        tracing::warn!(error = %e, "releasing flow-run leases failed");
    }
    if let Err(e) = engine.store.release_export_leases(&own).await {
        tracing::warn!(error = %e, "releasing data-export leases failed");
    }
    // The global webhook endpoint is a store row the enqueueing triggers join.
    engine
        .store
        .set_global_webhook(settings.webhook.url.as_deref(), engine.now())
        .await
        .map_err(|e| anyhow::anyhow!("cannot record the webhook endpoint: {e}"))?;
    // Everything that executes work (runs, flows, exports, triggers, webhooks) runs on
    // the background runtime; the HTTP API stays on this one.
    let background = BackgroundRuntime::start()?;
    let mut workers = {
        let (engine, incognito, rx) = (engine.clone(), incognito.clone(), workers_rx.clone());
        background
            .handle()
            .spawn(async move {
                let mut w = engine.start_workers(rx.clone()).await;
                w.extend(incognito.start_workers(rx.clone()).await);
                w
            })
            .await?
    };
    {
        let _on_background = background.handle().enter();
        workers.extend(engine.start_flow_workers(workers_rx.clone()));
        workers.extend(engine.start_export_workers(workers_rx.clone()));
        // Agent triggers: schedules fire through conditional claims in the store.
        workers.extend(engine.start_trigger_scheduler(workers_rx.clone()));
        workers.extend(engine.start_webhook_dispatcher(settings.webhook.clone(), workers_rx));
    }
    #[cfg(unix)]
    {
        // SIGHUP reloads $OPENLOOP_DATA_DIR/flows/*.json.
        let (engine, dir) = (engine.clone(), settings.data_dir.clone());
        tokio::spawn(async move {
            let Ok(mut hup) = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup()) else { return };
            while hup.recv().await.is_some() {
                load_flow_files(&engine, &dir).await;
            }
        });
    }

    let mut servers = Vec::new();
    let mut listeners = vec![listener];
    for extra in &settings.extra_addrs {
        listeners.push(tokio::net::TcpListener::bind(extra).await.map_err(|e| anyhow::anyhow!("cannot listen on {extra} (OPENLOOP_EXTRA_ADDRS): {e}"))?);
    }
    let (stop_tx, _) = tokio::sync::broadcast::channel::<()>(1);
    let header_timeout = Duration::from_secs(settings.header_timeout_secs);
    for l in listeners {
        let app = app.clone();
        let mut stop = stop_tx.subscribe();
        servers.push(tokio::spawn(server::listen::serve(l, app, header_timeout, async move {
            let _ = stop.recv().await;
        })));
    }
    println!("openloop listening on http://{local}");
    tracing::info!(addr = %local, public_url = %settings.public_url, "listening");
    // Provider checks take up to a few seconds: the server already answers meanwhile.
    {
        let (settings, providers, default_model) = (settings.clone(), engine.providers.clone(), engine.catalogue.default_model.clone());
        let url = format!("http://{local}");
        tokio::spawn(async move {
            let checks = crate::banner::check_providers(&settings, &providers).await;
            crate::banner::report(&settings, &url, &checks, default_model.as_deref());
        });
    }

    shutdown_signal(lifecycle).await;
    let _ = stop_tx.send(());
    for s in servers {
        if let Err(e) = s.await {
            tracing::warn!(error = %e, "a listener task failed");
        }
    }
    // Running runs stop without writing; the next start resumes them from their last step.
    let _ = workers_stop.send(true);
    for w in workers {
        let _ = tokio::time::timeout(Duration::from_secs(5), w).await;
    }
    database.close().await;
    tracing::info!("stopped");
    Ok(())
}

/// The runtime that executes runs, flows, exports, triggers and webhooks, on threads
/// with a lower CPU priority (nice +[`BACKGROUND_NICE`]) than the HTTP API's.
///
/// Why: with runs executing as fast as the cores allow, an accept (`start_agent`, a new
/// session) competed for the CPU with every run's task, and one request in seven waited
/// 5–25 ms for a core while runs drained (measured in the server's own request timings,
/// docs/BENCHMARKS.md). A lower priority only matters while the cores are contended: an
/// idle API leaves the runs the whole machine.
struct BackgroundRuntime {
    handle: tokio::runtime::Handle,
    /// Taken when dropped.
    runtime: Option<tokio::runtime::Runtime>,
}

/// How much lower the background threads' priority is (added to the process's `nice`
/// value; raising one's own nice value needs no privilege).
const BACKGROUND_NICE: i32 = 10;

impl BackgroundRuntime {
    fn start() -> anyhow::Result<BackgroundRuntime> {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .thread_name("openloop-background")
            .enable_all()
            .on_thread_start(lower_thread_priority)
            .build()
            .map_err(|e| anyhow::anyhow!("cannot start the background runtime: {e}"))?;
        Ok(BackgroundRuntime { handle: runtime.handle().clone(), runtime: Some(runtime) })
    }

    fn handle(&self) -> &tokio::runtime::Handle {
        &self.handle
    }
}

impl Drop for BackgroundRuntime {
    fn drop(&mut self) {
        // Dropped from async code: a blocking shutdown would panic there. Its tasks have
        // stopped by then (the workers are awaited first).
        if let Some(rt) = self.runtime.take() {
            rt.shutdown_background();
        }
    }
}

/// Lowers the calling thread's CPU priority (on Linux `nice` is per thread), and its
/// writes' place in the SQLite writer's queue.
fn lower_thread_priority() {
    store::sqlite::mark_background_thread();
    #[cfg(target_os = "linux")]
    // SAFETY: getpid, getpriority and setpriority only read their integer arguments;
    // `who = 0` is the calling thread.
    unsafe {
        // Relative to the process's own nice value, read from the main thread (Linux takes
        // `who` as a thread id, and the main thread's is the process id): a thread started
        // from a background thread inherits its lowered value. 19 is the lowest priority.
        let own = libc::getpriority(libc::PRIO_PROCESS, libc::getpid() as libc::id_t);
        let _ = libc::setpriority(libc::PRIO_PROCESS, 0, (own + BACKGROUND_NICE).min(19));
    }
}

/// This replica's id, kept in `<data dir>/replica-id` so a restart owns the leases it
/// held before (see `Engine::with_process_id`).
fn replica_id(data_dir: &std::path::Path) -> anyhow::Result<String> {
    let path = data_dir.join("replica-id");
    if let Ok(id) = std::fs::read_to_string(&path) {
        let id = id.trim();
        if wire::ids::is_valid_caller_id(id) {
            return Ok(id.to_string());
        }
    }
    let id = wire::ids::new_id("rep");
    std::fs::write(&path, &id).map_err(|e| anyhow::anyhow!("cannot write {} (the replica's id): {e}", path.display()))?;
    Ok(id)
}

/// Saved items from `<data dir>/flows/*.json` (API.md §8.4): a new version only when a
/// file changed; a bad file is reported and skipped.
async fn load_flow_files(engine: &Engine, data_dir: &Path) {
    let dir = data_dir.join("flows");
    if !dir.is_dir() {
        return;
    }
    let (loaded, errors) = engine.load_flow_dir(&dir).await;
    for e in &errors {
        tracing::warn!(error = %e, "flow file skipped");
    }
    tracing::info!(dir = %dir.display(), loaded, skipped = errors.len(), "flow files loaded");
}
