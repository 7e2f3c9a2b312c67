//! SSRF address classifier and policy (no network), `current_time`, `ToolSet`, `parse_args`.

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;

use chrono::{TimeZone, Utc};
use serde::Deserialize;
use serde_json::{json, Value};
use tools::{classify_ip, parse_args, spec_of, CurrentTime, SsrfPolicy, Tool, ToolContext, ToolError, ToolSet, WebFetch, BLOCKED_PREFIX};
use url::Url;

fn ip(s: &str) -> IpAddr {
    s.parse().unwrap()
}

#[test]
fn classifier_refuses_every_non_public_range() {
    let refused = [
        // IPv4
        ("0.0.0.0", "unspecified"),
        ("0.1.2.3", "0.0.0.0/8"),
        ("127.0.0.1", "loopback"),
        ("127.255.255.254", "loopback"),
        ("10.0.0.1", "RFC 1918"),
        ("10.255.255.255", "RFC 1918"),
        ("172.16.0.1", "RFC 1918"),
        ("172.31.255.255", "RFC 1918"),
        ("192.168.1.1", "RFC 1918"),
        ("100.64.0.1", "CGNAT"),
        ("100.127.255.255", "CGNAT"),
        ("169.254.169.254", "link-local"),
        ("169.254.0.1", "link-local"),
        ("192.0.0.8", "192.0.0.0/24"),
        ("192.0.2.1", "documentation"),
        ("198.51.100.7", "documentation"),
        ("203.0.113.9", "documentation"),
        ("198.18.0.1", "benchmarking"),
        ("224.0.0.1", "multicast"),
        ("239.255.255.250", "multicast"),
        ("255.255.255.255", "broadcast"),
        ("240.0.0.1", "reserved"),
        // IPv6
        ("::", "unspecified"),
        ("::1", "loopback"),
        ("fc00::1", "RFC 4193"),
        ("fd12:3456::1", "RFC 4193"),
        ("fe80::1", "link-local"),
        ("febf::1", "link-local"),
        ("fec0::1", "site-local"),
        ("ff02::1", "multicast"),
        ("ff0e::1", "multicast"),
        ("2001:db8::1", "documentation"),
        ("3fff::1", "documentation"),
        ("100::1", "discard"),
        // IPv4-mapped / compatible / NAT64 / 6to4 forms
        ("::ffff:127.0.0.1", "loopback"),
        ("::ffff:10.0.0.1", "RFC 1918"),
        ("::ffff:169.254.169.254", "link-local"),
        ("::ffff:100.64.0.1", "CGNAT"),
        ("::ffff:0.0.0.0", "unspecified"),
        ("::ffff:192.0.2.1", "documentation"),
        ("::127.0.0.1", "loopback"),
        ("::8.8.8.8", "IPv4-compatible"),
        ("64:ff9b::10.0.0.1", "RFC 1918"),
        ("64:ff9b::127.0.0.1", "loopback"),
        ("64:ff9b:1::1", "NAT64"),
        ("2002:a00:1::1", "RFC 1918"),
        ("2002:7f00:1::1", "loopback"),
        ("2002:a9fe:a9fe::1", "link-local"),
    ];
    for (addr, reason) in refused {
        let got = classify_ip(ip(addr));
        assert!(got.is_some_and(|r| r.contains(reason)), "{addr}: expected {reason:?}, got {got:?}");
    }

    let public = [
        "8.8.8.8",
        "1.1.1.1",
        "100.63.255.255",
        "100.128.0.0",
        "172.15.255.255",
        "172.32.0.0",
        "192.167.255.255",
        "192.169.0.0",
        "169.253.255.255",
        "198.17.255.255",
        "198.20.0.0",
        "192.0.3.1",
        "223.255.255.255",
        "2606:4700:4700::1111",
        "2001:4860:4860::8888",
        "::ffff:8.8.8.8",
        "64:ff9b::808:808",
        "2002:808:808::1",
        "2001:db9::1",
    ];
    for addr in public {
        assert_eq!(classify_ip(ip(addr)), None, "{addr} is public");
    }
}

fn check(policy: &SsrfPolicy, url: &str) -> Result<(), String> {
    policy.check_url(&Url::parse(url).unwrap())
}

fn assert_refused(result: Result<(), String>, contains: &str) {
    let err = result.expect_err("expected a refusal");
    assert!(err.starts_with(&format!("{BLOCKED_PREFIX}: ")) && err.contains(contains), "{err:?} should contain {contains:?}");
}

