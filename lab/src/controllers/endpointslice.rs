//! EndpointSlices for Services with a selector, as kube-controller-manager's
//! EndpointSlice controller makes them: one slice per address family and
//! per distinct set of resolved ports, labelled with the service name and
//! the controller's managed-by value, owned by the Service.

use super::Stores;
use super::labels::{is_ready, is_terminal, matches, suffix};
use k8s_openapi::api::core::v1::{Pod, Service, ServicePort};
use k8s_openapi::api::discovery::v1::{Endpoint, EndpointConditions, EndpointPort, EndpointSlice};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::OwnerReference;
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use kube::api::{Api, DeleteParams, PostParams};
use std::collections::BTreeMap;
use std::net::IpAddr;
use std::sync::Arc;

pub const SERVICE_NAME_LABEL: &str = "kubernetes.io/service-name";
pub const MANAGED_BY_LABEL: &str = "endpointslice.kubernetes.io/managed-by";
pub const MANAGED_BY: &str = "endpointslice-controller.k8s.io";

fn families(svc: &Service) -> Vec<String> {
    let fams = svc
        .spec
        .as_ref()
        .and_then(|s| s.ip_families.clone())
        .unwrap_or_default();
    if fams.is_empty() {
        vec!["IPv4".into()]
    } else {
        fams
    }
}

fn family_of(ip: &IpAddr) -> &'static str {
    if ip.is_ipv4() { "IPv4" } else { "IPv6" }
}

fn pod_ips(pod: &Pod) -> Vec<IpAddr> {
    let st = pod.status.as_ref();
    let mut ips: Vec<IpAddr> = st
        .and_then(|s| s.pod_ips.as_ref())
        .into_iter()
        .flatten()
        .filter_map(|p| p.ip.parse().ok())
        .collect();
    if ips.is_empty() {
        ips.extend(
            st.and_then(|s| s.pod_ip.as_deref())
                .and_then(|ip| ip.parse::<IpAddr>().ok()),
        );
    }
    ips
}

/// Resolves a service port's targetPort for one pod (named ports look at
/// the pod's container ports with the same protocol).
pub fn target_port(sp: &ServicePort, pod: &Pod) -> Option<i32> {
    let proto = sp.protocol.as_deref().unwrap_or("TCP");
    match &sp.target_port {
        None => Some(sp.port),
        Some(IntOrString::Int(0)) => Some(sp.port),
        Some(IntOrString::Int(n)) => Some(*n),
        Some(IntOrString::String(name)) => pod
            .spec
            .as_ref()?
            .containers
            .iter()
            .flat_map(|c| c.ports.iter().flatten())
            .find_map(|cp| {
                let same_proto = cp.protocol.as_deref().unwrap_or("TCP") == proto;
                (cp.name.as_deref() == Some(name.as_str()) && same_proto)
                    .then_some(cp.container_port)
            }),
    }
}

fn endpoint_ports(svc: &Service, pod: &Pod) -> Vec<EndpointPort> {
    let ports = svc
        .spec
        .as_ref()
        .and_then(|s| s.ports.clone())
        .unwrap_or_default();
    ports
        .iter()
        .filter_map(|sp| {
            Some(EndpointPort {
                name: Some(sp.name.clone().unwrap_or_default()),
                port: Some(target_port(sp, pod)?),
                protocol: Some(sp.protocol.clone().unwrap_or_else(|| "TCP".into())),
                app_protocol: sp.app_protocol.clone(),
            })
        })
        .collect()
}

fn endpoint(svc: &Service, pod: &Pod, ip: IpAddr) -> Endpoint {
    let publish = svc
        .spec
        .as_ref()
        .and_then(|s| s.publish_not_ready_addresses)
        == Some(true);
    let terminating = pod.metadata.deletion_timestamp.is_some();
    let serving = is_ready(pod) || publish;
    let spec = pod.spec.as_ref();
    let svc_name = svc.metadata.name.as_deref();
    let hostname = spec
        .filter(|s| s.subdomain.as_deref() == svc_name)
        .and_then(|s| s.hostname.clone());
    Endpoint {
        addresses: vec![ip.to_string()],
        conditions: Some(EndpointConditions {
            ready: Some(serving && !terminating),
            serving: Some(serving),
            terminating: Some(terminating),
        }),
        hostname,
        node_name: spec.and_then(|s| s.node_name.clone()),
        target_ref: Some(k8s_openapi::api::core::v1::ObjectReference {
            kind: Some("Pod".into()),
            namespace: pod.metadata.namespace.clone(),
            name: pod.metadata.name.clone(),
            uid: pod.metadata.uid.clone(),
            ..Default::default()
        }),
        ..Default::default()
    }
}

