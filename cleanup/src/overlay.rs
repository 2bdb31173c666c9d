//! The overlay's kernel state (VXLAN devices with their peers, host-gw
//! routes, masquerade tables), removed by the overlay's own teardown.

use flannel::overlay::{TeardownReport, teardown_state};

use crate::item::Item;
use crate::steps::{Found, RemovedAll, Step};

/// Our routes carry our route protocol, so no cluster CIDR is needed to
/// tell them apart (and cleanup does not take --cluster-cidr).
const ANY_CLUSTER: &[ipnet::IpNet] = &[];

pub struct OverlayState;

impl Step for OverlayState {
    fn name(&self) -> &'static str {
        "overlay"
    }
    fn find(&self) -> Found<'_> {
        Box::pin(async {
            let report = teardown_state(ANY_CLUSTER, true).await?;
            Ok(items(report))
        })
    }
    fn remove_all(&self) -> Option<RemovedAll<'_>> {
        Some(Box::pin(async {
            match teardown_state(ANY_CLUSTER, false).await {
                Ok(report) => (items(report), Vec::new()),
                Err(err) => (Vec::new(), vec![err.into()]),
            }
        }))
    }
}

fn items(report: TeardownReport) -> Vec<Item> {
    report.removed.into_iter().map(Item::Described).collect()
}
