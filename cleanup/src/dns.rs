//! The node-local cluster DNS: its address on `lo` and the notrack table.

use dns::node_local::teardown_recorded;

use crate::item::Item;
use crate::steps::{Found, RemovedAll, Step};

/// The dns component's kernel state. Its teardown reads the address back
/// from our own table, so cleanup needs no `--cluster-dns` flag and never
/// removes an address it did not put there.
pub struct NodeLocalDns;

impl Step for NodeLocalDns {
    fn name(&self) -> &'static str {
        "node-local dns"
    }
    fn find(&self) -> Found<'_> {
        Box::pin(async { Ok(described(teardown_recorded(true).await?)) })
    }
    fn remove_all(&self) -> Option<RemovedAll<'_>> {
        Some(Box::pin(async {
            match teardown_recorded(false).await {
                Ok(removed) => (described(removed), Vec::new()),
                Err(err) => (Vec::new(), vec![err.into()]),
            }
        }))
    }
}

fn described(removed: Vec<String>) -> Vec<Item> {
    removed.into_iter().map(Item::Described).collect()
}