fn selects(svc: &Service, pod: &Pod) -> bool {
    let Some(sel) = svc.spec.as_ref().and_then(|s| s.selector.as_ref()) else {
        return false;
    };
    pod.metadata.namespace == svc.metadata.namespace
        && !is_terminal(pod)
        && matches(sel, pod.metadata.labels.as_ref())
}

/// Whether the controller manages slices for this Service at all.
pub fn managed(svc: &Service) -> bool {
    let spec = svc.spec.as_ref();
    let has_selector = spec
        .and_then(|s| s.selector.as_ref())
        .is_some_and(|s| !s.is_empty());
    has_selector && spec.and_then(|s| s.type_.as_deref()) != Some("ExternalName")
}

fn slice_for(
    svc: &Service,
    family: &str,
    ports: Vec<EndpointPort>,
    mut endpoints: Vec<Endpoint>,
) -> EndpointSlice {
    let name = svc.metadata.name.clone().unwrap_or_default();
    endpoints.sort_by(|a, b| a.addresses.cmp(&b.addresses));
    let key = format!(
        "{family}/{}",
        serde_json::to_string(&ports).unwrap_or_default()
    );
    let mut labels = svc.metadata.labels.clone().unwrap_or_default();
    labels.insert(SERVICE_NAME_LABEL.into(), name.clone());
    labels.insert(MANAGED_BY_LABEL.into(), MANAGED_BY.into());
    let mut slice = EndpointSlice {
        address_type: family.into(),
        endpoints,
        ports: Some(ports),
        ..Default::default()
    };
    slice.metadata.name = Some(format!("{name}-{}", suffix(key.as_bytes(), 5)));
    slice.metadata.namespace = svc.metadata.namespace.clone();
    slice.metadata.labels = Some(labels);
    slice.metadata.owner_references = Some(vec![OwnerReference {
        api_version: "v1".into(),
        kind: "Service".into(),
        name,
        uid: svc.metadata.uid.clone().unwrap_or_default(),
        controller: Some(true),
        block_owner_deletion: Some(true),
    }]);
    slice
}

/// The slices a Service should have, given all pods (pure).
pub fn desired(svc: &Service, pods: &[Arc<Pod>]) -> Vec<EndpointSlice> {
    if !managed(svc) {
        return Vec::new();
    }
    let mut out = Vec::new();
    for family in families(svc) {
        let mut groups: BTreeMap<String, (Vec<EndpointPort>, Vec<Endpoint>)> = BTreeMap::new();
        for pod in pods.iter().filter(|p| selects(svc, p)) {
            for ip in pod_ips(pod)
                .into_iter()
                .filter(|ip| family_of(ip) == family)
            {
                let ports = endpoint_ports(svc, pod);
                let key = serde_json::to_string(&ports).unwrap_or_default();
                groups
                    .entry(key)
                    .or_insert_with(|| (ports, Vec::new()))
                    .1
                    .push(endpoint(svc, pod, ip));
            }
        }
        if groups.is_empty() {
            // A placeholder slice with no endpoints, as the real controller keeps.
            out.push(slice_for(svc, &family, Vec::new(), Vec::new()));
        }
        out.extend(
            groups
                .into_values()
                .map(|(ports, eps)| slice_for(svc, &family, ports, eps)),
        );
    }
    out
}

fn owned_by_controller(slice: &EndpointSlice) -> bool {
    slice
        .metadata
        .labels
        .as_ref()
        .and_then(|l| l.get(MANAGED_BY_LABEL))
        .map(String::as_str)
        == Some(MANAGED_BY)
}

fn same_content(a: &EndpointSlice, b: &EndpointSlice) -> bool {
    a.address_type == b.address_type
        && a.endpoints == b.endpoints
        && a.ports.clone().unwrap_or_default() == b.ports.clone().unwrap_or_default()
        && a.metadata.labels == b.metadata.labels
}

