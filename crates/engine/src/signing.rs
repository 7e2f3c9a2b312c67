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
}
