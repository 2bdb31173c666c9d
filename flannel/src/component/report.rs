//! Telling the operator about input the component cannot use: a log line
//! and a Warning Event on the Node at fault, naming the field.

use cluster::events::Warning;
use k8s_openapi::api::core::v1::{Node, ObjectReference};
use kube::runtime::reflector::ObjectRef;

use super::Context;
use crate::overlay::plan::{SkipKind, SkippedNode};

/// Posts a Warning Event on Node `name` (looked up in the store for its
/// uid); returns whether it was posted (false: retry on a later pass).
pub async fn warn_node(
    ctx: &Context,
    name: &str,
    reason: &str,
    field: &str,
    message: String,
) -> bool {
    let node = ctx.nodes.store().get(&ObjectRef::new(name));
    let object = match node {
        Some(node) => node_reference(&node),
        None => named_reference(name),
    };
    let warning = Warning {
        object,
        reason,
        field,
        message,
    };
    match ctx.events.warn(&warning).await {
        Ok(()) => true,
        Err(post) => {
            tracing::warn!(component = "flannel", error = %post, "cannot post Event");
            false
        }
    }
}

/// Reports a peer the overlay skipped; returns whether the report is
/// complete (an Event that could not be posted is retried next pass).
/// Nodes not (yet) running an overlay are normal while a node joins;
/// another backend is a misconfiguration flannel only logs; malformed data
/// (of the whole node or of one address family) gets an Event, as its
/// owner must fix it.
pub async fn skipped_peer(ctx: &Context, skip: &SkippedNode) -> bool {
    let (node, field, reason) = (&skip.name, &skip.field, &skip.reason);
    match skip.kind {
        SkipKind::NotManaged => {
            tracing::debug!(
                component = "flannel",
                node,
                field,
                reason,
                "not an overlay member (yet); no route to it"
            );
            true
        }
        SkipKind::OtherBackend => {
            tracing::warn!(
                component = "flannel",
                node,
                field,
                reason,
                "peer runs another overlay backend; no route to it"
            );
            true
        }
        SkipKind::Invalid | SkipKind::InvalidFamily { .. } => {
            tracing::warn!(
                component = "flannel",
                node,
                field,
                reason,
                "unusable peer data; {}",
                consequence(skip.kind)
            );
            let message = format!(
                "{reason}; nodenet on {} {}",
                ctx.config.node_name,
                consequence(skip.kind)
            );
            warn_node(ctx, node, "InvalidOverlayPeer", field, message).await
        }
    }
}

/// What a skip means for traffic to that node, for logs and Events.
fn consequence(kind: SkipKind) -> String {
    match kind {
        SkipKind::InvalidFamily { v6 } => {
            let (left_out, kept) = if v6 {
                ("IPv6", "IPv4")
            } else {
                ("IPv4", "IPv6")
            };
            format!(
                "programs no {left_out} overlay route to this node until it is fixed (its {kept} route is programmed)"
            )
        }
        _ => "programs no overlay route to this node until it is fixed".to_string(),
    }
}

/// A reference to a Node for an Event's involvedObject.
pub fn node_reference(node: &Node) -> ObjectReference {
    ObjectReference {
        uid: node.metadata.uid.clone(),
        ..named_reference(node.metadata.name.as_deref().unwrap_or_default())
    }
}

fn named_reference(name: &str) -> ObjectReference {
    ObjectReference {
        api_version: Some("v1".into()),
        kind: Some("Node".into()),
        name: Some(name.into()),
        ..ObjectReference::default()
    }
}