/// One pass: create, update and delete slices to match every Service.
pub async fn reconcile(client: kube::Client, stores: Stores) -> Result<(), kube::Error> {
    let pods = stores.pods.state();
    let services = stores.services.state();
    let mut existing: BTreeMap<(String, String), Arc<EndpointSlice>> = stores
        .slices
        .state()
        .into_iter()
        .filter(|s| owned_by_controller(s))
        .map(|s| {
            (
                (
                    s.metadata.namespace.clone().unwrap_or_default(),
                    s.metadata.name.clone().unwrap_or_default(),
                ),
                s,
            )
        })
        .collect();
    for svc in &services {
        for want in desired(svc, &pods) {
            let key = (
                want.metadata.namespace.clone().unwrap_or_default(),
                want.metadata.name.clone().unwrap_or_default(),
            );
            let have = existing.remove(&key);
            apply_one(&client, want, have).await?;
        }
    }
    // Whatever is left belongs to deleted or selector-less Services.
    for (ns, name) in existing.into_keys() {
        let api: Api<EndpointSlice> = Api::namespaced(client.clone(), &ns);
        if let Err(e) = api.delete(&name, &DeleteParams::default()).await {
            tracing::debug!(slice = %name, error = %e, "stale slice delete");
        }
    }
    Ok(())
}

