//! HMAC-SHA256 signing with rotating keys (`kid`): pagination cursors now, signed
//! artifact URLs later. The first key signs; every configured key verifies.

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use hmac::{Hmac, Mac};
use sha2::Sha256;

type HmacSha256 = Hmac<Sha256>;

#[derive(Clone)]
pub struct Signer {
    keys: Vec<(String, Vec<u8>)>,
}

impl std::fmt::Debug for Signer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never print secrets.
        f.debug_struct("Signer").field("kids", &self.keys.iter().map(|(k, _)| k).collect::<Vec<_>>()).finish()
    }
}

impl Signer {
    /// `keys` must be non-empty; each secret ≥ 32 bytes (checked by configuration).
    pub fn new(keys: Vec<(String, Vec<u8>)>) -> Self {
        Signer { keys }
    }

    /// Parses `kid:base64secret,…`.
    pub fn parse(spec: &str) -> Result<Self, String> {
        let mut keys = Vec::new();
        for part in spec.split(',').map(str::trim).filter(|p| !p.is_empty()) {
            let (kid, secret) = part.split_once(':').ok_or_else(|| format!("signing key {part:?} is not kid:base64secret"))?;
            let secret = base64::engine::general_purpose::STANDARD
                .decode(secret.trim())
                .or_else(|_| URL_SAFE_NO_PAD.decode(secret.trim()))
                .map_err(|_| format!("signing key {kid:?}: secret is not base64"))?;
            if secret.len() < 32 {
                return Err(format!("signing key {kid:?}: secret must be at least 32 bytes"));
            }
            if kid.is_empty() || !kid.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-') {
                return Err(format!("signing key id {kid:?} must be [A-Za-z0-9_-]+"));
            }
            keys.push((kid.to_string(), secret));
        }
        if keys.is_empty() {
            return Err("no signing keys".into());
        }
        Ok(Signer { keys })
    }

    /// Generates a fresh key spec `k<unix>:<base64 32 bytes>`.
    pub fn generate_spec() -> String {
        use rand::RngCore;
        let mut secret = [0u8; 32];
        rand::thread_rng().fill_bytes(&mut secret);
        format!("k{}:{}", chrono::Utc::now().timestamp(), base64::engine::general_purpose::STANDARD.encode(secret))
    }

    pub fn current_kid(&self) -> &str {
        &self.keys[0].0
    }

    fn mac(secret: &[u8], msg: &[u8]) -> HmacSha256 {
        // HMAC accepts keys of any length; this cannot fail.
        let mut mac = <HmacSha256 as Mac>::new_from_slice(secret).unwrap_or_else(|_| unreachable!("hmac takes any key length"));
        mac.update(msg);
        mac
    }

    /// Signature (base64url, no padding) of `msg` with the current key.
    pub fn sign(&self, msg: &[u8]) -> (String, String) {
        let (kid, secret) = &self.keys[0];
        (kid.clone(), URL_SAFE_NO_PAD.encode(Self::mac(secret, msg).finalize().into_bytes()))
    }

    /// Constant-time verification with the key named `kid`.
    pub fn verify(&self, kid: &str, msg: &[u8], sig_b64: &str) -> bool {
        let Some((_, secret)) = self.keys.iter().find(|(k, _)| k == kid) else {
            return false;
        };
        let Ok(sig) = URL_SAFE_NO_PAD.decode(sig_b64) else {
            return false;
        };
        Self::mac(secret, msg).verify_slice(&sig).is_ok()
    }

    /// Opaque token: base64url(payload) "." kid "." sig.
    pub fn seal(&self, payload: &[u8]) -> String {
        let body = URL_SAFE_NO_PAD.encode(payload);
        let (kid, sig) = self.sign(body.as_bytes());
        format!("{body}.{kid}.{sig}")
    }

    /// Inverse of `seal`; `None` if malformed or tampered.
    pub fn open(&self, token: &str) -> Option<Vec<u8>> {
        let mut parts = token.splitn(3, '.');
        let (body, kid, sig) = (parts.next()?, parts.next()?, parts.next()?);
        if !self.verify(kid, body.as_bytes(), sig) {
            return None;
        }
        URL_SAFE_NO_PAD.decode(body).ok()
    }

    /// The encryption key derived from a signing secret: signing and encryption never
    /// share a key, and rotating the signing keys rotates this one with them.
    fn encryption_key(secret: &[u8]) -> chacha20poly1305::Key {
        let mut key = chacha20poly1305::Key::default();
        key.copy_from_slice(&Self::mac(secret, b"openloop credentials at rest v1").finalize().into_bytes());
        key
    }

    /// Encrypts a stored credential (XChaCha20-Poly1305, random nonce) with the current
    /// key: `kid "." base64url(nonce || ciphertext)`. `context` binds the ciphertext to
    /// its owner (e.g. the MCP server it belongs to), so it cannot be moved to another.
    pub fn encrypt(&self, context: &str, plaintext: &[u8]) -> String {
        use chacha20poly1305::aead::{Aead, AeadCore, KeyInit, OsRng, Payload};
        let (kid, secret) = &self.keys[0];
        let cipher = chacha20poly1305::XChaCha20Poly1305::new(&Self::encryption_key(secret));
        let nonce = chacha20poly1305::XChaCha20Poly1305::generate_nonce(&mut OsRng);
        // Encryption with a valid key and nonce cannot fail (only oversized input could).
        let sealed = cipher.encrypt(&nonce, Payload { msg: plaintext, aad: context.as_bytes() }).unwrap_or_default();
        let mut out = nonce.to_vec();
        out.extend_from_slice(&sealed);
        format!("{kid}.{}", URL_SAFE_NO_PAD.encode(out))
    }

    /// Inverse of `encrypt` with the key named in the text; `None` if the key is gone,
    /// the text was altered or it belongs to another `context`.
    pub fn decrypt(&self, context: &str, text: &str) -> Option<Vec<u8>> {
        use chacha20poly1305::aead::{Aead, KeyInit, Payload};
        let (kid, body) = text.split_once('.')?;
        let (_, secret) = self.keys.iter().find(|(k, _)| k == kid)?;
        let raw = URL_SAFE_NO_PAD.decode(body).ok()?;
        if raw.len() < 24 {
            return None;
        }
        let (nonce, sealed) = raw.split_at(24);
        let cipher = chacha20poly1305::XChaCha20Poly1305::new(&Self::encryption_key(secret));
        cipher.decrypt(chacha20poly1305::XNonce::from_slice(nonce), Payload { msg: sealed, aad: context.as_bytes() }).ok()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seal_open_roundtrip_and_tamper() {
        let s = Signer::parse(&Signer::generate_spec()).unwrap();
        let t = s.seal(b"hello");
        assert_eq!(s.open(&t).as_deref(), Some(&b"hello"[..]));
        let mut bad = t.clone();
        bad.replace_range(0..1, if bad.starts_with('a') { "b" } else { "a" });
        assert!(s.open(&bad).is_none());
        let other = Signer::parse(&Signer::generate_spec()).unwrap();
        assert!(other.open(&t).is_none());
        assert!(Signer::parse("k1:c2hvcnQ=").is_err());
    }

    #[test]
    fn encrypt_decrypt_roundtrip_context_and_rotation() {
        let old = Signer::parse(&Signer::generate_spec()).unwrap();
        let text = old.encrypt("mcp:a", b"Bearer secret");
        assert!(!text.contains("secret"));
        assert_eq!(old.decrypt("mcp:a", &text).as_deref(), Some(&b"Bearer secret"[..]));
        // Bound to its context, and two encryptions differ (random nonce).
        assert!(old.decrypt("mcp:b", &text).is_none());
        assert_ne!(old.encrypt("mcp:a", b"Bearer secret"), text);
        // Tampering fails.
        let mut bad = text.clone();
        let last = bad.pop().unwrap();
        bad.push(if last == 'A' { 'B' } else { 'A' });
        assert!(old.decrypt("mcp:a", &bad).is_none());
        // After rotation (new first key, old still listed) old ciphertexts still open;
        // without the old key they do not.
        let old = Signer::new(vec![("old".into(), vec![2; 32])]);
        let text = old.encrypt("mcp:a", b"k");
        let rotated = Signer::new(vec![("new".into(), vec![1; 32]), ("old".into(), vec![2; 32])]);
        assert_eq!(rotated.decrypt("mcp:a", &text).as_deref(), Some(&b"k"[..]));
        assert!(rotated.encrypt("mcp:a", b"k").starts_with("new."));
        assert!(Signer::new(vec![("new".into(), vec![1; 32])]).decrypt("mcp:a", &text).is_none());
    }
}
