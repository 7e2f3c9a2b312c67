//! Flows over real HTTP: documents saved through the management API, runs started and
//! watched through F1–F7, the node library against the fake provider, kill (F3), bad
//! documents and inputs, and a kill -9 in the middle of a parallel flow.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use base64::Engine as _;
use serde_json::{json, Value};
use testkit::fake_llm::{FakeLlm, Reply};
use testkit::{send, Server, ADMIN_KEY, ADMIN_USER};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

fn bin() -> &'static std::path::Path {
    env!("CARGO_BIN_EXE_openloop").as_ref()
}

fn start(fake: &FakeLlm, extra: &[(&str, &str)]) -> Server {
    let url = fake.openai_base_url();
    let mut env = vec![
        ("OPENAI_BASE_URL", url.as_str()),
        ("OPENAI_API_KEY", "sk-test"),
        ("OPENLOOP_LOG", "error"),
        ("OPENLOOP_LEASE_SECS", "3"),
        ("OPENLOOP_RATE_LIMIT_REQUESTS", "1000000"),
    ];
    env.extend_from_slice(extra);
    Server::start(bin(), &env)
}

async fn agent(s: &Server) -> String {
    let (st, b, _) = send(s.post(ADMIN_KEY, "/agents", json!({"name": "helper", "model_name": "gpt-4o-mini"}))).await;
    assert_eq!(st, 201, "{b}");
    b["agent"]["id"].as_str().unwrap().to_string()
}

async fn save(s: &Server, doc: Value) -> String {
    let (st, b, _) = send(s.post(ADMIN_KEY, "/flows", json!({"document": doc}))).await;
    assert_eq!(st, 201, "{b}");
    b["saved_item_id"].as_str().unwrap().to_string()
}

async fn start_run(s: &Server, flow: &str, inputs: Value) -> String {
    let items: Vec<Value> = inputs.as_object().unwrap().iter().map(|(k, v)| json!({"input_name": k, "value": v})).collect();
    let (st, b, _) = send(s.post(ADMIN_KEY, "/start_pipeline", json!({"saved_item_id": flow, "user_id": ADMIN_USER, "pipeline_inputs": items}))).await;
    assert_eq!(st, 200, "{b}");
    assert!(b["url"].as_str().unwrap().contains("/api/v1/get_pl_run?run_id="), "{b}");
    b["run_id"].as_str().unwrap().to_string()
}

async fn run_status(s: &Server, run: &str) -> Value {
    let (st, b, _) = send(s.get(ADMIN_KEY, &format!("/get_pl_run?run_id={run}&user_id={ADMIN_USER}"))).await;
    assert_eq!(st, 200, "{b}");
    b
}

