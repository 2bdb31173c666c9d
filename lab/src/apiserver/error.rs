//! API errors and their metav1.Status rendering, mapped to HTTP in one place.

use serde_json::{Value, json};

/// An error returned to an API client as a `metav1.Status`.
#[derive(Debug, Clone, thiserror::Error, PartialEq)]
pub enum ApiError {
    /// The object (or the resource type) does not exist.
    #[error("{resource} \"{name}\" not found")]
    NotFound { resource: String, name: String },
    /// Create of a name that is already taken.
    #[error("{resource} \"{name}\" already exists")]
    AlreadyExists { resource: String, name: String },
    /// Stale resourceVersion or an allocation clash detected on write.
    #[error("Operation cannot be fulfilled on {resource} \"{name}\": {message}")]
    Conflict {
        resource: String,
        name: String,
        message: String,
    },
    /// The object failed validation; `field` is the offending JSON path.
    #[error("{kind} \"{name}\" is invalid: {field}: {message}")]
    Invalid {
        kind: String,
        name: String,
        field: String,
        message: String,
    },
    /// The request itself is malformed (bad query, bad body, bad patch).
    #[error("{0}")]
    BadRequest(String),
    /// The verb is not supported on this path.
    #[error("the server does not allow this method on the requested resource: {0}")]
    MethodNotAllowed(String),
    /// A watch asked for a resourceVersion older than the kept history.
    #[error("too old resource version: {requested} ({oldest})")]
    Expired { requested: u64, oldest: u64 },
    /// The write is refused by policy (e.g. create in a terminating namespace).
    #[error("{0}")]
    Forbidden(String),
    /// The PATCH content type is not one we understand.
    #[error("the body of the request was in an unknown format: {0}")]
    UnsupportedMediaType(String),
}

impl ApiError {
    /// Shorthand for [`ApiError::Invalid`].
    pub fn invalid(kind: &str, name: &str, field: &str, message: impl Into<String>) -> Self {
        ApiError::Invalid {
            kind: kind.to_string(),
            name: name.to_string(),
            field: field.to_string(),
            message: message.into(),
        }
    }

    /// Shorthand for [`ApiError::NotFound`].
    pub fn not_found(resource: &str, name: &str) -> Self {
        ApiError::NotFound {
            resource: resource.to_string(),
            name: name.to_string(),
        }
    }

    /// HTTP status code.
    pub fn code(&self) -> u16 {
        match self {
            ApiError::NotFound { .. } => 404,
            ApiError::AlreadyExists { .. } | ApiError::Conflict { .. } => 409,
            ApiError::Invalid { .. } => 422,
            ApiError::BadRequest(_) => 400,
            ApiError::MethodNotAllowed(_) => 405,
            ApiError::Expired { .. } => 410,
            ApiError::Forbidden(_) => 403,
            ApiError::UnsupportedMediaType(_) => 415,
        }
    }

    /// metav1.StatusReason.
    pub fn reason(&self) -> &'static str {
        match self {
            ApiError::NotFound { .. } => "NotFound",
            ApiError::AlreadyExists { .. } => "AlreadyExists",
            ApiError::Conflict { .. } => "Conflict",
            ApiError::Invalid { .. } => "Invalid",
            ApiError::BadRequest(_) => "BadRequest",
            ApiError::MethodNotAllowed(_) => "MethodNotAllowed",
            ApiError::Expired { .. } => "Expired",
            ApiError::Forbidden(_) => "Forbidden",
            ApiError::UnsupportedMediaType(_) => "UnsupportedMediaType",
        }
    }

    /// The `metav1.Status` body.
    pub fn status(&self) -> Value {
        let mut status = json!({
            "kind": "Status",
            "apiVersion": "v1",
            "metadata": {},
            "status": "Failure",
            "message": self.to_string(),
            "reason": self.reason(),
            "code": self.code(),
        });
        if let Some(details) = self.details() {
            status["details"] = details;
        }
        status
    }

    fn details(&self) -> Option<Value> {
        match self {
            ApiError::NotFound { resource, name }
            | ApiError::AlreadyExists { resource, name }
            | ApiError::Conflict { resource, name, .. } => {
                Some(json!({"name": name, "kind": resource}))
            }
            ApiError::Invalid {
                kind,
                name,
                field,
                message,
            } => Some(json!({
                "name": name,
                "kind": kind,
                "causes": [{"reason": "FieldValueInvalid", "message": message, "field": field}],
            })),
            _ => None,
        }
    }
}
