//! Identifier formats (API.md §1.4).

use rand::Rng;

const BASE62: &[u8] = b"0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";

/// `<prefix>_<22 base62 chars>`: 9 characters of the creation time in microseconds (so ids
/// sort by creation), then 13 from a cryptographic RNG (77 bits). Time-ordered ids keep each
/// index's inserts on its right-most pages: random ids made every insert read and rewrite a
/// different index page (a tenth of the SQLite writer's time under load).
pub fn new_id(prefix: &str) -> String {
    let micros = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_micros()).unwrap_or(0);
    new_id_at(prefix, micros)
}

fn new_id_at(prefix: &str, micros: u128) -> String {
    const TIME_CHARS: usize = 9;
    let mut s = String::with_capacity(prefix.len() + 23);
    s.push_str(prefix);
    s.push('_');
    // 62^9 µs is ~429 years (to 2399); the digits are fixed-width, most significant first, and
    // BASE62 is in ASCII order, so string order is time order.
    let mut digits = [b'0'; TIME_CHARS];
    let mut t = micros;
    for d in digits.iter_mut().rev() {
        *d = BASE62[(t % 62) as usize];
        t /= 62;
    }
    s.extend(digits.iter().map(|&b| b as char));
    s.push_str(&random_base62(22 - TIME_CHARS));
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

    #[test]
    fn ids_sort_by_creation_time_and_stay_unique() {
        let (a, b) = (new_id_at("run", 1_796_000_000_000_000), new_id_at("run", 1_796_000_000_000_001));
        assert!(a < b, "{a} < {b}");
        assert_eq!(a.len(), 26);
        let later = new_id_at("run", 1_800_000_000_000_000);
        assert!(b < later);
        // Same microsecond: the random part still tells them apart.
        let same: std::collections::HashSet<String> = (0..1000).map(|_| new_id_at("run", 1)).collect();
        assert_eq!(same.len(), 1000);
        assert!(new_id("run") > a);
    }
}
