//! The compact types read real API JSON (as an API server sends it, with
//! managedFields, annotations and owner references) with every field DNS
//! uses, and tolerate bad values.

use std::net::IpAddr;

use k8s_openapi::api::core::v1 as k8s;
use kube::Resource;
use serde_json::{Value, json};

use super::*;

fn ip(text: &str) -> Address {
    Address::Ip(text.parse::<IpAddr>().expect("test IP"))
}

fn managed_fields() -> Value {
    json!([{"manager": "kube-controller-manager", "operation": "Update", "apiVersion": "v1",
            "time": "2026-11-26T10:00:00Z", "fieldsType": "FieldsV1",
            "fieldsV1": {"f:metadata": {"f:labels": {".": {}}}}}])
}

fn api_service() -> Value {
    json!({"kind": "Service", "apiVersion": "v1",
        "metadata": {"name": "web", "namespace": "shop", "uid": "6c1f0a52", "resourceVersion": "1200",
            "creationTimestamp": "2026-11-26T10:00:00Z", "labels": {"app": "web"},
            "annotations": {"kubectl.kubernetes.io/last-applied-configuration": "{\"spec\":{}}"},
            "managedFields": managed_fields()},
        "spec": {"type": "ClusterIP", "clusterIP": "10.43.0.10", "clusterIPs": ["10.43.0.10", "fd00:43::a"],
                 "ipFamilies": ["IPv4", "IPv6"], "ipFamilyPolicy": "PreferDualStack",
                 "ports": [{"name": "http", "port": 80, "protocol": "TCP", "targetPort": 8080},
                           {"name": "dns", "port": 53, "protocol": "UDP", "targetPort": "dns"}],
                 "selector": {"app": "web"}, "sessionAffinity": "None",
                 "internalTrafficPolicy": "Cluster"},
        "status": {"loadBalancer": {"ingress": [{"ip": "192.168.1.10"}]}}})
}

fn api_slice() -> Value {
    json!({"kind": "EndpointSlice", "apiVersion": "discovery.k8s.io/v1",
        "metadata": {"name": "web-x7k2p", "generateName": "web-", "namespace": "shop",
            "uid": "9a0e", "resourceVersion": "1300",
            "labels": {"kubernetes.io/service-name": "web", "app": "web",
                       "endpointslice.kubernetes.io/managed-by": "endpointslice-controller.k8s.io"},
            "annotations": {"endpoints.kubernetes.io/last-change-trigger-time": "2026-11-26T10:00:01Z"},
            "ownerReferences": [{"apiVersion": "v1", "kind": "Service", "name": "web", "uid": "6c1f0a52",
                                 "controller": true, "blockOwnerDeletion": true}],
            "managedFields": managed_fields()},
        "addressType": "IPv4",
        "endpoints": [
            {"addresses": ["10.42.1.5"], "hostname": "web-0",
             "conditions": {"ready": false, "serving": true, "terminating": true},
             "nodeName": "node-1", "zone": "z1",
             "targetRef": {"kind": "Pod", "namespace": "shop", "name": "web-0", "uid": "p"}},
            {"addresses": ["10.42.2.6", "10.42.2.7"], "conditions": {}},
            {"addresses": ["10.42.2.300"]}],
        "ports": [{"name": "http", "port": 8080, "protocol": "TCP", "appProtocol": "http"}]})
}

