//! Namespace and name of a compact object, and the `ObjectMeta` that
//! `kube::Resource::meta()` must hand out, built only when asked for.
//!
//! k8s-openapi's `ObjectMeta` is 360 bytes inline even when it holds two
//! strings; embedded in every stored Service and EndpointSlice that was
//! ~7 MB at 10 000 of each. Only kube-runtime reads it, and only from the
//! objects passing through a watch event: the watcher the
//! resourceVersion, the store writer and the journal the name and
//! namespace of the key. So an `Identity` keeps the strings and builds
//! the `ObjectMeta` view on the first `meta()` call; a clone (what the
//! store writer keeps of an event's object) does not copy the built view,
//! so stored objects carry 64 bytes of identity.

use std::fmt;
use std::sync::OnceLock;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;

/// `metadata.namespace`, `metadata.name` and `metadata.resourceVersion`.
#[derive(Default)]
pub struct Identity {
    /// Empty when absent.
    namespace: Box<str>,
    /// Empty when absent.
    name: Box<str>,
    /// Needed by the watcher only; `Trim` drops it before storing.
    resource_version: Option<Box<str>>,
    /// The `ObjectMeta` view, built on demand from the fields above.
    meta: OnceLock<Box<ObjectMeta>>,
}

impl Identity {
    pub(super) fn new(
        namespace: Option<String>,
        name: Option<String>,
        resource_version: Option<String>,
    ) -> Identity {
        Identity {
            namespace: namespace.unwrap_or_default().into_boxed_str(),
            name: name.unwrap_or_default().into_boxed_str(),
            resource_version: resource_version.map(String::into_boxed_str),
            meta: OnceLock::new(),
        }
    }

    pub fn namespace(&self) -> &str {
        &self.namespace
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    /// Drops the resourceVersion (and a view that holds it).
    pub(super) fn forget_version(&mut self) {
        self.resource_version = None;
        self.meta = OnceLock::new();
    }

    /// The `ObjectMeta` view: namespace, name and resourceVersion, every
    /// other field unset. An empty namespace or name is absent.
    pub(super) fn meta(&self) -> &ObjectMeta {
        self.meta.get_or_init(|| Box::new(self.view()))
    }

    /// The view for kube's `Resource::meta_mut`. Edits to it are not read
    /// back by `namespace()` / `name()`; nothing in nodenet or in the
    /// kube-runtime parts it uses (watcher, store) calls it for these
    /// types, which are never written back to the API.
    pub(super) fn meta_mut(&mut self) -> &mut ObjectMeta {
        if self.meta.get().is_none() {
            self.meta = OnceLock::from(Box::new(self.view()));
        }
        match self.meta.get_mut() {
            Some(meta) => meta,
            None => unreachable!("the view was set just above"),
        }
    }

    fn view(&self) -> ObjectMeta {
        let present = |s: &str| (!s.is_empty()).then(|| s.to_owned());
        ObjectMeta {
            namespace: present(&self.namespace),
            name: present(&self.name),
            resource_version: self.resource_version.as_deref().map(str::to_owned),
            ..ObjectMeta::default()
        }
    }
}

/// A clone leaves the view to be rebuilt on demand: the store writer
/// clones every event's object, and the stored copy should not carry it.
impl Clone for Identity {
    fn clone(&self) -> Identity {
        Identity {
            namespace: self.namespace.clone(),
            name: self.name.clone(),
            resource_version: self.resource_version.clone(),
            meta: OnceLock::new(),
        }
    }
}

/// Equal when the fields are (the view is derived from them).
impl PartialEq for Identity {
    fn eq(&self, other: &Identity) -> bool {
        (&self.namespace, &self.name, &self.resource_version)
            == (&other.namespace, &other.name, &other.resource_version)
    }
}

impl fmt::Debug for Identity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Identity")
            .field("namespace", &self.namespace)
            .field("name", &self.name)
            .field("resource_version", &self.resource_version)
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn identity() -> Identity {
        Identity::new(Some("shop".into()), Some("web".into()), Some("42".into()))
    }

    #[test]
    fn the_view_holds_namespace_name_and_version_only() {
        let id = identity();
        let meta = id.meta();
        assert_eq!(meta.namespace.as_deref(), Some("shop"));
        assert_eq!(meta.name.as_deref(), Some("web"));
        assert_eq!(meta.resource_version.as_deref(), Some("42"));
        assert!(meta.labels.is_none() && meta.uid.is_none());
        let unnamed = Identity::new(None, Some(String::new()), None);
        assert!(unnamed.meta().namespace.is_none() && unnamed.meta().name.is_none());
    }

    /// What the store writer keeps (a clone) has no view built, and a
    /// dropped version leaves no stale view behind.
    #[test]
    fn clones_and_trimmed_identities_carry_no_view() {
        let mut id = identity();
        id.meta();
        assert!(id.meta.get().is_some());
        let copy = id.clone();
        assert!(copy.meta.get().is_none());
        assert_eq!(copy, id);
        id.forget_version();
        assert!(id.meta.get().is_none());
        assert!(id.meta().resource_version.is_none());
        assert_eq!(id.meta().name.as_deref(), Some("web"));
    }

    #[test]
    fn meta_mut_edits_the_view() {
        let mut id = identity();
        id.meta_mut().generation = Some(3);
        assert_eq!(id.meta().generation, Some(3));
    }

    /// The point of the type: far smaller than the 360-byte `ObjectMeta`.
    #[test]
    fn an_identity_is_small() {
        assert!(std::mem::size_of::<Identity>() <= 64);
    }
}