#[test]
fn check_url_without_dns() {
    let strict = SsrfPolicy::default();
    // Addresses in every spelling the URL parser accepts.
    for url in [
        "http://127.0.0.1/",
        "http://127.1/",
        "http://0x7f000001/",
        "http://2130706433/",
        "http://0177.0.0.1/",
        "http://[::1]/",
        "http://[::ffff:127.0.0.1]/",
        "http://[::ffff:7f00:1]/",
        "https://[0:0:0:0:0:ffff:10.0.0.1]/",
        "http://10.0.0.1/",
        "http://169.254.169.254/latest/meta-data/",
        "http://[fe80::1]/",
        "http://[fd00::1]:8443/",
        "http://0/",
        "http://100.64.1.1/",
        "http://203.0.113.1/",
        "http://[2001:db8::1]/",
        "http://255.255.255.255/",
        "http://224.0.0.1/",
    ] {
        assert_refused(check(&strict, url), "is not a public address");
    }
    // Schemes.
    assert_refused(check(&strict, "ftp://example.com/"), "scheme \"ftp\"");
    assert_refused(check(&strict, "ws://example.com/"), "scheme \"ws\"");
    // Ports.
    for url in ["http://8.8.8.8/", "https://8.8.8.8/", "http://8.8.8.8:8080/", "https://8.8.8.8:8443/", "http://example.com/", "https://example.com:443/"] {
        assert_eq!(check(&strict, url), Ok(()), "{url}");
    }
    for url in ["http://8.8.8.8:22/", "http://example.com:6379/", "https://example.com:8000/"] {
        assert_refused(check(&strict, url), "port");
    }
}

#[test]
fn allow_private_and_allowlist() {
    let private = SsrfPolicy::new::<&str>(true, &[]).unwrap();
    assert_eq!(check(&private, "http://10.0.0.1/"), Ok(()));
    assert_eq!(check(&private, "http://[::1]:8080/"), Ok(()));
    assert_refused(check(&private, "http://10.0.0.1:6379/"), "port 6379");

    let list = SsrfPolicy::new(false, &["10.0.0.0/8", "127.0.0.1:9000", "[::1]:8081", "internal.example", "cache.example:6379", "*.corp.example"]).unwrap();
    assert_eq!(check(&list, "http://10.1.2.3/"), Ok(()));
    assert_refused(check(&list, "http://10.1.2.3:9000/"), "port 9000");
    assert_refused(check(&list, "http://192.168.0.1/"), "RFC 1918");
    assert_eq!(check(&list, "http://127.0.0.1:9000/"), Ok(()));
    // An entry with a port matches only that port.
    assert_refused(check(&list, "http://127.0.0.1/"), "loopback");
    assert_refused(check(&list, "http://127.0.0.1:9001/"), "port 9001");
    assert_eq!(check(&list, "http://[::1]:8081/"), Ok(()));
    assert_refused(check(&list, "http://[::1]/"), "loopback");
    assert_eq!(check(&list, "http://cache.example:6379/"), Ok(()));
    assert_refused(check(&list, "http://other.example:6379/"), "port");

    // Host-name entries lift the private rule for addresses that name resolves to.
    assert_eq!(list.check_addr(Some("internal.example"), ip("10.9.9.9"), 80), Ok(()));
    assert_eq!(list.check_addr(Some("internal.example."), ip("127.0.0.1"), 80), Ok(()));
    assert_eq!(list.check_addr(Some("a.corp.example"), ip("192.168.1.1"), 443), Ok(()));
    assert_refused(list.check_addr(Some("corp.example"), ip("192.168.1.1"), 443), "corp.example resolves to 192.168.1.1");
    assert_refused(list.check_addr(Some("other.example"), ip("169.254.169.254"), 80), "link-local");
    // Address entries also match IPv4-mapped forms.
    assert_eq!(list.check_addr(None, ip("::ffff:10.0.0.1"), 80), Ok(()));

    // Config strings from a Vec<String>; bad entries are reported.
    let from_config: Vec<String> = vec!["example.com:8000".into()];
    assert!(SsrfPolicy::new(false, &from_config).is_ok());
    let err = SsrfPolicy::new(false, &["ok.example", "http://bad.example/"]).unwrap_err();
    assert!(err.contains("http://bad.example/"), "{err}");
}