#[test]
fn a_service_from_the_api_keeps_what_dns_reads() {
    let svc: Service = serde_json::from_value(api_service()).expect("parses");
    assert_eq!((svc.namespace(), svc.name()), ("shop", "web"));
    let meta = svc.meta();
    assert!(meta.managed_fields.is_none() && meta.annotations.is_none());
    assert!(meta.labels.is_none() && meta.uid.is_none());
    assert_eq!(svc.spec.type_, ServiceType::ClusterIp);
    let (field, ips) = svc.spec.cluster_ips.field();
    assert_eq!(field, "spec.clusterIPs");
    assert_eq!(ips, [ip("10.43.0.10"), ip("fd00:43::a")]);
    assert_eq!(svc.spec.cluster_ips.primary(), Some(&ip("10.43.0.10")));
    let ports: Vec<_> = svc
        .spec
        .ports
        .iter()
        .map(|p| (p.name.as_deref(), p.port, p.protocol.clone()))
        .collect();
    assert_eq!(
        ports,
        [
            (Some("http"), 80, Some(Protocol::Tcp)),
            (Some("dns"), 53, Some(Protocol::Udp))
        ]
    );
}

/// kube-runtime's watcher resumes from each event's resourceVersion (and
/// fails the watch without one): it must survive parsing; trimming, which
/// runs after the watcher, drops it.
#[test]
fn the_resource_version_reaches_the_watcher_and_trimming_drops_it() {
    use crate::trim::Trim;
    let mut svc: Service = serde_json::from_value(api_service()).expect("parses");
    let mut slice: EndpointSlice = serde_json::from_value(api_slice()).expect("parses");
    use kube::ResourceExt;
    assert_eq!(svc.resource_version().as_deref(), Some("1200"));
    assert_eq!(slice.resource_version().as_deref(), Some("1300"));
    svc.trim();
    slice.trim();
    assert_eq!(svc.resource_version(), None);
    assert_eq!(slice.resource_version(), None);
}

#[test]
fn headless_external_and_minimal_services() {
    let headless: Service =
        serde_json::from_value(json!({"metadata": {"name": "db", "namespace": "x"},
        "spec": {"clusterIP": "None", "clusterIPs": ["None"]}}))
        .expect("parses");
    assert!(headless.spec.cluster_ips.field().1[0].is_text("None"));
    let external: Service =
        serde_json::from_value(json!({"metadata": {"name": "out", "namespace": "x"},
        "spec": {"type": "ExternalName", "externalName": "example.com"}}))
        .expect("parses");
    assert_eq!(external.spec.type_, ServiceType::ExternalName);
    assert_eq!(external.spec.external_name.as_deref(), Some("example.com"));
    assert_eq!(external.spec.cluster_ips, ClusterIps::Unset);
    // An old-style object: clusterIP without clusterIPs.
    let single: Service =
        serde_json::from_value(json!({"metadata": {"name": "a", "namespace": "x"},
        "spec": {"clusterIP": "10.43.0.7", "ports": [{"port": 80, "protocol": "QUIC"}]}}))
        .expect("parses");
    assert_eq!(single.spec.cluster_ips, ClusterIps::Single(ip("10.43.0.7")));
    assert_eq!(
        single.spec.ports[0].protocol,
        Some(Protocol::Other("QUIC".into()))
    );
    let empty: Service = serde_json::from_value(json!({"metadata": {}})).expect("parses");
    assert_eq!((empty.namespace(), empty.name()), ("", ""));
    assert_eq!(empty.spec, ServiceSpec::default());
}

#[test]
fn a_bad_address_is_kept_as_text_not_a_failure() {
    let svc: Service = serde_json::from_value(json!({"metadata": {"name": "a", "namespace": "x"},
        "spec": {"clusterIPs": ["10.43.0.300"]}}))
    .expect("a bad value must not fail the object");
    assert_eq!(
        svc.spec.cluster_ips.field().1,
        [Address::Text("10.43.0.300".into())]
    );
    // A wrong type does fail, as it would for k8s-openapi's type.
    let typed = serde_json::from_value::<Service>(json!({"spec": {"ports": [{"port": "80"}]}}));
    assert!(typed.is_err());
}