async fn wait_run(s: &Server, run: &str, states: &[&str]) -> Value {
    for _ in 0..1500 {
        let b = run_status(s, run).await;
        if states.iter().any(|x| b["state"] == *x) {
            return b;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    panic!("run {run} never reached {states:?}: {}", run_status(s, run).await);
}

#[tokio::test]
async fn a_flow_runs_every_node_kind_and_reports_through_f2_to_f7() {
    let fake = FakeLlm::start().await;
    fake.on_user_contains_always("Draft about", Reply::text("alpha\nbeta\nalpha\n").usage(10, 5));
    fake.on_user_contains_always("agent please", Reply::text("agent says hi"));
    fake.on_user_contains_always("Rate:", Reply::text("{\"score\": 7, \"why\": \"ok\"}"));
    fake.on_user_contains_always("classify me", Reply::text("Positive."));
    fake.on_user_contains_always("item:", Reply::text("seen"));
    let s = start(&fake, &[]);
    let agent = agent(&s).await;
    let doc = json!({
        "name": "Everything", "description": "one of each",
        "inputs": [{"name": "topic", "data_type": "string", "description": "what about"}, {"name": "n", "data_type": "number", "default": 2}],
        "nodes": [
            {"id": "draft", "kind": "llm", "model": "openai/gpt-4o-mini", "prompt": "Draft about {{topic}}"},
            {"id": "lines", "kind": "split", "separator": "\n", "inputs": {"text": "draft.text"}},
            {"id": "nonempty", "kind": "filter", "not_empty": true, "inputs": {"items": "lines.items"}},
            {"id": "unique", "kind": "dedupe", "inputs": {"items": "nonempty.items"}},
            {"id": "joined", "kind": "join", "separator": ",", "inputs": {"items": "unique.items"}},
            {"id": "helper", "kind": "agent", "agent_id": agent, "prompt": "agent please: {{topic}}"},
            {"id": "rate", "kind": "llm", "model": "openai/gpt-4o-mini", "prompt": "Rate: {{joined}}",
             "schema": {"type": "object", "required": ["score"], "properties": {"score": {"type": "number"}}}},
            {"id": "score", "kind": "json_path", "path": "$.score", "inputs": {"value": "rate.json"}},
            {"id": "big", "kind": "condition", "op": "gt", "value": 5, "inputs": {"value": "score.value"}},
            {"id": "yes", "kind": "template", "template": "big {{v}}", "inputs": {"v": "big.true"}},
            {"id": "no", "kind": "template", "template": "small {{v}}", "inputs": {"v": "big.false"}},
            {"id": "mood", "kind": "categorize", "model": "openai/gpt-4o-mini", "categories": ["Positive", "Negative"], "inputs": {"text": "summary.text"}},
            {"id": "summary", "kind": "template", "template": "classify me: {{helper}} / {{joined}} / n={{n}}"},
            {"id": "each", "kind": "loop", "concurrency": 2, "inputs": {"items": "unique.items"},
             "flow": {"name": "per item", "inputs": [{"name": "item"}],
                      "nodes": [{"id": "ask", "kind": "llm", "model": "openai/gpt-4o-mini", "prompt": "item: {{item}}"},
                                {"id": "fmt", "kind": "template", "template": "{{item}}={{ask}}"}],
                      "outputs": [{"output_name": "line", "from": "fmt"}]}},
            {"id": "file", "kind": "write_file", "file_name": "report-{{topic}}.txt", "inputs": {"content": "summary.text"}}
        ],
        "outputs": [
            {"output_name": "joined", "from": "joined"}, {"output_name": "agent", "from": "helper"},
            {"output_name": "verdict", "from": "yes"}, {"output_name": "other", "from": "no"},
            {"output_name": "mood", "from": "mood"}, {"output_name": "each", "from": "each"},
            {"output_name": "file", "from": "file"}, {"output_name": "n", "from": "input.n"}
        ]
    });
    let flow = save(&s, doc).await;
    let run = start_run(&s, &flow, json!({"topic": "cats"})).await;
    let b = wait_run(&s, &run, &["DONE", "FAILED"]).await;
    assert_eq!(b["state"], "DONE", "{b}");
    let out = &b["outputs"];
    assert_eq!(out["joined"], "alpha,beta");
    assert_eq!(out["agent"], "agent says hi");
    assert_eq!(out["verdict"], "big 7");
    assert_eq!(out["other"], Value::Null, "the untaken branch is skipped: {b}");
    assert_eq!(out["mood"], "Positive");
    assert_eq!(out["each"], json!(["alpha=seen", "beta=seen"]));
    assert_eq!(out["file"], "report-cats.txt");
    assert_eq!(out["n"], 2);
    let log: Vec<String> = serde_json::from_value(b["log"].clone()).unwrap();
    assert_eq!(log.first().map(String::as_str), Some("Run started"), "{log:?}");
    assert_eq!(log.last().map(String::as_str), Some("Run finished"), "{log:?}");
    assert!(log.iter().any(|l| l == "Node no skipped (its branch was not taken)"), "{log:?}");
    assert!(b["credit_cost"].as_f64().unwrap() > 0.0, "model calls cost credits: {b}");
    assert!(b["finished_ts"].as_str().unwrap().ends_with("+00:00"));

    // F10 finds the run's file by run_id.
    let resp =
        s.client.post(s.url("/download_file")).bearer_auth(ADMIN_KEY).json(&json!({"file_name": "report-cats.txt", "run_id": run})).send().await.unwrap();
    assert_eq!(resp.status(), 200);
    assert!(resp.text().await.unwrap().starts_with("classify me: agent says hi"));

    // F4–F7.
    let (_, items, _) = send(s.get(ADMIN_KEY, "/list_saved_items")).await;
    assert_eq!(items["saved_items"][0]["saved_item_id"], flow.as_str(), "{items}");
    let (_, books, _) = send(s.get(ADMIN_KEY, "/list_workbooks")).await;
    assert_eq!(books["workbooks"][0]["saved_items"][0]["saved_item_id"], flow.as_str(), "{books}");
    let (_, inputs, _) = send(s.get(ADMIN_KEY, &format!("/get_inputs?saved_item_id={flow}"))).await;
    assert_eq!(inputs["inputs"][0], json!({"name": "topic", "data_type": "string", "description": "what about"}));
    let (_, map, _) = send(s.get(ADMIN_KEY, &format!("/get_plrun_saved_item_map?saved_item_id={flow}"))).await;
    assert_eq!(map[&flow][0]["run_id"], run.as_str(), "{map}");
    assert_eq!(map[&flow][0]["state"], "DONE");
    let wb = books["workbooks"][0]["workbook_id"].as_str().unwrap().to_string();
    let (_, map, _) = send(s.get(ADMIN_KEY, &format!("/get_plrun_saved_item_map?workbook_id={wb}"))).await;
    assert_eq!(map[&flow][0]["run_id"], run.as_str(), "{map}");

    // A new version; the old one stays readable.
    let (st, v2, _) =
        send(s.client.put(s.url(&format!("/flows/{flow}"))).bearer_auth(ADMIN_KEY).json(&json!({"document": {"name": "Tiny", "nodes": []}}))).await;
    assert_eq!((st, v2["version"].as_i64()), (200, Some(2)), "{v2}");
    let (_, v1, _) = send(s.get(ADMIN_KEY, &format!("/flows/{flow}?version=1"))).await;
    assert_eq!(v1["name"], "Everything");
    let (_, versions, _) = send(s.get(ADMIN_KEY, &format!("/flows/{flow}/versions"))).await;
    assert_eq!(versions["versions"].as_array().unwrap().len(), 2);
}

#[tokio::test]
async fn bad_documents_and_inputs_get_clear_errors_naming_node_and_field() {
    let fake = FakeLlm::start().await;
    let s = start(&fake, &[]);
    let cases = [
        (json!({"name": "x", "nodes": [{"id": "a", "kind": "teleport"}]}), "document.nodes[0].kind", "unknown node kind"),
        (
            json!({"name": "x", "nodes": [{"id": "a", "kind": "template", "template": "{{b}}"}, {"id": "b", "kind": "template", "template": "{{a}}"}]}),
            "document.nodes[0]",
            "cycle",
        ),
        (json!({"name": "x", "nodes": [{"id": "a", "kind": "join", "inputs": {"items": "ghost.items"}}]}), "document.nodes[0].inputs.items", "dangling"),
        (
            json!({"name": "x", "nodes": [{"id": "a", "kind": "template", "template": "t"}, {"id": "b", "kind": "join", "inputs": {"items": "a.text"}}]}),
            "document.nodes[1].inputs.items",
            "type mismatch",
        ),
        (json!({"name": "x", "nodes": [{"id": "a", "kind": "split"}]}), "document.nodes[0].inputs.text", "missing required input"),
        (json!({"name": "x", "nodes": [{"id": "a", "kind": "llm", "model": "m"}]}), "document.nodes[0].prompt", "prompt is required"),
        (json!({"name": "x", "nodes": [{"id": "a", "kind": "template", "template": "{{who}}"}]}), "document.nodes[0].template", "placeholder"),
        (json!({"name": "x", "inputs": [{"name": "api_key"}]}), "document.inputs[0].name", "reserved"),
        (json!({"nodes": []}), "document.name", "name is required"),
        (json!({"name": "x", "edges": [{"from": "a.text", "to": "nowhere.text"}]}), "document.edges[0].to", "dangling"),
    ];
    for (doc, param, needle) in cases {
        let (st, b, _) = send(s.post(ADMIN_KEY, "/flows", json!({"document": doc}))).await;
        assert_eq!(st, 400, "{doc}: {b}");
        assert_eq!(b["error"]["code"], "invalid_request", "{b}");
        assert_eq!(b["error"]["param"], param, "{doc}: {b}");
        assert!(b["error"]["message"].as_str().unwrap().contains(needle), "{doc}: {b}");
    }
    // The node library, generated from the typed configurations.
    let (st, kinds, _) = send(s.get(ADMIN_KEY, "/flows/node-kinds")).await;
    assert_eq!(st, 200);
    let kinds = kinds["node_kinds"].as_array().unwrap();
    assert_eq!(kinds.len(), 17);
    let llm = kinds.iter().find(|k| k["kind"] == "llm").unwrap();
    assert_eq!(llm["config"]["required"], json!(["model", "prompt"]), "{llm}");
    assert_eq!(llm["outputs"][0]["port"], "text");
    // A mistyped field is named.
    let (st, b, _) =
        send(s.post(ADMIN_KEY, "/flows", json!({"document": {"name": "x", "nodes": [{"id": "a", "kind": "loop", "concurrency": "many", "flow": {}}]}}))).await;
    assert_eq!((st, b["error"]["param"].as_str()), (400, Some("document.nodes[0].concurrency")), "{b}");
    // YAML text is accepted too; validation reports every error.
    let (st, b, _) =
        send(s.post(ADMIN_KEY, "/flows/validate", json!({"document": "name: y\nnodes:\n  - id: a\n    kind: template\n    template: hi\n"}))).await;
    assert_eq!((st, &b["valid"]), (200, &json!(true)), "{b}");
    let (_, b, _) =
        send(s.post(ADMIN_KEY, "/flows/validate", json!({"document": {"name": "x", "nodes": [{"id": "a", "kind": "split"}, {"id": "b", "kind": "nope"}]}})))
            .await;
    assert_eq!(b["errors"].as_array().unwrap().len(), 2, "{b}");

    // F1 inputs.
    let flow = save(
        &s,
        json!({"name": "f", "inputs": [{"name": "doc", "data_type": "file"}], "nodes": [{"id": "t", "kind": "template", "template": "{{doc}}"}],
        "outputs": [{"output_name": "o", "from": "t"}]}),
    )
    .await;
    let f1 = |body: Value| send(s.post(ADMIN_KEY, "/start_pipeline", body));
    let (st, b, _) = f1(json!({"user_id": ADMIN_USER})).await;
    assert_eq!((st, b), (400, json!({"error": "saved_item_id is required"})));
    let (st, b, _) = f1(json!({"saved_item_id": "nope", "user_id": ADMIN_USER})).await;
    assert_eq!((st, b), (404, json!({"error": "flow_not_found"})));
    let (st, b, _) = f1(json!({"saved_item_id": flow, "pipeline_inputs": [{"input_name": "user_id", "value": "x"}]})).await;
    assert_eq!((st, &b["error"]), (400, &json!("reserved_input_name")), "{b}");
    let (st, b, _) = f1(json!({"saved_item_id": flow, "pipeline_inputs": "doc=1"})).await;
    assert_eq!((st, &b["error"]), (400, &json!("invalid_pipeline_inputs")), "{b}");
    let (st, b, _) = f1(json!({"saved_item_id": flow, "pipeline_inputs": [{"input_name": "doc", "value": "missing.txt"}]})).await;
    assert_eq!((st, &b["error"]), (400, &json!("file_not_found")), "{b}");
    // A file input reads the uploaded file's text (F8).
    let (st, _, _) = send(s.post(ADMIN_KEY, "/upload_file", json!({"file_name": "in.txt", "file_content": "aGVsbG8gZmlsZQ=="}))).await;
    assert_eq!(st, 200);
    let run = start_run(&s, &flow, json!({"doc": "in.txt"})).await;
    let b = wait_run(&s, &run, &["DONE", "FAILED"]).await;
    assert_eq!(b["outputs"]["o"], "hello file", "{b}");
    // F2/F3 errors; another user's run is not found.
    let (st, b, _) = send(s.get(ADMIN_KEY, "/get_pl_run")).await;
    assert_eq!((st, b), (400, json!({"error": "run_id is required"})));
    let (st, b, _) = send(s.get(ADMIN_KEY, "/get_pl_run?run_id=run_nope")).await;
    assert_eq!((st, b), (404, json!({"error": "run_not_found"})));
    let (_, other_key) = s.new_user("org_other");
    let (st, _, _) = send(s.get(&other_key, &format!("/get_pl_run?run_id={run}"))).await;
    assert_eq!(st, 404, "another tenant's run is not found");
    let (st, _, _) = send(s.get(&other_key, &format!("/flows/{flow}"))).await;
    assert_eq!(st, 404, "another tenant's flow is not found");
}

#[tokio::test]
async fn kill_pipeline_terminates_the_run_and_cancels_its_agent_session() {
    let fake = FakeLlm::start().await;
    fake.on_user_contains_always("slow agent", Reply::hang());
    let s = start(&fake, &[]);
    let agent = agent(&s).await;
    let flow = save(&s, json!({"name": "k", "nodes": [{"id": "a", "kind": "agent", "agent_id": agent, "prompt": "slow agent"}], "outputs": [{"output_name": "o", "from": "a"}]})).await;
    let run = start_run(&s, &flow, json!({})).await;
    wait_run(&s, &run, &["RUNNING"]).await;
    // Wait until the hidden session exists, then kill.
    let sid = format!("flow-{run}-a");
    for _ in 0..200 {
        if send(s.get(ADMIN_KEY, &format!("/sessions/{sid}"))).await.0 == 200 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let (st, b, _) = send(s.post(ADMIN_KEY, "/kill_pipeline", json!({"run_id": run}))).await;
    assert_eq!((st, b), (200, json!({"success": true, "run_id": run})));
    let b = wait_run(&s, &run, &["TERMINATED"]).await;
    assert_eq!(b["log"].as_array().unwrap().last().unwrap(), "Run terminated", "{b}");
    let (_, sess, _) = send(s.get(ADMIN_KEY, &format!("/sessions/{sid}"))).await;
    assert_eq!(sess["session"]["state"], "cancelled", "{sess}");
    // Killing a terminal run changes nothing.
    let (st, _, _) = send(s.post(ADMIN_KEY, "/kill_pipeline", json!({"run_id": run}))).await;
    assert_eq!(st, 200);
    assert_eq!(run_status(&s, &run).await["state"], "TERMINATED");
}

/// A local HTTP endpoint that answers after `delay`, counting requests.
async fn slow_http(delay: Duration) -> (String, Arc<AtomicUsize>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let hits = Arc::new(AtomicUsize::new(0));
    let h = hits.clone();
    tokio::spawn(async move {
        while let Ok((mut sock, _)) = listener.accept().await {
            let h = h.clone();
            tokio::spawn(async move {
                let mut buf = [0u8; 4096];
                let _ = sock.read(&mut buf).await;
                h.fetch_add(1, Ordering::SeqCst);
                tokio::time::sleep(delay).await;
                let body = "{\"ok\": true}";
                let _ = sock
                    .write_all(
                        format!("HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}", body.len())
                            .as_bytes(),
                    )
                    .await;
            });
        }
    });
    (format!("http://{addr}/slow"), hits)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_9_mid_flow_resumes_without_repeating_finished_nodes_or_model_calls() {
    let fake = FakeLlm::start().await;
    fake.on_user_contains_always("branch one", Reply::text("one done"));
    fake.on_user_contains_always("branch two", Reply::text("two done"));
    let (slow_url, hits) = slow_http(Duration::from_secs(4)).await;
    // Outbound HTTP stays under the SSRF policy: the local endpoint is allow-listed.
    let allow = slow_url.trim_start_matches("http://").trim_end_matches("/slow").to_string();
    let mut s = start(&fake, &[("OPENLOOP_SSRF_ALLOWLIST", &allow)]);
    let agent = agent(&s).await;
    let flow = save(
        &s,
        json!({"name": "resumable", "inputs": [{"name": "x"}],
        "nodes": [
            {"id": "one", "kind": "llm", "model": "openai/gpt-4o-mini", "prompt": "branch one {{x}}"},
            {"id": "two", "kind": "agent", "agent_id": agent, "prompt": "branch two {{x}}"},
            {"id": "call", "kind": "http_request", "method": "POST", "url": slow_url, "body": "{{one}} + {{two}}"},
            {"id": "end", "kind": "template", "template": "{{one}} | {{two}} | {{call}}"}
        ],
        "outputs": [{"output_name": "o", "from": "end"}]}),
    )
    .await;
    let run = start_run(&s, &flow, json!({"x": "go"})).await;
    // Kill when both parallel model branches are committed and the HTTP node is running.
    for _ in 0..1000 {
        let b = run_status(&s, &run).await;
        if hits.load(Ordering::SeqCst) == 1 && b["log"].as_array().unwrap().iter().any(|l| l == "Node call (http_request) started") {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert_eq!(hits.load(Ordering::SeqCst), 1, "the HTTP node was running: {}", run_status(&s, &run).await);
    s.kill9();
    s.restart();
    let b = wait_run(&s, &run, &["DONE", "FAILED"]).await;
    assert_eq!(b["state"], "DONE", "{b}");
    assert_eq!(b["outputs"]["o"], "one done | two done | {\"ok\": true}");
    let log: Vec<String> = serde_json::from_value(b["log"].clone()).unwrap();
    for n in ["one", "two", "call", "end"] {
        let finished = log.iter().filter(|l| l.starts_with(&format!("Node {n} (")) && l.contains(") finished")).count();
        assert_eq!(finished, 1, "node {n} committed exactly once: {log:?}");
    }
    // Two model calls in all (the llm node, the agent's one step): none repeated.
    assert_eq!(fake.request_count(), 2, "{log:?}");
    // The interrupted HTTP node ran again (it had not committed).
    assert_eq!(hits.load(Ordering::SeqCst), 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn flow_files_load_at_start_and_on_sighup() {
    let fake = FakeLlm::start().await;
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(dir.path().join("flows")).unwrap();
    let file = dir.path().join("flows/hello.json");
    let doc = |greeting: &str| {
        json!({"saved_item_id": "hello_flow", "workbook_id": "wb_files", "workbook_name": "From files", "name": "Hello", "owner": {"user_id": ADMIN_USER},
               "inputs": [{"name": "who", "data_type": "string"}],
               "steps": [{"id": "greet", "kind": "llm", "model": "gpt-4o-mini", "prompt": format!("{greeting} {{{{who}}}}")}],
               "outputs": [{"output_name": "answer", "from": "greet"}]})
    };
    std::fs::write(&file, doc("Say hello to").to_string()).unwrap();
    std::fs::write(dir.path().join("flows/broken.json"), "{not json").unwrap();
    let url = fake.openai_base_url();
    let s = Server::start_in(bin(), dir.path(), &[("OPENAI_BASE_URL", &url), ("OPENAI_API_KEY", "sk-test"), ("OPENLOOP_LOG", "error")]);
    let run = start_run(&s, "hello_flow", json!({"who": "Ada"})).await;
    let b = wait_run(&s, &run, &["DONE", "FAILED"]).await;
    assert_eq!(b["outputs"]["answer"], "ok: Say hello to Ada", "steps run as a chain with {{{{input}}}} placeholders: {b}");
    let (_, books, _) = send(s.get(ADMIN_KEY, "/list_workbooks")).await;
    assert!(books["workbooks"].as_array().unwrap().iter().any(|w| w["workbook_id"] == "wb_files" && w["name"] == "From files"), "{books}");
    // Changed on disk, reloaded by SIGHUP: a new version.
    std::fs::write(&file, doc("Wave at").to_string()).unwrap();
    s.signal("HUP");
    let mut version = 0;
    for _ in 0..200 {
        let (_, f, _) = send(s.get(ADMIN_KEY, "/flows/hello_flow")).await;
        version = f["version"].as_i64().unwrap_or(0);
        if version == 2 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(version, 2);
    let run = start_run(&s, "hello_flow", json!({"who": "Ada"})).await;
    assert_eq!(wait_run(&s, &run, &["DONE", "FAILED"]).await["outputs"]["answer"], "ok: Wave at Ada");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cli_validates_pushes_pulls_and_runs_flows() {
    let fake = FakeLlm::start().await;
    let s = start(&fake, &[]);
    let dir = tempfile::tempdir().unwrap();
    let good = dir.path().join("good.yaml");
    std::fs::write(&good, "name: Echo\ninputs:\n  - name: who\nnodes:\n  - id: hi\n    kind: template\n    template: \"hi {{who}}\"\noutputs:\n  - output_name: greeting\n    from: hi\n").unwrap();
    let bad = dir.path().join("bad.json");
    std::fs::write(&bad, r#"{"name": "x", "nodes": [{"id": "a", "kind": "split"}]}"#).unwrap();
    let cli =
        |args: &[&str]| std::process::Command::new(bin()).args(args).env("OPENLOOP_URL", &s.base_url).env("OPENLOOP_API_KEY", ADMIN_KEY).output().unwrap();
    let out = cli(&["flows", "validate", good.to_str().unwrap()]);
    assert!(out.status.success(), "{out:?}");
    let out = cli(&["flows", "validate", bad.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("node \"a\" (nodes[0].inputs.text): missing required input"), "{out:?}");
    let out = cli(&["flows", "push", good.to_str().unwrap(), "--id", "echo_flow"]);
    assert!(out.status.success(), "{out:?}");
    let pushed: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!((pushed["saved_item_id"].as_str(), pushed["version"].as_i64()), (Some("echo_flow"), Some(1)));
    let out = cli(&["flows", "push", good.to_str().unwrap(), "--id", "echo_flow"]);
    assert_eq!(serde_json::from_slice::<Value>(&out.stdout).unwrap()["version"], 2, "pushing again saves the next version");
    let out = cli(&["flows", "pull", "echo_flow"]);
    assert_eq!(serde_json::from_slice::<Value>(&out.stdout).unwrap()["name"], "Echo");
    let out = cli(&["flows", "run", "echo_flow", "--input", "who=CLI"]);
    assert!(out.status.success(), "{out:?}");
    assert_eq!(serde_json::from_slice::<Value>(&out.stdout).unwrap(), json!({"greeting": "hi CLI"}));
    let progress = String::from_utf8_lossy(&out.stderr);
    assert!(progress.contains("Node hi (template) finished") && progress.contains("Run finished"), "{progress}");
    let out = cli(&["flows", "run", "nope"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("flow_not_found"), "{out:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn extract_subflows_web_fetch_and_failures() {
    let fake = FakeLlm::start().await;
    fake.on_user_contains_always("Ada Lovelace, 36", Reply::text("```json\n{\"name\": \"Ada Lovelace\", \"age\": 36}\n```"));
    let (page_url, _) = slow_http(Duration::from_millis(0)).await;
    let allow = page_url.trim_start_matches("http://").trim_end_matches("/slow").to_string();
    let s = start(&fake, &[("OPENLOOP_SSRF_ALLOWLIST", &allow)]);
    // A saved flow used as a subflow.
    let (st, _, _) = send(s.post(
        ADMIN_KEY,
        "/flows",
        json!({"saved_item_id": "shout", "document": {
        "name": "shout", "inputs": [{"name": "text"}],
        "nodes": [{"id": "up", "kind": "template", "template": "{{text}}!"}], "outputs": [{"output_name": "loud", "from": "up"}]}}),
    ))
    .await;
    assert_eq!(st, 201);
    let flow = save(&s, json!({"name": "mix", "inputs": [{"name": "bio"}],
        "nodes": [
            {"id": "person", "kind": "extract", "model": "gpt-4o-mini", "fields": [{"name": "name"}, {"name": "age", "type": "number"}, {"name": "city"}], "inputs": {"text": "input.bio"}},
            {"id": "name", "kind": "json_path", "path": "name", "inputs": {"value": "person.fields"}},
            {"id": "loud", "kind": "subflow", "saved_item_id": "shout", "inputs": {"text": "name.value"}},
            {"id": "inline", "kind": "subflow", "flow": {"name": "twice", "inputs": [{"name": "v"}], "nodes": [{"id": "t", "kind": "template", "template": "{{v}}{{v}}"}],
                                                          "outputs": [{"output_name": "o", "from": "t"}]}, "inputs": {"v": "input.bio"}},
            {"id": "page", "kind": "web_fetch", "url": page_url}
        ],
        "outputs": [{"output_name": "person", "from": "person"}, {"output_name": "loud", "from": "loud"}, {"output_name": "inline", "from": "inline"},
                    {"output_name": "page", "from": "page"}]}))
    .await;
    let run = start_run(&s, &flow, json!({"bio": "Ada Lovelace, 36"})).await;
    let b = wait_run(&s, &run, &["DONE", "FAILED"]).await;
    assert_eq!(b["state"], "DONE", "{b}");
    assert_eq!(b["outputs"]["person"], json!({"name": "Ada Lovelace", "age": 36, "city": null}));
    assert_eq!(b["outputs"]["loud"], json!({"loud": "Ada Lovelace!"}));
    assert_eq!(b["outputs"]["inline"], json!({"o": "Ada Lovelace, 36Ada Lovelace, 36"}));
    assert_eq!(b["outputs"]["page"], "{\"ok\": true}");

    // Failures end the run FAILED with the node and the reason as the log's last line.
    for (doc, needle) in [
        (
            json!({"name": "ssrf", "nodes": [{"id": "meta", "kind": "web_fetch", "url": "http://169.254.169.254/latest/meta-data"}]}),
            "node meta (web_fetch) failed: blocked by SSRF policy",
        ),
        (json!({"name": "missing", "nodes": [{"id": "sub", "kind": "subflow", "saved_item_id": "ghost"}]}), "node sub (subflow) failed: flow ghost not found"),
        (
            json!({"name": "nolist", "inputs": [{"name": "x", "data_type": "list"}], "nodes": [{"id": "j", "kind": "join", "inputs": {"items": "input.x"}}]}),
            "node j (join) failed: input \"items\" is a string, not a list",
        ),
        (
            json!({"name": "badagent", "nodes": [{"id": "a", "kind": "agent", "agent_id": "agt_nobody", "prompt": "hi"}]}),
            "node a (agent) failed: agent agt_nobody",
        ),
    ] {
        let f = save(&s, doc).await;
        let run = start_run(&s, &f, json!({"x": "not a list"})).await;
        let b = wait_run(&s, &run, &["DONE", "FAILED"]).await;
        assert_eq!(b["state"], "FAILED", "{b}");
        let last = b["log"].as_array().unwrap().last().unwrap().as_str().unwrap().to_string();
        assert!(last.starts_with("Run failed: ") && last.contains(needle), "{last}");
        assert!(b["finished_ts"].is_string());
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_9_mid_loop_resumes_without_calling_the_model_again_for_committed_items() {
    let fake = FakeLlm::start().await;
    // Item 3's model call is slow: the server is killed while it runs.
    fake.on_user_contains("loopitem item3", Reply::text("late").first_byte_delay(Duration::from_secs(30)));
    let mut s = start(&fake, &[]);
    let flow = save(
        &s,
        json!({"name": "loop resume", "inputs": [{"name": "xs", "data_type": "list"}],
        "nodes": [{"id": "each", "kind": "loop", "concurrency": 1, "inputs": {"items": "input.xs"},
                   "flow": {"name": "item", "inputs": [{"name": "x"}], "nodes": [{"id": "ask", "kind": "llm", "model": "gpt-4o-mini", "prompt": "loopitem {{x}}"}],
                            "outputs": [{"output_name": "o", "from": "ask"}]}}],
        "outputs": [{"output_name": "all", "from": "each"}]}),
    )
    .await;
    let xs: Vec<String> = (0..6).map(|i| format!("item{i}")).collect();
    let run = start_run(&s, &flow, json!({"xs": xs})).await;
    for _ in 0..500 {
        if fake.request_count() == 4 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert_eq!(fake.request_count(), 4, "items 0–2 done, item 3 in flight");
    tokio::time::sleep(Duration::from_millis(100)).await;
    s.kill9();
    s.restart();
    let b = wait_run(&s, &run, &["DONE", "FAILED"]).await;
    assert_eq!(b["state"], "DONE", "{b}");
    let all: Vec<String> = serde_json::from_value(b["outputs"]["all"].clone()).unwrap();
    assert_eq!(all, (0..6).map(|i| format!("ok: loopitem item{i}")).collect::<Vec<_>>());
    let asked = |item: &str| {
        fake.requests()
            .iter()
            .filter(|r| r["messages"].as_array().and_then(|m| m.last()).and_then(|m| m["content"].as_str()) == Some(&format!("loopitem {item}")))
            .count()
    };
    for i in 0..3 {
        assert_eq!(asked(&format!("item{i}")), 1, "item {i} committed before the kill is not asked again");
    }
    assert_eq!(asked("item3"), 2, "the item in flight at the kill is asked again");
    assert!(b["log"].as_array().unwrap().iter().any(|l| l == "Node each ran 6 items (3 committed before a restart)"), "{b}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn loop_file_streams_the_lines_of_an_upload_into_a_results_file_and_resumes_after_kill_9() {
    let fake = FakeLlm::start().await;
    fake.on_user_contains("fileitem line3", Reply::text("late").first_byte_delay(Duration::from_secs(30)));
    let mut s = start(&fake, &[]);
    // Six lines (one empty, one with CRLF), uploaded with F8.
    let content = "line0\nline1\r\n\nline3\nline4\nline5";
    let b64 = base64::engine::general_purpose::STANDARD.encode(content);
    let (st, b, _) = send(s.post(ADMIN_KEY, "/upload_file", json!({"file_name": "lines.txt", "file_content": b64}))).await;
    assert_eq!(st, 200, "{b}");
    let flow = save(
        &s,
        json!({"name": "file loop", "inputs": [{"name": "source", "data_type": "string"}],
        "nodes": [{"id": "each", "kind": "loop_file", "concurrency": 1, "inputs": {"file_name": "input.source"},
                   "flow": {"name": "line", "inputs": [{"name": "x"}], "nodes": [{"id": "ask", "kind": "llm", "model": "gpt-4o-mini", "prompt": "fileitem {{x}}"}],
                            "outputs": [{"output_name": "o", "from": "ask"}]}}],
        "outputs": [{"output_name": "results", "from": "each.file_name"}, {"output_name": "count", "from": "each.count"}]}),
    )
    .await;
    let run = start_run(&s, &flow, json!({"source": "lines.txt"})).await;
    for _ in 0..500 {
        if fake.request_count() == 4 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert_eq!(fake.request_count(), 4, "lines 0–2 done, line 3 in flight");
    tokio::time::sleep(Duration::from_millis(100)).await;
    s.kill9();
    s.restart();
    let b = wait_run(&s, &run, &["DONE", "FAILED"]).await;
    assert_eq!(b["state"], "DONE", "{b}");
    assert_eq!((b["outputs"]["results"].as_str(), b["outputs"]["count"].as_i64()), (Some("each-results.jsonl"), Some(6)), "{b}");
    let resp =
        s.client.post(s.url("/download_file")).bearer_auth(ADMIN_KEY).json(&json!({"file_name": "each-results.jsonl", "run_id": run})).send().await.unwrap();
    assert_eq!(resp.status(), 200);
    let text = resp.text().await.unwrap();
    let lines: Vec<String> = text.lines().map(|l| serde_json::from_str::<String>(l).unwrap()).collect();
    let want: Vec<String> = ["line0", "line1", "", "line3", "line4", "line5"].iter().map(|l| format!("ok: fileitem {l}")).collect();
    assert_eq!(lines, want, "one JSON line per input line, in order");
    let asked = |line: &str| {
        fake.requests()
            .iter()
            .filter(|r| r["messages"].as_array().and_then(|m| m.last()).and_then(|m| m["content"].as_str()) == Some(&format!("fileitem {line}")))
            .count()
    };
    assert_eq!((asked("line0"), asked("line1"), asked("line3")), (1, 1, 2), "committed lines are not asked again; the one in flight is");
    assert!(b["log"].as_array().unwrap().iter().any(|l| l == "Node each ran 6 lines of lines.txt (3 committed before a restart)"), "{b}");
    // A missing file fails the node with a message naming it.
    let run = start_run(&s, &flow, json!({"source": "nope.txt"})).await;
    let b = wait_run(&s, &run, &["DONE", "FAILED"]).await;
    assert_eq!(b["state"], "FAILED", "{b}");
    assert!(b.to_string().contains("no file named \\\"nope.txt\\\""), "{b}");
}