#[tokio::test]
async fn resolve_checked_checks_resolved_addresses() {
    let strict = SsrfPolicy::default();
    let err = strict.resolve_checked(&Url::parse("http://localhost/").unwrap()).await.unwrap_err();
    assert!(err.starts_with("blocked by SSRF policy: localhost resolves to"), "{err}");

    let private = SsrfPolicy::new::<&str>(true, &[]).unwrap();
    let addr = private.resolve_checked(&Url::parse("http://localhost:8080/").unwrap()).await.unwrap();
    assert!(addr.ip().is_loopback());
    assert_eq!(addr.port(), 8080);

    let literal = private.resolve_checked(&Url::parse("https://10.0.0.1/").unwrap()).await.unwrap();
    assert_eq!(literal, "10.0.0.1:443".parse::<SocketAddr>().unwrap());

    let err = strict.resolve_checked(&Url::parse("http://no-such-host.invalid/").unwrap()).await.unwrap_err();
    assert!(err.starts_with("could not resolve host"), "{err}");
}

#[tokio::test]
async fn current_time_uses_the_injected_clock() {
    let fixed = Utc.with_ymd_and_hms(2026, 5, 15, 14, 32, 0).unwrap() + chrono::Duration::microseconds(123_456);
    let tool = CurrentTime::with_clock(Arc::new(move || fixed));
    assert_eq!(tool.name(), "current_time");
    assert!(tool.read_only());
    assert_eq!(tool.parameters(), json!({ "type": "object", "properties": {} }));
    let ctx = ToolContext::default();
    let expected = json!({ "utc": "2026-05-15T14:32:00.123456Z", "unix": 1_778_855_520 });
    assert_eq!(tool.call(json!({}), &ctx).await.unwrap(), expected);
    assert_eq!(tool.call(Value::Null, &ctx).await.unwrap(), expected);
    assert!(tool.call(json!(42), &ctx).await.is_err());

    let real = CurrentTime::new().call(json!({}), &ctx).await.unwrap();
    assert!(real["utc"].as_str().unwrap().ends_with('Z'));
    assert!((real["unix"].as_i64().unwrap() - Utc::now().timestamp()).abs() < 5);
}

struct Echo(&'static str, bool);

#[async_trait::async_trait]
impl Tool for Echo {
    fn name(&self) -> &str {
        self.0
    }
    fn description(&self) -> &str {
        "echo"
    }
    fn parameters(&self) -> Value {
        json!({ "type": "object" })
    }
    fn read_only(&self) -> bool {
        self.1
    }
    async fn call(&self, args: Value, ctx: &ToolContext) -> Result<Value, ToolError> {
        Ok(json!({ "args": args, "session": ctx.session_id }))
    }
}

#[tokio::test]
async fn tool_set_lookup_specs_and_calls() {
    let set = ToolSet::new(vec![
        Arc::new(CurrentTime::new()),
        Arc::new(WebFetch::new(SsrfPolicy::default())),
        Arc::new(Echo("echo", false)),
        Arc::new(Echo("current_time", false)), // replaces the first, keeps its position
    ]);
    assert_eq!(set.len(), 3);
    assert_eq!(set.names(), ["current_time", "web_fetch", "echo"]);
    assert_eq!(set.read_only("current_time"), Some(false));
    assert_eq!(set.read_only("web_fetch"), Some(true));
    assert_eq!(set.read_only("nope"), None);
    assert!(set.get("web_fetch").is_some());
    assert!(set.get("nope").is_none());

    let specs = set.specs();
    assert_eq!(specs.len(), 3);
    assert_eq!(specs[1].0, "web_fetch");
    assert_eq!(specs[1], spec_of(set.get("web_fetch").unwrap().as_ref()));

    let ctx = ToolContext { session_id: "sess".into(), run_id: "run".into(), user_id: "user".into() };
    let out = set.call("echo", json!({ "x": 1 }), &ctx).await.unwrap();
    assert_eq!(out, json!({ "args": { "x": 1 }, "session": "sess" }));
    let err = set.call("nope", json!({}), &ctx).await.unwrap_err();
    assert_eq!(err.to_string(), "unknown tool: nope");
}

#[test]
fn parse_args_names_the_bad_field() {
    #[derive(Debug, Deserialize)]
    #[allow(dead_code)]
    struct Args {
        name: String,
        inner: Inner,
    }
    #[derive(Debug, Deserialize)]
    #[allow(dead_code)]
    struct Inner {
        count: u32,
    }
    let err = parse_args::<Args>(json!({ "name": "x", "inner": { "count": "many" } })).unwrap_err();
    assert!(err.message.starts_with("invalid arguments: inner.count: invalid type"), "{}", err.message);
    let err = parse_args::<Args>(json!({ "inner": { "count": 1 } })).unwrap_err();
    assert_eq!(err.message, "invalid arguments: missing field `name`");
    assert!(parse_args::<Args>(json!({ "name": "x", "inner": { "count": 1 } })).is_ok());
}
