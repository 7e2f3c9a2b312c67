//! Ollama, through its OpenAI-compatible API at `{OLLAMA_HOST}/v1` (no key).

use crate::http::{self, HttpOptions};
use crate::openai::OpenAiClient;

/// Ollama's default port, used when a host without scheme has no port.
pub const DEFAULT_PORT: u16 = 11434;

/// Turns an `OLLAMA_HOST` value (`127.0.0.1`, `localhost:11434`,
/// `http://gpu-box:11434/`) into a base URL without trailing slash.
pub fn normalize_host(host: &str) -> String {
    let host = host.trim().trim_end_matches('/');
    if host.contains("://") {
        return host.to_string();
    }
    let authority = host.split('/').next().unwrap_or(host);
    let has_port = match authority.rsplit_once(':') {
        // `[::1]` has colons but no port unless `]:port`.
        Some((h, p)) => !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit()) && (!h.contains(':') || h.ends_with(']')),
        None => false,
    };
    if has_port {
        format!("http://{host}")
    } else {
        let rest = &host[authority.len()..];
        format!("http://{authority}:{DEFAULT_PORT}{rest}")
    }
}

/// The OpenAI-compatible base URL for an Ollama host (`…/v1`).
pub fn base_url(host: &str) -> String {
    let base = normalize_host(host);
    if base.ends_with("/v1") {
        base
    } else {
        format!("{base}/v1")
    }
}

/// An [`OpenAiClient`] pointed at `{host}/v1`, labelled "Ollama", without key.
pub fn client(host: &str, opts: HttpOptions) -> OpenAiClient {
    client_with(http::build_client(), host, opts)
}

/// Like [`client`] with a shared `reqwest` client.
pub fn client_with(http: reqwest::Client, host: &str, opts: HttpOptions) -> OpenAiClient {
    OpenAiClient::with_client(http, "Ollama", &base_url(host), None, opts)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hosts() {
        assert_eq!(base_url("127.0.0.1"), "http://127.0.0.1:11434/v1");
        assert_eq!(base_url("localhost:1234"), "http://localhost:1234/v1");
        assert_eq!(base_url("http://box:11434/"), "http://box:11434/v1");
        assert_eq!(base_url("https://box/v1"), "https://box/v1");
        assert_eq!(base_url("[::1]:99"), "http://[::1]:99/v1");
        assert_eq!(base_url("[::1]"), "http://[::1]:11434/v1");
    }
}