async fn apply_one(
    client: &kube::Client,
    mut want: EndpointSlice,
    have: Option<Arc<EndpointSlice>>,
) -> Result<(), kube::Error> {
    let ns = want.metadata.namespace.clone().unwrap_or_default();
    let name = want.metadata.name.clone().unwrap_or_default();
    let api: Api<EndpointSlice> = Api::namespaced(client.clone(), &ns);
    match have {
        None => match api.create(&PostParams::default(), &want).await {
            Err(kube::Error::Api(e)) if e.code == 409 => Ok(()),
            r => r.map(|_| ()),
        },
        Some(h) if same_content(&h, &want) => Ok(()),
        Some(h) => {
            want.metadata.resource_version = h.metadata.resource_version.clone();
            match api.replace(&name, &PostParams::default(), &want).await {
                Err(kube::Error::Api(e)) if e.code == 409 => Ok(()), // next pass retries
                r => r.map(|_| ()),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::api::core::v1::{
        Container, ContainerPort, PodCondition, PodIP, PodSpec, PodStatus, ServiceSpec,
    };

    fn svc(target: IntOrString) -> Service {
        let mut s = Service {
            spec: Some(ServiceSpec {
                selector: Some([("app".to_string(), "web".to_string())].into()),
                ports: Some(vec![ServicePort {
                    name: Some("http".into()),
                    port: 80,
                    target_port: Some(target),
                    protocol: Some("TCP".into()),
                    ..Default::default()
                }]),
                ..Default::default()
            }),
            ..Default::default()
        };
        s.metadata.name = Some("web".into());
        s.metadata.namespace = Some("shop".into());
        s.metadata.uid = Some("svc-uid".into());
        s
    }

    fn pod(name: &str, ip: &str, ready: bool, port: i32) -> Arc<Pod> {
        let mut p = Pod {
            spec: Some(PodSpec {
                node_name: Some("node-1".into()),
                containers: vec![Container {
                    name: "c".into(),
                    ports: Some(vec![ContainerPort {
                        name: Some("web".into()),
                        container_port: port,
                        ..Default::default()
                    }]),
                    ..Default::default()
                }],
                ..Default::default()
            }),
            status: Some(PodStatus {
                phase: Some("Running".into()),
                pod_ip: Some(ip.into()),
                pod_ips: Some(vec![PodIP { ip: ip.into() }]),
                conditions: Some(vec![PodCondition {
                    type_: "Ready".into(),
                    status: if ready { "True" } else { "False" }.into(),
                    ..Default::default()
                }]),
                ..Default::default()
            }),
            ..Default::default()
        };
        p.metadata.name = Some(name.into());
        p.metadata.namespace = Some("shop".into());
        p.metadata.uid = Some(format!("uid-{name}"));
        p.metadata.labels = Some([("app".to_string(), "web".to_string())].into());
        Arc::new(p)
    }

    #[test]
    fn ready_and_unready_pods_with_named_ports() {
        let pods = vec![
            pod("a", "10.42.0.5", true, 8080),
            pod("b", "10.42.0.6", false, 8080),
        ];
        let slices = desired(&svc(IntOrString::String("web".into())), &pods);
        assert_eq!(slices.len(), 1);
        let s = &slices[0];
        assert_eq!(s.address_type, "IPv4");
        assert_eq!(s.ports.as_ref().unwrap()[0].port, Some(8080));
        assert_eq!(
            s.metadata.labels.as_ref().unwrap()[SERVICE_NAME_LABEL],
            "web"
        );
        assert_eq!(
            s.metadata.labels.as_ref().unwrap()[MANAGED_BY_LABEL],
            MANAGED_BY
        );
        assert_eq!(s.endpoints.len(), 2);
        assert_eq!(
            s.endpoints[0].conditions.as_ref().unwrap().ready,
            Some(true)
        );
        assert_eq!(
            s.endpoints[1].conditions.as_ref().unwrap().ready,
            Some(false)
        );
        assert_eq!(s.endpoints[0].node_name.as_deref(), Some("node-1"));
        assert_eq!(
            s.endpoints[0].target_ref.as_ref().unwrap().name.as_deref(),
            Some("a")
        );
    }

    #[test]
    fn differing_named_ports_split_slices() {
        let pods = vec![
            pod("a", "10.42.0.5", true, 8080),
            pod("b", "10.42.0.6", true, 9090),
        ];
        let slices = desired(&svc(IntOrString::String("web".into())), &pods);
        assert_eq!(slices.len(), 2);
        assert_ne!(slices[0].metadata.name, slices[1].metadata.name);
    }

    #[test]
    fn terminating_and_foreign_pods() {
        let mut gone = (*pod("a", "10.42.0.5", true, 80)).clone();
        gone.metadata.deletion_timestamp = Some(crate::kubelet::container::now());
        let mut other = (*pod("b", "10.42.0.6", true, 80)).clone();
        other.metadata.namespace = Some("elsewhere".into());
        let slices = desired(
            &svc(IntOrString::Int(80)),
            &[Arc::new(gone), Arc::new(other)],
        );
        assert_eq!(slices[0].endpoints.len(), 1);
        let c = slices[0].endpoints[0].conditions.clone().unwrap();
        assert_eq!(
            (c.ready, c.serving, c.terminating),
            (Some(false), Some(true), Some(true))
        );
    }

    fn dual_pod(name: &str, v4: &str, v6: &str) -> Arc<Pod> {
        let mut p = (*pod(name, v4, true, 8080)).clone();
        let status = p.status.as_mut().unwrap();
        status.pod_ips = Some(vec![PodIP { ip: v4.into() }, PodIP { ip: v6.into() }]);
        Arc::new(p)
    }

    fn with_families(families: &[&str]) -> Service {
        let mut s = svc(IntOrString::String("web".into()));
        s.spec.as_mut().unwrap().ip_families =
            Some(families.iter().map(|f| f.to_string()).collect());
        s
    }

    #[test]
    fn dual_stack_service_gets_one_slice_per_family() {
        let pods = vec![
            dual_pod("a", "10.42.0.5", "fd42::5"),
            dual_pod("b", "10.42.1.6", "fd42:0:0:1::6"),
        ];
        let slices = desired(&with_families(&["IPv6", "IPv4"]), &pods);
        let summary: Vec<(String, Vec<String>)> = slices
            .iter()
            .map(|s| {
                let addrs = s.endpoints.iter().flat_map(|e| e.addresses.clone());
                (s.address_type.clone(), addrs.collect())
            })
            .collect();
        assert_eq!(
            summary,
            [
                (
                    "IPv6".to_string(),
                    vec!["fd42:0:0:1::6".to_string(), "fd42::5".to_string()]
                ),
                (
                    "IPv4".to_string(),
                    vec!["10.42.0.5".to_string(), "10.42.1.6".to_string()]
                ),
            ]
        );
        assert_ne!(slices[0].metadata.name, slices[1].metadata.name);
        for (s, first) in slices.iter().zip(["b", "a"]) {
            assert_eq!(s.ports.as_ref().unwrap()[0].port, Some(8080));
            let target = s.endpoints[0].target_ref.as_ref().unwrap();
            assert_eq!(target.name.as_deref(), Some(first), "{}", s.address_type);
        }
        // A single-stack IPv6 Service: only the IPv6 slice.
        let v6 = desired(&with_families(&["IPv6"]), &pods);
        assert_eq!(v6.len(), 1);
        assert_eq!(v6[0].address_type, "IPv6");
        assert_eq!(v6[0].endpoints.len(), 2);
        // IPv4-only pods of a dual-stack Service: a placeholder IPv6 slice.
        let v4_pods = vec![pod("c", "10.42.0.7", true, 8080)];
        let mixed = desired(&with_families(&["IPv4", "IPv6"]), &v4_pods);
        assert_eq!(mixed.len(), 2);
        assert_eq!(mixed[1].address_type, "IPv6");
        assert!(mixed[1].endpoints.is_empty());
    }

    #[test]
    fn no_pods_gives_placeholder_and_no_selector_gives_nothing() {
        let slices = desired(&svc(IntOrString::Int(80)), &[]);
        assert_eq!(slices.len(), 1);
        assert!(slices[0].endpoints.is_empty());
        let mut bare = svc(IntOrString::Int(80));
        bare.spec.as_mut().unwrap().selector = None;
        assert!(desired(&bare, &[pod("a", "10.42.0.5", true, 80)]).is_empty());
    }
}
