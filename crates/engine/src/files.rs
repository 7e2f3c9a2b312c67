//! File names and uploads (§9.2 item 8, S10): names are checked and never silently
//! rewritten except for the documented substitutions; storage keys are server ids.

use base64::Engine as _;
use store::SessionFileRecord;
use unicode_normalization::UnicodeNormalization;
use wire::sessions::{SessionFileRequest, SessionFileResponse};
use wire::{ApiError, ErrorCode};

use crate::{db, Caller, Engine};

fn invalid_name(why: &str) -> ApiError {
    ApiError::new(ErrorCode::InvalidFileName, format!("Invalid file name: {why}.")).param("file_name")
}

/// Checks and sanitizes a client-supplied file name.
pub fn sanitize_file_name(raw: &str) -> Result<String, ApiError> {
    let t = raw.trim();
    if t.is_empty() {
        return Err(invalid_name("it is empty"));
    }
    if t.len() > 255 {
        return Err(invalid_name("it is longer than 255 bytes"));
    }
    if t.contains('/') || t.contains('\\') {
        return Err(invalid_name("it contains a path separator"));
    }
    if t == "." || t == ".." {
        return Err(invalid_name("it is a relative path component"));
    }
    if t.chars().any(|c| c.is_control()) {
        return Err(invalid_name("it contains NUL or control characters"));
    }
    let b = t.as_bytes();
    if b.len() >= 2 && b[0].is_ascii_alphabetic() && b[1] == b':' {
        return Err(invalid_name("it is a drive path"));
    }
    let mut name: String = t.nfc().map(|c| if "\"*:<>?|".contains(c) { '_' } else { c }).collect();
    let stem = name.split('.').next().unwrap_or("").to_ascii_uppercase();
    let reserved = matches!(stem.as_str(), "CON" | "PRN" | "AUX" | "NUL")
        || ((stem.starts_with("COM") || stem.starts_with("LPT")) && stem.len() == 4 && stem.as_bytes()[3].is_ascii_digit() && stem.as_bytes()[3] != b'0');
    if reserved {
        name.insert(0, '_');
    }
    Ok(name)
}

/// Media type from the extension.
pub fn media_type_for(name: &str) -> &'static str {
    let ext = name.rsplit_once('.').map(|(_, e)| e.to_ascii_lowercase()).unwrap_or_default();
    match ext.as_str() {
        "txt" | "log" => "text/plain",
        "md" | "markdown" => "text/markdown",
        "csv" => "text/csv",
        "html" | "htm" => "text/html",
        "json" => "application/json",
        "xml" => "application/xml",
        "yaml" | "yml" => "application/x-yaml",
        "pdf" => "application/pdf",
        "png" => "image/png",
        "jpg" | "jpeg" => "image/jpeg",
        "gif" => "image/gif",
        "webp" => "image/webp",
        "svg" => "image/svg+xml",
        "zip" => "application/zip",
        "docx" => "application/vnd.openxmlformats-officedocument.wordprocessingml.document",
        "xlsx" => "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
        "pptx" => "application/vnd.openxmlformats-officedocument.presentationml.presentation",
        "mp3" => "audio/mpeg",
        "mp4" => "video/mp4",
        _ => "application/octet-stream",
    }
}

/// Base64 with or without padding (standard or URL-safe alphabet).
pub fn decode_base64(s: &str) -> Option<Vec<u8>> {
    use base64::engine::general_purpose::{STANDARD, STANDARD_NO_PAD, URL_SAFE, URL_SAFE_NO_PAD};
    let s: String = s.chars().filter(|c| !c.is_ascii_whitespace()).collect();
    STANDARD.decode(&s).or_else(|_| STANDARD_NO_PAD.decode(&s)).or_else(|_| URL_SAFE.decode(&s)).or_else(|_| URL_SAFE_NO_PAD.decode(&s)).ok()
}

/// `name (n).ext` for collisions.
pub fn numbered(name: &str, n: usize) -> String {
    match name.rsplit_once('.') {
        Some((stem, ext)) if !stem.is_empty() => format!("{stem} ({n}).{ext}"),
        _ => format!("{name} ({n})"),
    }
}

impl Engine {
    /// S10: stores a base64 upload in the session's input namespace.
    pub async fn upload_session_file(&self, caller: &Caller, id: &str, req: SessionFileRequest, max_bytes: u64) -> Result<SessionFileResponse, ApiError> {
        let name = sanitize_file_name(&req.file_name)?;
        let content = req.file_content;
        let media_type = req.media_type.filter(|t| !t.trim().is_empty()).unwrap_or_else(|| media_type_for(&name).to_string());
        let s = self.session_for_use(caller, id).await?;
        let bytes =
            decode_base64(&content).ok_or_else(|| ApiError::new(ErrorCode::InvalidFileContent, "file_content is not valid base64.").param("file_content"))?;
        if bytes.len() as u64 > max_bytes {
            return Err(ApiError::new(ErrorCode::FileTooLarge, format!("The decoded file is larger than {max_bytes} bytes."))
                .param("file_content")
                .detail("limit", max_bytes));
        }
        let blobs = self.blobs.as_ref().ok_or_else(ApiError::internal)?;
        let key = format!("sessions/{}/inputs/{}", s.id, wire::ids::new_id("file"));
        let size = bytes.len() as i64;
        blobs.put(&key, bytes::Bytes::from(bytes)).await.map_err(crate::blob_err)?;
        let existing = self.store.session_files(&s.id).await.map_err(db)?;
        let mut stored = name.clone();
        let mut n = 0;
        loop {
            if !existing.iter().any(|f| f.file_name == stored) {
                let rec = SessionFileRecord {
                    session_id: s.id.clone(),
                    file_name: stored.clone(),
                    media_type: media_type.clone(),
                    size,
                    blob_key: key.clone(),
                    created_at: self.now(),
                };
                match self.store.insert_session_file(&rec).await {
                    Ok(()) => break,
                    Err(store::StoreError::Conflict(_)) => {}
                    Err(e) => return Err(db(e)),
                }
            }
            n += 1;
            stored = numbered(&name, n);
        }
        Ok(SessionFileResponse { file_name: stored, media_type: Some(media_type), size })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_checked_and_sanitized() {
        for bad in ["", "  ", "../x", "a/b", "a\\b", "..", ".", "a\0b", "tab\tname", "C:evil", &"x".repeat(256)] {
            assert!(sanitize_file_name(bad).is_err(), "{bad:?} accepted");
        }
        assert_eq!(sanitize_file_name(" report?.txt ").unwrap(), "report_.txt");
        assert_eq!(sanitize_file_name("con.txt").unwrap(), "_con.txt");
        assert_eq!(sanitize_file_name("COM1").unwrap(), "_COM1");
        assert_eq!(sanitize_file_name("COM0.txt").unwrap(), "COM0.txt");
        assert_eq!(numbered("a.txt", 1), "a (1).txt");
        assert_eq!(numbered("README", 2), "README (2)");
        assert_eq!(decode_base64("aGk"), Some(b"hi".to_vec()));
        assert!(decode_base64("***").is_none());
    }
}
