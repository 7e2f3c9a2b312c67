//! Keyset pagination with HMAC-sealed cursors (API.md §4). A cursor binds the route,
//! the path ids and filters, the sort, the page size and a 24 h expiry; any mismatch is
//! `400 invalid_cursor`. Ordering is total (ties broken by id), so pages never overlap.

use std::cmp::Ordering;

use serde::{Deserialize, Serialize};
use wire::{ApiError, ErrorCode};

use crate::Engine;

const CURSOR_TTL_MICROS: i64 = 24 * 3600 * 1_000_000;

pub use store::SortVal;

pub type SortKey = (SortVal, String);

#[derive(Serialize, Deserialize)]
struct CursorPayload {
    r: String,
    b: String,
    p: usize,
    k: SortKey,
    d: bool,
    x: i64,
}

/// One list request's paging parameters.
pub struct PageRequest<'a> {
    /// Route id, e.g. `"G1"`.
    pub route: &'a str,
    /// Canonical text of path ids, filters and sort.
    pub binding: String,
    pub page_size: Option<usize>,
    pub cursor: Option<&'a str>,
    /// Page size when neither `page_size` nor `cursor` is given; `None` = whole list.
    pub default_page_size: Option<usize>,
}

fn invalid_cursor(msg: &str) -> ApiError {
    ApiError::new(ErrorCode::InvalidCursor, format!("{msg} Restart the listing without cursor.")).param("cursor")
}

/// Where a page starts: its size (`None`: the whole rest) and the key it follows.
pub struct PageStart {
    pub size: Option<usize>,
    pub after: Option<SortKey>,
}

impl Engine {
    /// Opens and checks the request's cursor (route, filters, sort, size, expiry).
    pub fn page_start(&self, req: &PageRequest<'_>, desc: bool) -> Result<PageStart, ApiError> {
        match req.cursor {
            Some(token) => {
                let bytes = self.signer.open(token).ok_or_else(|| invalid_cursor("The cursor is malformed or was tampered with."))?;
                let c: CursorPayload = serde_json::from_slice(&bytes).map_err(|_| invalid_cursor("The cursor is malformed."))?;
                if c.r != req.route || c.b != req.binding || c.d != desc {
                    return Err(invalid_cursor("The cursor belongs to another listing (different endpoint, filters or sort)."));
                }
                if c.x < self.now() {
                    return Err(invalid_cursor("The cursor has expired."));
                }
                if req.page_size.is_some_and(|p| p != c.p) {
                    return Err(invalid_cursor("The cursor was issued for another page_size."));
                }
                Ok(PageStart { size: Some(c.p), after: Some(c.k) })
            }
            None => Ok(PageStart { size: req.page_size.or(req.default_page_size), after: None }),
        }
    }

    /// The sealed cursor of the page after the one ending at `last`.
    pub fn next_cursor(&self, req: &PageRequest<'_>, size: usize, last: &SortKey, desc: bool) -> Result<String, ApiError> {
        let payload = CursorPayload { r: req.route.to_string(), b: req.binding.clone(), p: size, k: last.clone(), d: desc, x: self.now() + CURSOR_TTL_MICROS };
        let bytes = serde_json::to_vec(&payload).map_err(|_| ApiError::internal())?;
        Ok(self.signer.seal(&bytes))
    }

    /// A page of rows a store query returned (at most `size + 1`, sorted): the first
    /// `size` and the cursor after them when there were more.
    pub fn page_of<T>(&self, req: &PageRequest<'_>, size: usize, mut rows: Vec<(SortKey, T)>, desc: bool) -> Result<(Vec<T>, Option<String>), ApiError> {
        let more = rows.len() > size;
        rows.truncate(size);
        let next = match (more, rows.last()) {
            (true, Some((k, _))) => Some(self.next_cursor(req, size, k, desc)?),
            _ => None,
        };
        Ok((rows.into_iter().map(|(_, t)| t).collect(), next))
    }

    /// Sorts `items` by `key` (descending if `desc`) and returns one page plus the next
    /// cursor.
    pub fn paginate<T>(&self, req: PageRequest<'_>, mut items: Vec<T>, key: impl Fn(&T) -> SortKey, desc: bool) -> Result<(Vec<T>, Option<String>), ApiError> {
        let mut keyed: Vec<(SortKey, T)> = items.drain(..).map(|t| (key(&t), t)).collect();
        keyed.sort_by(|a, b| if desc { b.0.cmp(&a.0) } else { a.0.cmp(&b.0) });

        let PageStart { size: page_size, after } = self.page_start(&req, desc)?;

        let start = match &after {
            None => 0,
            Some(k) => keyed.partition_point(|(ik, _)| {
                let ord = ik.cmp(k);
                if desc {
                    ord != Ordering::Less
                } else {
                    ord != Ordering::Greater
                }
            }),
        };
        let rest = keyed.split_off(start);
        let Some(size) = page_size else {
            return Ok((rest.into_iter().map(|(_, t)| t).collect(), None));
        };
        let more = rest.len() > size;
        let page: Vec<(SortKey, T)> = rest.into_iter().take(size).collect();
        let next = match (more, page.last()) {
            (true, Some((k, _))) => Some(self.next_cursor(&req, size, k, desc)?),
            _ => None,
        };
        Ok((page.into_iter().map(|(_, t)| t).collect(), next))
    }
}
