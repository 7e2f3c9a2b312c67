//! Typed request bodies: one type drives parsing, the `param` and code of every 400, the
//! OpenAPI schema and the LLM tool schema (STYLE.md, "one typed request").

use serde::de::DeserializeOwned;
use serde_json::Value;

use crate::error::{ApiError, ErrorCode};

/// A JSON request body type. Unknown fields are ignored unless the type denies them
/// (closed bodies, §1.3); `null` reads as omission.
pub trait RequestBody: DeserializeOwned {
    /// The error code for a field that does not parse (`param` is its path).
    fn error_code(_param: &str) -> ErrorCode {
        ErrorCode::InvalidRequest
    }
}

/// Parses `body` into `T`; the error names the field.
pub fn parse<T: RequestBody>(body: Value) -> Result<T, ApiError> {
    if !body.is_object() {
        return Err(ApiError::new(ErrorCode::InvalidRequest, format!("The request body must be a JSON object, not {}.", crate::schema::json_kind(&body))));
    }
    serde_path_to_error::deserialize(body).map_err(|e| {
        let (param, message) = crate::schema::error_path(e);
        let code = T::error_code(&param);
        let text = if param.is_empty() { format!("{message}.") } else { format!("{param}: {message}.") };
        let err = ApiError::new(code, text);
        if param.is_empty() {
            err
        } else {
            err.param(param)
        }
    })
}
