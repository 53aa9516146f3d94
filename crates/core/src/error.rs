use ferrovirt_api::{ErrorBody, ErrorDetails};

/// The class of an error; decides the HTTP status.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorKind {
    /// The request is malformed or a field is invalid (400).
    Validation,
    /// The client may not do this (403).
    Forbidden,
    /// The named object does not exist (404).
    NotFound,
    /// The request conflicts with the current state (409).
    Conflict,
    /// Something on the host failed (500).
    Internal,
}

impl ErrorKind {
    pub fn status(self) -> u16 {
        match self {
            Self::Validation => 400,
            Self::Forbidden => 403,
            Self::NotFound => 404,
            Self::Conflict => 409,
            Self::Internal => 500,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Validation => "validation",
            Self::Forbidden => "forbidden",
            Self::NotFound => "not_found",
            Self::Conflict => "conflict",
            Self::Internal => "internal",
        }
    }
}

/// A user-facing error: a sentence naming the object, a kind, and for
/// validation errors the path of the offending field.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct Error {
    pub kind: ErrorKind,
    pub message: String,
    pub field: Option<String>,
}

impl Error {
    pub fn validation(field: impl Into<String>, message: impl Into<String>) -> Self {
        let field = field.into();
        Self {
            kind: ErrorKind::Validation,
            message: format!("{field}: {}", message.into()),
            field: Some(field),
        }
    }

    /// A malformed request body, not tied to one field.
    pub fn bad_request(message: impl Into<String>) -> Self {
        Self {
            kind: ErrorKind::Validation,
            message: message.into(),
            field: None,
        }
    }

    pub fn forbidden(message: impl Into<String>) -> Self {
        Self {
            kind: ErrorKind::Forbidden,
            message: message.into(),
            field: None,
        }
    }

    pub fn not_found(message: impl Into<String>) -> Self {
        Self {
            kind: ErrorKind::NotFound,
            message: message.into(),
            field: None,
        }
    }

    pub fn conflict(message: impl Into<String>) -> Self {
        Self {
            kind: ErrorKind::Conflict,
            message: message.into(),
            field: None,
        }
    }

    pub fn internal(message: impl Into<String>) -> Self {
        Self {
            kind: ErrorKind::Internal,
            message: message.into(),
            field: None,
        }
    }

    /// The wire form of this error.
    pub fn body(&self) -> ErrorBody {
        ErrorBody {
            error: self.message.clone(),
            code: self.kind.status(),
            details: Some(ErrorDetails {
                kind: self.kind.as_str().to_owned(),
                field: self.field.clone(),
            }),
        }
    }
}

/// Formats an error and its chain of causes as one sentence.
pub fn chain(err: &dyn std::error::Error) -> String {
    let mut out = err.to_string();
    let mut cur = err.source();
    while let Some(cause) = cur {
        out.push_str(": ");
        out.push_str(&cause.to_string());
        cur = cause.source();
    }
    out
}
