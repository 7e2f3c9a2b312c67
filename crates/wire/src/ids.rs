//! Identifier formats (API.md §1.4).

use rand::Rng;

const BASE62: &[u8] = b"0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";

/// `<prefix>_<22 base62 chars>` from a cryptographic RNG.
pub fn new_id(prefix: &str) -> String {
    let mut rng = rand::thread_rng();
    let mut s = String::with_capacity(prefix.len() + 23);
    s.push_str(prefix);
    s.push('_');
    for _ in 0..22 {
        s.push(BASE62[rng.gen_range(0..62)] as char);
    }
    s
}

/// Random base62 string of `len` characters (API key secrets).
pub fn random_base62(len: usize) -> String {
    let mut rng = rand::thread_rng();
    (0..len).map(|_| BASE62[rng.gen_range(0..62)] as char).collect()
}

/// Caller-supplied ids (S1 `session_id`, G2 `agent_id`): `^[A-Za-z0-9_-]{1,128}$`.
pub fn is_valid_caller_id(id: &str) -> bool {
    !id.is_empty() && id.len() <= 128 && id.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_have_prefix_and_length() {
        let id = new_id("agt");
        assert!(id.starts_with("agt_"));
        assert_eq!(id.len(), 26);
        assert!(is_valid_caller_id(&id));
        assert!(!is_valid_caller_id("a/b"));
        assert!(!is_valid_caller_id(""));
    }
}
