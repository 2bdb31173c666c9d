//! The registry of resource types the server stores.

/// One REST resource (a plural under a group/version).
#[derive(Debug, PartialEq, Eq)]
pub struct ResourceType {
    /// API group, "" for core.
    pub group: &'static str,
    pub version: &'static str,
    pub plural: &'static str,
    pub singular: &'static str,
    pub kind: &'static str,
    pub namespaced: bool,
    pub short_names: &'static [&'static str],
    /// Whether it has a `/status` subresource (main resource writes then keep status).
    pub status: bool,
    pub categories: &'static [&'static str],
}

const fn res(
    group: &'static str,
    plural: &'static str,
    singular: &'static str,
    kind: &'static str,
    namespaced: bool,
    short_names: &'static [&'static str],
    status: bool,
) -> ResourceType {
    ResourceType {
        group,
        version: "v1",
        plural,
        singular,
        kind,
        namespaced,
        short_names,
        status,
        categories: &[],
    }
}

/// Every resource served, in discovery order.
pub static RESOURCES: &[ResourceType] = &[
    res(
        "",
        "namespaces",
        "namespace",
        "Namespace",
        false,
        &["ns"],
        true,
    ),
    res("", "nodes", "node", "Node", false, &["no"], true),
    ResourceType {
        categories: &["all"],
        ..res("", "pods", "pod", "Pod", true, &["po"], true)
    },
    ResourceType {
        categories: &["all"],
        ..res("", "services", "service", "Service", true, &["svc"], true)
    },
    res(
        "",
        "endpoints",
        "endpoints",
        "Endpoints",
        true,
        &["ep"],
        false,
    ),
    res(
        "",
        "configmaps",
        "configmap",
        "ConfigMap",
        true,
        &["cm"],
        false,
    ),
    res("", "secrets", "secret", "Secret", true, &[], false),
    res(
        "",
        "serviceaccounts",
        "serviceaccount",
        "ServiceAccount",
        true,
        &["sa"],
        false,
    ),
    res("", "events", "event", "Event", true, &["ev"], false),
    ResourceType {
        categories: &["all"],
        ..res(
            "apps",
            "daemonsets",
            "daemonset",
            "DaemonSet",
            true,
            &["ds"],
            true,
        )
    },
    ResourceType {
        categories: &["all"],
        ..res(
            "apps",
            "deployments",
            "deployment",
            "Deployment",
            true,
            &["deploy"],
            true,
        )
    },
    res(
        "discovery.k8s.io",
        "endpointslices",
        "endpointslice",
        "EndpointSlice",
        true,
        &[],
        false,
    ),
    res(
        "networking.k8s.io",
        "networkpolicies",
        "networkpolicy",
        "NetworkPolicy",
        true,
        &["netpol"],
        false,
    ),
    res(
        "networking.k8s.io",
        "ingresses",
        "ingress",
        "Ingress",
        true,
        &["ing"],
        true,
    ),
    res(
        "networking.k8s.io",
        "ingressclasses",
        "ingressclass",
        "IngressClass",
        false,
        &[],
        false,
    ),
    res(
        "coordination.k8s.io",
        "leases",
        "lease",
        "Lease",
        true,
        &[],
        false,
    ),
    res(
        "events.k8s.io",
        "events",
        "event",
        "Event",
        true,
        &["ev"],
        false,
    ),
];

impl ResourceType {
    /// `v1` or `group/v1`.
    pub fn api_version(&self) -> String {
        if self.group.is_empty() {
            self.version.to_string()
        } else {
            format!("{}/{}", self.group, self.version)
        }
    }

    /// Index of this type in [`RESOURCES`]; used as the store key.
    pub fn index(&self) -> usize {
        RESOURCES
            .iter()
            .position(|r| std::ptr::eq(r, self))
            .unwrap_or(usize::MAX)
    }

    /// `plural` or `plural.group`, as Kubernetes names resources in messages.
    pub fn qualified(&self) -> String {
        if self.group.is_empty() {
            self.plural.to_string()
        } else {
            format!("{}.{}", self.plural, self.group)
        }
    }

    /// Subresources this type serves besides the main resource.
    pub fn subresources(&self) -> Vec<(&'static str, &'static [&'static str])> {
        let mut subs = Vec::new();
        if self.status {
            subs.push(("status", &["get", "patch", "update"][..]));
        }
        if self.kind == "Pod" && self.group.is_empty() {
            subs.push(("binding", &["create"][..]));
        }
        subs
    }
}

/// Finds a resource by group, version and plural.
pub fn lookup(group: &str, version: &str, plural: &str) -> Option<&'static ResourceType> {
    RESOURCES
        .iter()
        .find(|r| r.group == group && r.version == version && r.plural == plural)
}

/// Looks a resource up by its store index.
pub fn by_index(index: usize) -> Option<&'static ResourceType> {
    RESOURCES.get(index)
}

/// The distinct API groups (other than core), in registry order.
pub fn groups() -> Vec<&'static str> {
    let mut groups: Vec<&'static str> = Vec::new();
    for r in RESOURCES.iter().filter(|r| !r.group.is_empty()) {
        if !groups.contains(&r.group) {
            groups.push(r.group);
        }
    }
    groups
}

/// The resource type for Namespaces.
pub fn namespaces() -> &'static ResourceType {
    &RESOURCES[0]
}
