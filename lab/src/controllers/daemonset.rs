//! DaemonSet pods: one pod per node whose labels match the template's
//! nodeSelector (tolerations and affinity are not evaluated), owned by the
//! DaemonSet, replaced when the template changes or the pod failed.

use super::Stores;
use super::labels::{fnv, is_ready, node_selected, suffix};
use k8s_openapi::api::apps::v1::{DaemonSet, DaemonSetStatus};
use k8s_openapi::api::core::v1::{Node, Pod};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::OwnerReference;
use kube::api::{Api, DeleteParams, Patch, PatchParams, PostParams};
use std::collections::BTreeMap;
use std::sync::Arc;

/// Label carrying the template hash (the name Kubernetes uses).
pub const REVISION_LABEL: &str = "controller-revision-hash";

/// What one pass should do for one DaemonSet.
#[derive(Debug, Default, PartialEq)]
pub struct Plan {
    pub create: Vec<Pod>,
    /// Names of pods to delete.
    pub delete: Vec<String>,
    pub status: DaemonSetStatus,
}

/// Stable hash of the pod template.
pub fn template_hash(ds: &DaemonSet) -> String {
    let tmpl = ds
        .spec
        .as_ref()
        .map(|s| serde_json::to_vec(&s.template).unwrap_or_default())
        .unwrap_or_default();
    format!("{:x}", fnv(&tmpl) & 0xff_ffff_ffff)
}

fn owned(ds: &DaemonSet, pod: &Pod) -> bool {
    let uid = ds.metadata.uid.as_deref();
    pod.metadata.namespace == ds.metadata.namespace
        && pod
            .metadata
            .owner_references
            .iter()
            .flatten()
            .any(|o| Some(o.uid.as_str()) == uid && o.controller == Some(true))
}

fn node_of(pod: &Pod) -> Option<&str> {
    pod.spec.as_ref()?.node_name.as_deref()
}

fn failed(pod: &Pod) -> bool {
    pod.status.as_ref().and_then(|s| s.phase.as_deref()) == Some("Failed")
}

fn revision(pod: &Pod) -> Option<&str> {
    pod.metadata
        .labels
        .as_ref()?
        .get(REVISION_LABEL)
        .map(String::as_str)
}

/// The pod the DaemonSet runs on `node`.
pub fn pod_for(ds: &DaemonSet, node: &str, hash: &str) -> Pod {
    let name = ds.metadata.name.clone().unwrap_or_default();
    let tmpl = ds
        .spec
        .as_ref()
        .map(|s| s.template.clone())
        .unwrap_or_default();
    let mut pod = Pod {
        spec: tmpl.spec,
        ..Default::default()
    };
    let mut meta = tmpl.metadata.unwrap_or_default();
    let mut labels = meta.labels.take().unwrap_or_default();
    labels.insert(REVISION_LABEL.into(), hash.into());
    pod.metadata.labels = Some(labels);
    pod.metadata.annotations = meta.annotations.take();
    pod.metadata.name = Some(format!(
        "{name}-{}",
        suffix(format!("{node}/{hash}").as_bytes(), 5)
    ));
    pod.metadata.namespace = ds.metadata.namespace.clone();
    pod.metadata.owner_references = Some(vec![OwnerReference {
        api_version: "apps/v1".into(),
        kind: "DaemonSet".into(),
        name,
        uid: ds.metadata.uid.clone().unwrap_or_default(),
        controller: Some(true),
        block_owner_deletion: Some(true),
    }]);
    if let Some(spec) = pod.spec.as_mut() {
        spec.node_name = Some(node.into());
    }
    pod
}

/// Per-pass tallies for the DaemonSet status.
#[derive(Debug, Default)]
struct Counts {
    desired: i32,
    current: i32,
    ready: i32,
}

fn pods_by_node<'a>(ds: &DaemonSet, pods: &'a [Arc<Pod>]) -> BTreeMap<&'a str, Vec<&'a Pod>> {
    let mut by_node: BTreeMap<&str, Vec<&Pod>> = BTreeMap::new();
    let live = pods
        .iter()
        .filter(|p| owned(ds, p) && p.metadata.deletion_timestamp.is_none());
    for pod in live {
        by_node
            .entry(node_of(pod).unwrap_or(""))
            .or_default()
            .push(pod);
    }
    by_node
}

fn names<'a>(pods: impl IntoIterator<Item = &'a &'a Pod>) -> impl Iterator<Item = String> {
    pods.into_iter().filter_map(|p| p.metadata.name.clone())
}

/// Keeps one current pod on a selected node, replacing stale or failed ones.
fn plan_node(
    ds: &DaemonSet,
    node: &str,
    here: Vec<&Pod>,
    hash: &str,
    plan: &mut Plan,
    n: &mut Counts,
) {
    n.desired += 1;
    let (keep, stale): (Vec<&Pod>, Vec<&Pod>) = here
        .into_iter()
        .partition(|p| revision(p) == Some(hash) && !failed(p));
    plan.delete
        .extend(names(&stale).chain(names(keep.iter().skip(1))));
    match keep.first() {
        Some(p) => {
            n.current += 1;
            n.ready += i32::from(is_ready(p));
        }
        None => plan.create.push(pod_for(ds, node, hash)),
    }
}

fn status(ds: &DaemonSet, n: &Counts) -> DaemonSetStatus {
    DaemonSetStatus {
        desired_number_scheduled: n.desired,
        current_number_scheduled: n.current,
        number_ready: n.ready,
        number_available: Some(n.ready),
        number_unavailable: Some(n.desired - n.ready),
        updated_number_scheduled: Some(n.current),
        number_misscheduled: 0,
        observed_generation: ds.metadata.generation,
        ..Default::default()
    }
}