#[test]
fn an_endpoint_slice_from_the_api_keeps_what_dns_reads() {
    let slice: EndpointSlice = serde_json::from_value(api_slice()).expect("parses");
    assert_eq!((slice.namespace(), slice.name()), ("shop", "web-x7k2p"));
    let meta = slice.meta();
    assert!(meta.labels.is_none() && meta.owner_references.is_none());
    assert!(meta.managed_fields.is_none() && meta.annotations.is_none());
    assert_eq!(slice.service_name.as_deref(), Some("web"));
    assert_eq!(slice.address_type, AddressType::IPv4);
    let e = &slice.endpoints;
    assert_eq!(e.len(), 3);
    assert_eq!(e[0].addresses, Addresses::One(ip("10.42.1.5")));
    assert_eq!(e[0].hostname.as_deref(), Some("web-0"));
    assert_eq!(e[0].ready, Some(false));
    assert_eq!(
        e[1].addresses.as_slice(),
        [ip("10.42.2.6"), ip("10.42.2.7")]
    );
    assert_eq!((e[1].hostname.as_deref(), e[1].ready), (None, None));
    assert_eq!(
        e[2].addresses.as_slice(),
        [Address::Text("10.42.2.300".into())]
    );
    let p = &slice.ports[0];
    assert_eq!(
        (p.name.as_deref(), p.port, &p.protocol),
        (Some("http"), Some(8080), &Some(Protocol::Tcp))
    );
}

/// Go serializes an empty endpoints list as `null`; FQDN slices have no
/// IP addresses; a slice without the label belongs to no Service.
#[test]
fn null_lists_fqdn_and_unlabelled_slices() {
    let slice: EndpointSlice = serde_json::from_value(json!({
        "metadata": {"name": "s", "namespace": "x"}, "addressType": "FQDN",
        "endpoints": null, "ports": null}))
    .expect("parses");
    assert_eq!(slice.address_type, AddressType::Other);
    assert!(slice.endpoints.is_empty() && slice.ports.is_empty());
    assert_eq!(slice.service_name, None);
    let v6: EndpointSlice = serde_json::from_value(json!({
        "metadata": {"name": "s", "namespace": "x"}, "addressType": "IPv6",
        "endpoints": [{"addresses": []}, {"addresses": null}, {}]}))
    .expect("parses");
    assert_eq!(v6.address_type, AddressType::IPv6);
    assert!(
        v6.endpoints
            .iter()
            .all(|e| e.addresses.as_slice().is_empty())
    );
}

/// Watch events and list pages wrap objects (serde buffers them before
/// deserializing the object, a different path from a plain value).
#[test]
fn objects_parse_inside_watch_events() {
    let event = json!({"type": "ADDED", "object": api_slice()});
    let bytes = serde_json::to_vec(&event).expect("serializes");
    let parsed: kube::core::WatchEvent<EndpointSlice> =
        serde_json::from_slice(&bytes).expect("parses");
    let kube::core::WatchEvent::Added(slice) = parsed else {
        panic!("an ADDED event");
    };
    assert_eq!(slice.endpoints.len(), 3);
    assert_eq!(slice.endpoints[1].addresses.as_slice().len(), 2);
}

#[test]
fn the_resource_paths_are_the_api_types() {
    assert_eq!(Service::api_version(&()), k8s::Service::api_version(&()));
    assert_eq!(
        Service::url_path(&(), Some("x")),
        k8s::Service::url_path(&(), Some("x"))
    );
    type K8sSlice = k8s_openapi::api::discovery::v1::EndpointSlice;
    assert_eq!(EndpointSlice::kind(&()), K8sSlice::kind(&()));
    assert_eq!(
        EndpointSlice::url_path(&(), None),
        K8sSlice::url_path(&(), None)
    );
}

/// What the stores hold per object stays small (the point of the types).
#[test]
fn an_endpoint_is_small() {
    assert!(
        std::mem::size_of::<Endpoint>() <= 48,
        "{}",
        std::mem::size_of::<Endpoint>()
    );
    assert!(std::mem::size_of::<Address>() <= 24);
}
