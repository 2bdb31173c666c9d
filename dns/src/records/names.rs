//! Domain names as the table sees them: lower-case wire format plus the
//! offset of each label, so the server can hand over the bytes it parsed
//! without building strings.

use std::fmt;

/// Longest name in wire format (RFC 1035 §2.3.4), terminating zero included.
pub const MAX_NAME: usize = 255;
/// Most labels a name of `MAX_NAME` bytes can have (root excluded).
pub const MAX_LABELS: usize = 127;

/// A lower-case query name: `wire` ends with the root label (0) and
/// `starts[i]` is the offset of label i's length byte, left to right.
#[derive(Clone, Copy)]
pub struct QueryName<'a> {
    wire: &'a [u8],
    starts: &'a [u8],
}

impl<'a> QueryName<'a> {
    /// Callers guarantee `wire` is lower-case wire format and `starts` its
    /// label offsets (the wire parser and `OwnedName` do).
    pub fn new(wire: &'a [u8], starts: &'a [u8]) -> Self {
        QueryName { wire, starts }
    }

    pub fn wire(&self) -> &'a [u8] {
        self.wire
    }

    pub fn label_count(&self) -> usize {
        self.starts.len()
    }

    /// Offset of label `i` within the wire name.
    pub fn label_offset(&self, i: usize) -> usize {
        self.starts[i] as usize
    }

    /// The bytes of label `i` (without its length byte).
    pub fn label(&self, i: usize) -> &'a [u8] {
        let at = self.starts[i] as usize;
        let len = self.wire[at] as usize;
        &self.wire[at + 1..at + 1 + len]
    }

    /// Label `i` counted from the right (0 = last label before the root).
    pub fn label_from_right(&self, i: usize) -> &'a [u8] {
        self.label(self.starts.len() - 1 - i)
    }

    /// Whether the name ends with `suffix` (lower-case wire format) at a
    /// label boundary; returns the index of the first suffix label.
    pub fn suffix_index(&self, suffix: &[u8], suffix_labels: usize) -> Option<usize> {
        let count = self.starts.len();
        if suffix_labels > count || !self.wire.ends_with(suffix) {
            return None;
        }
        let index = count - suffix_labels;
        let at = if index == count {
            self.wire.len() - 1
        } else {
            self.starts[index] as usize
        };
        (at == self.wire.len() - suffix.len()).then_some(index)
    }
}

impl fmt::Display for QueryName<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for i in 0..self.label_count() {
            write!(f, "{}.", String::from_utf8_lossy(self.label(i)))?;
        }
        if self.label_count() == 0 {
            f.write_str(".")?;
        }
        Ok(())
    }
}

/// An owned lower-case name, for building the table and for tests.
///
/// One allocation per name (the table holds one per Service): the wire
/// length, the wire name, then the label offsets, in one boxed slice.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct OwnedName {
    packed: Box<[u8]>,
}

/// A name being built: wire form and label offsets apart.
struct NameBuilder {
    wire: Vec<u8>,
    starts: Vec<u8>,
}

/// Why a dotted name was rejected.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum NameError {
    /// A label is empty (two dots in a row, or a leading dot).
    #[error("empty label in {0:?}")]
    EmptyLabel(String),
    /// A label is longer than 63 bytes.
    #[error("label longer than 63 bytes in {0:?}")]
    LongLabel(String),
    /// The name is longer than 255 bytes in wire format.
    #[error("name longer than 255 bytes: {0:?}")]
    LongName(String),
    /// A character other than letters, digits, '-' and '_'.
    #[error("invalid character {1:?} in {0:?}")]
    BadChar(String, char),
}

impl OwnedName {
    /// Parses `a.b.c` or `a.b.c.` (host-name characters plus '_'),
    /// lower-casing it.
    pub fn from_dotted(name: &str) -> Result<Self, NameError> {
        let trimmed = name.strip_suffix('.').unwrap_or(name);
        let mut out = NameBuilder {
            wire: Vec::with_capacity(trimmed.len() + 2),
            starts: Vec::new(),
        };
        if !trimmed.is_empty() {
            for label in trimmed.split('.') {
                out.push_label(name, label)?;
            }
        }
        out.wire.push(0);
        if out.wire.len() > MAX_NAME {
            return Err(NameError::LongName(name.into()));
        }
        Ok(out.finish())
    }