/// Plans one DaemonSet against all nodes and pods (pure).
pub fn plan(ds: &DaemonSet, nodes: &[Arc<Node>], pods: &[Arc<Pod>]) -> Plan {
    let hash = template_hash(ds);
    let tmpl_spec = ds.spec.as_ref().and_then(|s| s.template.spec.as_ref());
    let mut by_node = pods_by_node(ds, pods);
    let mut plan = Plan::default();
    let mut counts = Counts::default();
    for node in nodes {
        let name = node.metadata.name.as_deref().unwrap_or("");
        let here = by_node.remove(name).unwrap_or_default();
        if node_selected(tmpl_spec, node) {
            plan_node(ds, name, here, &hash, &mut plan, &mut counts);
        } else {
            plan.delete.extend(names(&here));
        }
    }
    // Pods on nodes that no longer exist.
    let orphans: Vec<&Pod> = by_node.into_values().flatten().collect();
    plan.delete.extend(names(&orphans));
    plan.status = status(ds, &counts);
    plan
}

/// One pass over every DaemonSet.
pub async fn reconcile(client: kube::Client, stores: Stores) -> Result<(), kube::Error> {
    let nodes = stores.nodes.state();
    let pods = stores.pods.state();
    for ds in stores.daemonsets.state() {
        if ds.metadata.deletion_timestamp.is_some() {
            continue;
        }
        let p = plan(&ds, &nodes, &pods);
        apply(&client, &ds, p).await?;
    }
    Ok(())
}

async fn apply(client: &kube::Client, ds: &DaemonSet, p: Plan) -> Result<(), kube::Error> {
    let ns = ds.metadata.namespace.clone().unwrap_or_default();
    let pods: Api<Pod> = Api::namespaced(client.clone(), &ns);
    for pod in &p.create {
        match pods.create(&PostParams::default(), pod).await {
            Err(kube::Error::Api(e)) if e.code == 409 => {} // old one still terminating
            r => drop(r?),
        }
    }
    for name in &p.delete {
        if let Err(e) = pods.delete(name, &DeleteParams::default()).await {
            tracing::debug!(pod = %name, error = %e, "daemonset pod delete");
        }
    }
    if ds.status.as_ref() != Some(&p.status) {
        let api: Api<DaemonSet> = Api::namespaced(client.clone(), &ns);
        let body = serde_json::json!({ "status": p.status });
        let name = ds.metadata.name.clone().unwrap_or_default();
        api.patch_status(&name, &PatchParams::default(), &Patch::Merge(&body))
            .await?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::api::apps::v1::DaemonSetSpec;
    use k8s_openapi::api::core::v1::{PodSpec, PodTemplateSpec};

    fn node(name: &str, role: &str) -> Arc<Node> {
        let mut n = Node::default();
        n.metadata.name = Some(name.into());
        n.metadata.labels = Some([("role".to_string(), role.to_string())].into());
        Arc::new(n)
    }

    fn ds(selector: Option<&str>) -> DaemonSet {
        let spec = PodSpec {
            node_selector: selector.map(|r| [("role".to_string(), r.to_string())].into()),
            ..Default::default()
        };
        let mut d = DaemonSet {
            spec: Some(DaemonSetSpec {
                template: PodTemplateSpec {
                    spec: Some(spec),
                    ..Default::default()
                },
                ..Default::default()
            }),
            ..Default::default()
        };
        d.metadata.name = Some("lb".into());
        d.metadata.namespace = Some("kube-system".into());
        d.metadata.uid = Some("ds-uid".into());
        d
    }

    #[test]
    fn creates_one_pod_per_matching_node() {
        let nodes = vec![
            node("node-1", "edge"),
            node("node-2", "core"),
            node("node-3", "edge"),
        ];
        let p = plan(&ds(Some("edge")), &nodes, &[]);
        let targets: Vec<_> = p
            .create
            .iter()
            .map(|p| p.spec.as_ref().unwrap().node_name.clone().unwrap())
            .collect();
        assert_eq!(targets, vec!["node-1", "node-3"]);
        assert_eq!(
            p.create[0].metadata.owner_references.as_ref().unwrap()[0].kind,
            "DaemonSet"
        );
        assert_eq!(p.status.desired_number_scheduled, 2);
        assert!(p.delete.is_empty());
    }

    #[test]
    fn keeps_current_pods_and_replaces_stale_ones() {
        let d = ds(None);
        let nodes = vec![node("node-1", "a"), node("node-2", "a")];
        let current = Arc::new(pod_for(&d, "node-1", &template_hash(&d)));
        let stale = Arc::new(pod_for(&d, "node-2", "oldhash"));
        let p = plan(&d, &nodes, &[current, stale.clone()]);
        assert_eq!(p.delete, vec![stale.metadata.name.clone().unwrap()]);
        assert_eq!(p.create.len(), 1);
        assert_eq!(
            p.create[0].spec.as_ref().unwrap().node_name.as_deref(),
            Some("node-2")
        );
    }

    #[test]
    fn removes_pods_from_unselected_nodes() {
        let d = ds(Some("edge"));
        let on_core = Arc::new(pod_for(&d, "node-2", &template_hash(&d)));
        let p = plan(&d, &[node("node-2", "core")], &[on_core]);
        assert_eq!(p.delete.len(), 1);
        assert!(p.create.is_empty());
    }
}
