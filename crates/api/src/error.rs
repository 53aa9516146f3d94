use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

/// The body of every error response.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct ErrorBody {
    /// A sentence saying what failed and why.
    pub error: String,
    /// The HTTP status code, repeated for clients that only see the body.
    pub code: u16,
    /// Machine-readable details, when there are any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub details: Option<ErrorDetails>,
}

/// Machine-readable part of an error.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema, PartialEq, Default)]
#[serde(deny_unknown_fields)]
pub struct ErrorDetails {
    /// Stable error kind, e.g. `validation`, `not_found`, `conflict`.
    pub kind: String,
    /// For validation errors: the path of the offending field, e.g. `disks[0].path`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub field: Option<String>,
}