    /// `label` prepended to `self` (label already validated by the caller).
    pub(crate) fn prepend(&self, label: &str) -> Result<Self, NameError> {
        let mut dotted = String::from(label);
        dotted.push('.');
        dotted.push_str(&self.to_string());
        OwnedName::from_dotted(&dotted)
    }

    fn wire_len(&self) -> usize {
        self.packed[0] as usize
    }

    pub fn as_query(&self) -> QueryName<'_> {
        QueryName::new(self.wire(), &self.packed[1 + self.wire_len()..])
    }

    pub fn wire(&self) -> &[u8] {
        &self.packed[1..1 + self.wire_len()]
    }

    pub fn label_count(&self) -> usize {
        self.packed.len() - 1 - self.wire_len()
    }
}

impl NameBuilder {
    fn finish(self) -> OwnedName {
        // from_dotted checked wire.len() <= MAX_NAME (255): fits a byte.
        let mut packed = Vec::with_capacity(1 + self.wire.len() + self.starts.len());
        packed.push(self.wire.len() as u8);
        packed.extend_from_slice(&self.wire);
        packed.extend_from_slice(&self.starts);
        OwnedName {
            packed: packed.into(),
        }
    }

    fn push_label(&mut self, name: &str, label: &str) -> Result<(), NameError> {
        if label.is_empty() {
            return Err(NameError::EmptyLabel(name.into()));
        }
        if label.len() > 63 {
            return Err(NameError::LongLabel(name.into()));
        }
        if let Some(c) = label
            .chars()
            .find(|c| !(c.is_ascii_alphanumeric() || *c == '-' || *c == '_'))
        {
            return Err(NameError::BadChar(name.into(), c));
        }
        if self.wire.len() > MAX_NAME {
            return Err(NameError::LongName(name.into()));
        }
        self.starts.push(self.wire.len() as u8);
        self.wire.push(label.len() as u8);
        self.wire
            .extend(label.bytes().map(|b| b.to_ascii_lowercase()));
        Ok(())
    }
}

impl fmt::Display for OwnedName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.as_query().fmt(f)
    }
}

/// Whether `s` is a valid single DNS label (RFC 1123 host label, which is
/// what Kubernetes requires of names used in DNS).
pub fn is_dns_label(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 63
        && s.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
        && !s.starts_with('-')
        && !s.ends_with('-')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dotted_names_become_lower_case_wire_names() {
        let name = OwnedName::from_dotted("Svc.NS.svc.cluster.local.").expect("valid");
        assert_eq!(name.wire()[0], 3);
        assert_eq!(&name.wire()[1..4], b"svc");
        assert_eq!(name.label_count(), 5);
        assert_eq!(name.to_string(), "svc.ns.svc.cluster.local.");
        let q = name.as_query();
        assert_eq!(q.label_from_right(0), b"local");
        assert_eq!(q.label(1), b"ns");
    }

    #[test]
    fn suffix_matches_only_at_label_boundaries() {
        let zone = OwnedName::from_dotted("cluster.local").expect("valid");
        let inside = OwnedName::from_dotted("a.cluster.local").expect("valid");
        let outside = OwnedName::from_dotted("acluster.local").expect("valid");
        let apex = OwnedName::from_dotted("cluster.local").expect("valid");
        let z = (zone.wire(), zone.label_count());
        assert_eq!(inside.as_query().suffix_index(z.0, z.1), Some(1));
        assert_eq!(outside.as_query().suffix_index(z.0, z.1), None);
        assert_eq!(apex.as_query().suffix_index(z.0, z.1), Some(0));
    }

    #[test]
    fn bad_names_are_rejected_with_a_reason() {
        assert!(matches!(
            OwnedName::from_dotted("a..b"),
            Err(NameError::EmptyLabel(_))
        ));
        assert!(matches!(
            OwnedName::from_dotted("a b"),
            Err(NameError::BadChar(_, ' '))
        ));
        let long = "a".repeat(64);
        assert!(matches!(
            OwnedName::from_dotted(&long),
            Err(NameError::LongLabel(_))
        ));
        let many = vec!["abcdefgh"; 40].join(".");
        assert!(matches!(
            OwnedName::from_dotted(&many),
            Err(NameError::LongName(_))
        ));
        assert!(is_dns_label("web-0"));
        assert!(!is_dns_label("-web"));
        assert!(!is_dns_label("we.b"));
    }
}
