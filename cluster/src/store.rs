//! Where a reflector keeps the objects of its kind.
//!
//! Each reflected kind names its store through `Kept`: the built-in kinds
//! use kube-runtime's `Store`, the compact kinds (`compact`) a store of
//! our own, `compact::Objects`, which keys objects by their own namespace
//! and name instead of a 96-byte `ObjectRef` with two more strings per
//! object, and which moves each object from the watch event into the store
//! instead of cloning it (a clone per object, and the original freed, left
//! the heap fragmented).

use k8s_openapi::api::core::v1::{Namespace, Node, Pod};
use k8s_openapi::api::networking::v1::NetworkPolicy;
use kube::Resource;
use kube::runtime::reflector::{self, Store, store::Writer};
use kube::runtime::watcher;

/// Applies watch events to a store.
pub trait Apply<K> {
    /// Stores what `event` says; a relist (`Init` .. `InitDone`) replaces
    /// the whole contents at `InitDone`, so readers never see a partial
    /// list.
    fn apply(&mut self, event: watcher::Event<K>);
}

/// The store of a reflected kind: what readers get, and its writer.
pub trait Kept: Sized {
    type Store: Clone + Send + Sync + 'static;
    type Writer: Apply<Self> + Send + 'static;

    /// An empty store and its writer.
    fn store() -> (Self::Store, Self::Writer);
}

impl<K> Apply<K> for Writer<K>
where
    K: Resource<DynamicType = ()> + Clone + 'static,
{
    fn apply(&mut self, event: watcher::Event<K>) {
        self.apply_watcher_event(&event);
    }
}

/// Kinds kept in kube-runtime's store.
macro_rules! kept_by_kube {
    ($($ty:ty),*) => {$(
        impl Kept for $ty {
            type Store = Store<$ty>;
            type Writer = Writer<$ty>;

            fn store() -> (Store<$ty>, Writer<$ty>) {
                let (store, writer) = reflector::store();
                (store, writer)
            }
        }
    )*};
}

kept_by_kube!(Node, Pod, Namespace, NetworkPolicy);
