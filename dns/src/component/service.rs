//! The kube-system/kube-dns Service: kubelets, tooling and users expect it
//! with the cluster DNS address as ClusterIP (and, dual-stack, every
//! cluster DNS address as its ClusterIPs). We create it when absent and
//! never overwrite one that exists (a user's or K3s's own): a differing
//! one is reported once.
//!
//! It has no selector: the answers come from the node itself, so there
//! are no backend pods for kube-proxy to balance over.

use std::collections::BTreeMap;
use std::convert::Infallible;
use std::net::IpAddr;
use std::time::Duration;

use k8s_openapi::api::core::v1::{Service, ServicePort, ServiceSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use kube::api::{Api, PostParams};
use kube::runtime::reflector::ObjectRef;

use cluster::Shared;
use cluster::compact::{self, Address, ClusterIps, Protocol};

pub const KUBE_DNS_NAME: &str = "kube-dns";
pub const KUBE_DNS_NAMESPACE: &str = "kube-system";
/// Re-checked this often even without watch events.
const RECHECK: Duration = Duration::from_secs(60);

fn port(name: &str, port: i32, protocol: &str) -> ServicePort {
    ServicePort {
        name: Some(name.into()),
        port,
        protocol: Some(protocol.into()),
        target_port: Some(IntOrString::Int(port)),
        ..ServicePort::default()
    }
}

fn family(ip: &IpAddr) -> String {
    if ip.is_ipv4() { "IPv4" } else { "IPv6" }.into()
}

/// The Service we create for `cluster_dns` (the first address is the
/// primary ClusterIP); labels and ports as K3s's CoreDNS manifest.
pub fn kube_dns_service(cluster_dns: &[IpAddr]) -> Service {
    let labels = BTreeMap::from([
        ("k8s-app".to_string(), "kube-dns".to_string()),
        ("kubernetes.io/name".to_string(), "CoreDNS".to_string()),
        (
            "app.kubernetes.io/managed-by".to_string(),
            "nodenet".to_string(),
        ),
    ]);
    let ips: Vec<String> = cluster_dns.iter().map(IpAddr::to_string).collect();
    let policy = if ips.len() > 1 {
        "RequireDualStack"
    } else {
        "SingleStack"
    };
    Service {
        metadata: ObjectMeta {
            name: Some(KUBE_DNS_NAME.into()),
            namespace: Some(KUBE_DNS_NAMESPACE.into()),
            labels: Some(labels),
            ..ObjectMeta::default()
        },
        spec: Some(ServiceSpec {
            cluster_ip: ips.first().cloned(),
            ip_families: Some(cluster_dns.iter().map(family).collect()),
            ip_family_policy: Some(policy.into()),
            cluster_ips: Some(ips),
            ports: Some(vec![
                port("dns", 53, "UDP"),
                port("dns-tcp", 53, "TCP"),
                port("metrics", 9153, "TCP"),
            ]),
            ..ServiceSpec::default()
        }),
        ..Service::default()
    }
}

/// Why an existing kube-dns Service (as the store holds it) does not
/// match, if it does not.
pub fn difference(svc: &compact::Service, cluster_dns: &[IpAddr]) -> Option<String> {
    let spec = &svc.spec;
    let primary = spec.cluster_ips.primary();
    let as_ip = |a: &Address| match a {
        Address::Ip(ip) => Some(*ip),
        Address::Text(_) => None,
    };
    if primary.and_then(as_ip).as_ref() != cluster_dns.first() {
        let shown = primary.map(|a| a.to_string()).unwrap_or_default();
        return Some(format!(
            "spec.clusterIP is {shown:?}, not {:?}",
            cluster_dns.first()
        ));
    }
    // An API server fills clusterIPs from clusterIP when absent.
    if let ClusterIps::List(list) = &spec.cluster_ips {
        let ips: Vec<Option<IpAddr>> = list.iter().map(as_ip).collect();
        if ips != cluster_dns.iter().copied().map(Some).collect::<Vec<_>>() {
            let shown: Vec<String> = list.iter().map(Address::to_string).collect();
            return Some(format!("spec.clusterIPs is {shown:?}, not {cluster_dns:?}"));
        }
    }
    for proto in [Protocol::Udp, Protocol::Tcp] {
        let has = spec
            .ports
            .iter()
            .any(|p| p.port == 53 && p.protocol.as_ref().unwrap_or(&Protocol::Tcp) == &proto);
        if !has {
            return Some(format!("spec.ports has no port 53/{}", proto.as_str()));
        }
    }
    None
}

/// Keeps the Service present; never returns. Failures are logged and
/// retried (DNS serving does not depend on the Service).
pub(super) async fn keep(
    client: kube::Client,
    services: Shared<compact::Service>,
    cluster_dns: &[IpAddr],
) -> Infallible {
    let api: Api<Service> = Api::namespaced(client, KUBE_DNS_NAMESPACE);
    let key = ObjectRef::new(KUBE_DNS_NAME).within(KUBE_DNS_NAMESPACE);
    let mut changes = services.changes();
    let mut reported = None;
    let _ = services.wait_ready().await;
    loop {
        match services.store().get(&key) {
            None => create(&api, cluster_dns).await,
            Some(svc) => {
                let diff = difference(&svc, cluster_dns);
                if diff.is_some() && diff != reported {
                    tracing::warn!(service = "kube-system/kube-dns", difference = ?diff,
                        "DNS: an existing kube-dns Service differs from --cluster-dns; leaving it as it is");
                }
                reported = diff;
            }
        }
        tokio::select! {
            res = changes.changed() => if res.is_err() {
                // The registry is shutting down; keep checking slowly.
                tokio::time::sleep(RECHECK).await;
            },
            () = tokio::time::sleep(RECHECK) => {}
        }
    }
}

async fn create(api: &Api<Service>, cluster_dns: &[IpAddr]) {
    match api
        .create(&PostParams::default(), &kube_dns_service(cluster_dns))
        .await
    {
        Ok(_) => {
            tracing::info!(service = "kube-system/kube-dns", cluster_ips = ?cluster_dns, "DNS: created the kube-dns Service")
        }
        // Someone created it meanwhile: the next round compares it.
        Err(kube::Error::Api(e)) if e.code == 409 => {}
        Err(e) => tracing::warn!(service = "kube-system/kube-dns", error = %e,
            "DNS: cannot create the kube-dns Service; retrying"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// What the store would hold for `svc` once the API server has it.
    fn stored(svc: &Service) -> compact::Service {
        let json = serde_json::to_vec(svc).expect("serializes");
        serde_json::from_slice(&json).expect("parses as the compact type")
    }

    #[test]
    fn our_service_has_the_address_and_both_dns_ports() {
        let ip: IpAddr = "10.43.0.10".parse().expect("ip");
        let svc = kube_dns_service(&[ip]);
        assert_eq!(difference(&stored(&svc), &[ip]), None);
        let spec = svc.spec.as_ref().expect("spec");
        assert!(spec.selector.is_none());
        let names: Vec<_> = spec
            .ports
            .iter()
            .flatten()
            .map(|p| p.name.clone().unwrap_or_default())
            .collect();
        assert_eq!(names, ["dns", "dns-tcp", "metrics"]);
        let other: IpAddr = "10.43.0.53".parse().expect("ip");
        assert!(
            difference(&stored(&svc), &[other])
                .expect("differs")
                .contains("spec.clusterIP")
        );
    }

    #[test]
    fn a_dual_stack_service_has_every_address_in_order() {
        let ips: [IpAddr; 2] = [
            "10.43.0.10".parse().expect("ip"),
            "fd00:43::a".parse().expect("ip"),
        ];
        let svc = kube_dns_service(&ips);
        let spec = svc.spec.as_ref().expect("spec");
        assert_eq!(spec.cluster_ip.as_deref(), Some("10.43.0.10"));
        assert_eq!(
            spec.cluster_ips.as_deref(),
            Some(&["10.43.0.10".to_string(), "fd00:43::a".to_string()][..])
        );
        assert_eq!(
            spec.ip_families.as_deref(),
            Some(&["IPv4".to_string(), "IPv6".to_string()][..])
        );
        assert_eq!(spec.ip_family_policy.as_deref(), Some("RequireDualStack"));
        assert_eq!(difference(&stored(&svc), &ips), None);
        // A single-stack kube-dns Service is reported on a dual-stack node.
        let single = kube_dns_service(&ips[..1]);
        assert!(
            difference(&stored(&single), &ips)
                .expect("differs")
                .contains("spec.clusterIPs")
        );
    }
}
