//! Why part of an object was left out of the table.

use std::fmt;

/// One invalid piece of an object, skipped instead of failing the table:
/// the object (`Service ns/name`), the field path and the reason.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{object}: {field}: {reason}")]
pub struct Skipped {
    pub object: String,
    pub field: String,
    pub reason: String,
}

/// Collects `Skipped` entries for one object.
pub(crate) struct Skips<'a> {
    object: &'a dyn fmt::Display,
    out: &'a mut Vec<Skipped>,
}

impl<'a> Skips<'a> {
    pub(crate) fn new(object: &'a dyn fmt::Display, out: &'a mut Vec<Skipped>) -> Self {
        Skips { object, out }
    }

    pub(crate) fn push(&mut self, field: impl Into<String>, reason: impl Into<String>) {
        self.out.push(Skipped {
            object: self.object.to_string(),
            field: field.into(),
            reason: reason.into(),
        });
    }
}

/// `Kind ns/name` for messages.
pub(crate) struct ObjectRef<'a> {
    pub kind: &'static str,
    pub namespace: &'a str,
    pub name: &'a str,
}

impl fmt::Display for ObjectRef<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.namespace.is_empty() {
            write!(f, "{} {}", self.kind, self.name)
        } else {
            write!(f, "{} {}/{}", self.kind, self.namespace, self.name)
        }
    }
}
