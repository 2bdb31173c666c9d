//! Which EndpointSlices belong to which Service, as last seen: a changed
//! slice names the Service it belongs to now, this index the one it
//! belonged to before (a deleted slice is gone from the store, and a
//! relabelled one must leave its old Service).
//!
//! Keys are `namespace/name` in one string (neither part can hold a '/'),
//! one allocation instead of two: the index has an entry per slice and per
//! Service with slices, 10 000s of each.

use std::collections::HashMap;

use crate::records::ServiceKey;

#[derive(Default)]
pub(super) struct SliceIndex {
    /// `ns/slice` -> name of its Service (in the same namespace).
    owner: HashMap<Box<str>, Box<str>>,
    /// `ns/service` -> names of its slices.
    members: HashMap<Box<str>, Box<[Box<str>]>>,
}

fn joined(ns: &str, name: &str) -> Box<str> {
    format!("{ns}/{name}").into()
}

impl SliceIndex {
    /// Records that slice `ns/name` now belongs to `service` (None: to no
    /// Service, or deleted). Returns the Service it belonged to before.
    pub(super) fn set(
        &mut self,
        ns: &str,
        name: &str,
        service: Option<&str>,
    ) -> Option<ServiceKey> {
        let key = joined(ns, name);
        let old = match service {
            Some(svc) => self.owner.insert(key, svc.into()),
            None => self.owner.remove(&key),
        };
        if old.as_deref() != service {
            if let Some(old) = &old {
                self.leave(&joined(ns, old), name);
            }
            if let Some(svc) = service {
                self.join(joined(ns, svc), name);
            }
        }
        old.map(|o| (ns.to_owned(), o.into()))
    }

    fn join(&mut self, service: Box<str>, slice: &str) {
        let list = self.members.entry(service).or_default();
        let mut grown = Vec::with_capacity(list.len() + 1);
        grown.extend(list.iter().cloned());
        grown.push(slice.into());
        *list = grown.into_boxed_slice();
    }

    fn leave(&mut self, service: &str, slice: &str) {
        let Some(list) = self.members.get_mut(service) else {
            return;
        };
        let kept: Box<[Box<str>]> = list.iter().filter(|s| &***s != slice).cloned().collect();
        if kept.is_empty() {
            self.members.remove(service);
        } else {
            *list = kept;
        }
    }

    /// Names of the slices of `service`.
    pub(super) fn slices_of(&self, service: &ServiceKey) -> &[Box<str>] {
        let key = joined(&service.0, &service.1);
        self.members.get(&key).map(|l| &**l).unwrap_or_default()
    }

    pub(super) fn clear(&mut self) {
        self.owner.clear();
        self.members.clear();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(ns: &str, name: &str) -> ServiceKey {
        (ns.into(), name.into())
    }

    #[test]
    fn a_slice_moves_between_services_and_leaves() {
        let mut index = SliceIndex::default();
        assert_eq!(index.set("x", "s1", Some("a")), None);
        assert_eq!(index.set("x", "s2", Some("a")), None);
        assert_eq!(index.slices_of(&key("x", "a")).len(), 2);
        // Unchanged: the same owner is reported, nothing moves.
        assert_eq!(index.set("x", "s1", Some("a")), Some(key("x", "a")));
        assert_eq!(index.slices_of(&key("x", "a")).len(), 2);
        assert_eq!(index.set("x", "s1", Some("b")), Some(key("x", "a")));
        assert_eq!(&*index.slices_of(&key("x", "a"))[0], "s2");
        assert_eq!(&*index.slices_of(&key("x", "b"))[0], "s1");
        assert_eq!(index.set("x", "s2", None), Some(key("x", "a")));
        assert!(index.slices_of(&key("x", "a")).is_empty());
        assert!(!index.members.contains_key("x/a"), "no empty entries kept");
        assert_eq!(
            index.set("y", "s1", Some("b")),
            None,
            "namespaces are apart"
        );
        assert_eq!(&*index.slices_of(&key("y", "b"))[0], "s1");
        assert_eq!(index.slices_of(&key("x", "b")).len(), 1);
    }
}
