//! Timestamp formats (API.md §1.5). Stored values are microseconds since the Unix epoch.

use chrono::{DateTime, SecondsFormat, Utc};

pub type Micros = i64;

pub fn now_micros() -> Micros {
    Utc::now().timestamp_micros()
}

fn to_dt(us: Micros) -> DateTime<Utc> {
    DateTime::from_timestamp_micros(us).unwrap_or_default()
}

/// v1 resources: `2026-05-15T14:32:00.123456Z`.
pub fn v1(us: Micros) -> String {
    to_dt(us).to_rfc3339_opts(SecondsFormat::Micros, true)
}

/// Legacy endpoints: `2026-03-05T10:30:00.000000+00:00`.
pub fn legacy(us: Micros) -> String {
    to_dt(us).format("%Y-%m-%dT%H:%M:%S%.6f+00:00").to_string()
}

/// Legacy message `timestamp`: microseconds, no offset.
pub fn legacy_naive(us: Micros) -> String {
    to_dt(us).format("%Y-%m-%dT%H:%M:%S%.6f").to_string()
}

/// Parse any RFC 3339 / ISO 8601 input; no offset means UTC; a bare date is midnight UTC.
pub fn parse(input: &str) -> Option<Micros> {
    let s = input.trim();
    if let Ok(dt) = DateTime::parse_from_rfc3339(s) {
        return Some(dt.timestamp_micros());
    }
    for fmt in ["%Y-%m-%dT%H:%M:%S%.f", "%Y-%m-%dT%H:%M:%S", "%Y-%m-%d %H:%M:%S%.f", "%Y-%m-%d %H:%M:%S"] {
        if let Ok(ndt) = chrono::NaiveDateTime::parse_from_str(s, fmt) {
            return Some(ndt.and_utc().timestamp_micros());
        }
    }
    chrono::NaiveDate::parse_from_str(s, "%Y-%m-%d").ok().and_then(|d| d.and_hms_opt(0, 0, 0)).map(|ndt| ndt.and_utc().timestamp_micros())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats_match_the_seed() {
        let us = parse("2026-03-05T10:30:00Z").unwrap();
        assert_eq!(legacy(us), "2026-03-05T10:30:00.000000+00:00");
        assert_eq!(legacy_naive(us), "2026-03-05T10:30:00.000000");
        assert_eq!(v1(us + 123456), "2026-03-05T10:30:00.123456Z");
        assert_eq!(parse("2026-03-05"), Some(us - 37_800_000_000));
    }
}
