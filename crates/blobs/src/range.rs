//! HTTP `Range` header parsing (RFC 9110 §14.1.2), single byte range only.

use std::ops::Range;

/// Why a `Range` header cannot be honoured.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum RangeError {
    /// The range lies outside the representation (or asks for zero bytes): answer `416` with
    /// `Content-Range: bytes */{size}`.
    #[error("range not satisfiable")]
    Unsatisfiable,
}

/// Parses a `Range` header value against a representation of `size` bytes.
///
/// Returns the half-open byte range `[start, end)` to serve with `206`, `Ok(None)` to serve the
/// whole body with `200`, or [`RangeError::Unsatisfiable`] (answer `416`).
///
/// - `bytes=a-b` → `a..min(b + 1, size)`; `bytes=a-` → `a..size`; `bytes=-n` → the last `n`
///   bytes (all of them when `n ≥ size`).
/// - A first position at or past `size`, a zero-length suffix (`bytes=-0`) and any range of an
///   empty representation are unsatisfiable.
/// - Multiple ranges (`bytes=0-1,5-6`), another unit, and syntactically invalid values
///   (`bytes=5-3`, `bytes=x-`, missing `bytes=`) are ignored: `Ok(None)`, as RFC 9110 allows.
pub fn parse_range(header: &str, size: u64) -> Result<Option<Range<u64>>, RangeError> {
    let header = header.trim();
    let Some((unit, spec)) = header.split_once('=') else {
        return Ok(None);
    };
    if !unit.trim().eq_ignore_ascii_case("bytes") {
        return Ok(None);
    }
    if spec.contains(',') {
        return Ok(None);
    }
    let Some((first, last)) = spec.trim().split_once('-') else {
        return Ok(None);
    };
    match (parse_pos(first), parse_pos(last)) {
        // bytes=-n (suffix)
        (None, Some(n)) if first.is_empty() => {
            if n == 0 || size == 0 {
                return Err(RangeError::Unsatisfiable);
            }
            Ok(Some(size - n.min(size)..size))
        }
        // bytes=a-
        (Some(a), None) if last.is_empty() => {
            if a >= size {
                return Err(RangeError::Unsatisfiable);
            }
            Ok(Some(a..size))
        }
        // bytes=a-b
        (Some(a), Some(b)) => {
            if b < a {
                return Ok(None);
            }
            if a >= size {
                return Err(RangeError::Unsatisfiable);
            }
            Ok(Some(a..b.saturating_add(1).min(size)))
        }
        _ => Ok(None),
    }
}

/// A non-empty run of ASCII digits; values past `u64::MAX` saturate (they are past any size).
fn parse_pos(s: &str) -> Option<u64> {
    if s.is_empty() || !s.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    Some(s.parse().unwrap_or(u64::MAX))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ok(h: &str, size: u64) -> Option<Range<u64>> {
        parse_range(h, size).unwrap_or_else(|e| panic!("{h:?} over {size}: {e}"))
    }

    #[test]
    fn bounded() {
        assert_eq!(ok("bytes=0-0", 10), Some(0..1));
        assert_eq!(ok("bytes=0-9", 10), Some(0..10));
        assert_eq!(ok("bytes=2-5", 10), Some(2..6));
        assert_eq!(ok("bytes=9-9", 10), Some(9..10));
        // last position past the end is clamped
        assert_eq!(ok("bytes=5-100", 10), Some(5..10));
        assert_eq!(ok("bytes=5-99999999999999999999999", 10), Some(5..10));
    }

    #[test]
    fn open_ended() {
        assert_eq!(ok("bytes=0-", 10), Some(0..10));
        assert_eq!(ok("bytes=7-", 10), Some(7..10));
        assert_eq!(ok("bytes=9-", 10), Some(9..10));
    }

    #[test]
    fn suffix() {
        assert_eq!(ok("bytes=-1", 10), Some(9..10));
        assert_eq!(ok("bytes=-4", 10), Some(6..10));
        assert_eq!(ok("bytes=-10", 10), Some(0..10));
        assert_eq!(ok("bytes=-500", 10), Some(0..10));
    }

    #[test]
    fn unsatisfiable() {
        for h in ["bytes=10-", "bytes=10-20", "bytes=11-11", "bytes=-0", "bytes=99999999999999999999-"] {
            assert_eq!(parse_range(h, 10), Err(RangeError::Unsatisfiable), "{h}");
        }
        for h in ["bytes=0-", "bytes=0-0", "bytes=-5"] {
            assert_eq!(parse_range(h, 0), Err(RangeError::Unsatisfiable), "{h} over 0");
        }
    }

    #[test]
    fn multiple_ranges_serve_the_full_body() {
        assert_eq!(ok("bytes=0-1,5-6", 10), None);
        assert_eq!(ok("bytes=0-1, -2", 10), None);
        assert_eq!(ok("bytes=50-60,70-80", 10), None);
    }

    #[test]
    fn ignored_when_malformed_or_foreign() {
        for h in [
            "",
            "bytes",
            "bytes=",
            "bytes=-",
            "bytes=5-3",
            "bytes=a-b",
            "bytes=1-x",
            "bytes=+1-2",
            "bytes=1 -2",
            "bytes=0x1-2",
            "items=0-1",
            "0-1",
            "bytes=1-2-3",
        ] {
            assert_eq!(parse_range(h, 10), Ok(None), "{h:?}");
        }
    }

    #[test]
    fn whitespace_and_unit_case() {
        assert_eq!(ok("  bytes=1-2 ", 10), Some(1..3));
        assert_eq!(ok("Bytes=1-2", 10), Some(1..3));
        assert_eq!(ok("bytes= 1-2", 10), Some(1..3));
    }
}
