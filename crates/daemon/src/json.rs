//! Request bodies parsed with the path of the offending field in errors.

use axum::extract::{FromRequest, Request};
use bytes::Bytes;
use ferrovirt_core::Error;
use serde::de::DeserializeOwned;

use crate::error::ApiError;

/// Deserializes `bytes` as JSON; errors name the field path, e.g.
/// `disks[0].bus: unknown variant "usb"`.
pub fn from_slice<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, Error> {
    let de = &mut serde_json::Deserializer::from_slice(bytes);
    serde_path_to_error::deserialize(de).map_err(to_error)
}

/// Like [`from_slice`] for an already-parsed value.
pub fn from_value<T: DeserializeOwned>(value: serde_json::Value) -> Result<T, Error> {
    serde_path_to_error::deserialize(value).map_err(to_error)
}

fn to_error<E: std::fmt::Display>(e: serde_path_to_error::Error<E>) -> Error {
    let path = e.path().to_string();
    let inner = e.inner().to_string();
    // serde_json appends " at line L column C"; keep it, it helps with files.
    if path == "." || path.is_empty() {
        Error::bad_request(format!("invalid request body: {inner}"))
    } else {
        Error::validation(path, inner)
    }
}

/// Axum extractor using [`from_slice`].
#[derive(Debug)]
pub struct Json<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned> FromRequest<S> for Json<T> {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        let bytes = Bytes::from_request(req, state)
            .await
            .map_err(|e| ApiError(Error::bad_request(format!("cannot read request body: {e}"))))?;
        Ok(Self(from_slice(&bytes)?))
    }
}
