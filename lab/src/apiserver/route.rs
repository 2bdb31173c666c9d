//! URL paths to routes.

use super::error::ApiError;
use super::resources::{self, ResourceType};

/// A resource path: which type, namespace, object and subresource.
#[derive(Debug, Clone)]
pub struct ResourcePath {
    pub res: &'static ResourceType,
    /// Namespace from the path; None for cluster-scoped or all-namespaces.
    pub ns: Option<String>,
    pub name: Option<String>,
    pub sub: Option<String>,
}

#[derive(Debug)]
pub enum Route {
    Version,
    Health,
    CoreVersions,
    GroupList,
    Group(String),
    ResourceList { group: String, version: String },
    OpenApiRoot,
    OpenApi(String),
    Resource(ResourcePath),
}

pub fn parse(path: &str) -> Result<Route, ApiError> {
    let segs: Vec<&str> = path.split('/').filter(|s| !s.is_empty()).collect();
    let not_found = || ApiError::not_found("path", path);
    match segs.as_slice() {
        ["version"] => Ok(Route::Version),
        ["healthz" | "readyz" | "livez", ..] => Ok(Route::Health),
        ["api"] => Ok(Route::CoreVersions),
        ["api", v] => Ok(Route::ResourceList {
            group: String::new(),
            version: v.to_string(),
        }),
        ["api", v, rest @ ..] => resource_path("", v, rest).ok_or_else(not_found),
        ["openapi", "v3"] => Ok(Route::OpenApiRoot),
        ["openapi", "v3", gv @ ..] => Ok(Route::OpenApi(gv.join("/"))),
        ["apis"] => Ok(Route::GroupList),
        ["apis", g] => Ok(Route::Group(g.to_string())),
        ["apis", g, v] => Ok(Route::ResourceList {
            group: g.to_string(),
            version: v.to_string(),
        }),
        ["apis", g, v, rest @ ..] => resource_path(g, v, rest).ok_or_else(not_found),
        _ => Err(not_found()),
    }
}

fn resource_path(group: &str, version: &str, rest: &[&str]) -> Option<Route> {
    let path = |plural: &str, ns: Option<&str>, name: Option<&str>, sub: Option<&str>| {
        let res = resources::lookup(group, version, plural)?;
        if ns.is_some() && !res.namespaced || (name.is_some() && res.namespaced && ns.is_none()) {
            return None;
        }
        if sub.is_some_and(|s| !res.subresources().iter().any(|(known, _)| *known == s)) {
            return None;
        }
        Some(Route::Resource(ResourcePath {
            res,
            ns: ns.map(str::to_string),
            name: name.map(str::to_string),
            sub: sub.map(str::to_string),
        }))
    };
    let namespaced = match rest {
        ["namespaces", ns, plural] => path(plural, Some(ns), None, None),
        ["namespaces", ns, plural, name] => path(plural, Some(ns), Some(name), None),
        ["namespaces", ns, plural, name, sub] => path(plural, Some(ns), Some(name), Some(sub)),
        _ => None,
    };
    // `/namespaces/<name>/status` is the Namespace's own subresource.
    namespaced.or_else(|| match rest {
        [plural] => path(plural, None, None, None),
        [plural, name] => path(plural, None, Some(name), None),
        [plural, name, sub] => path(plural, None, Some(name), Some(sub)),
        _ => None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn res(path: &str) -> ResourcePath {
        match parse(path) {
            Ok(Route::Resource(r)) => r,
            other => panic!("{path}: {other:?}"),
        }
    }

    #[test]
    fn parses_paths() {
        let r = res("/api/v1/namespaces/default/pods/p/status");
        assert_eq!(
            (
                r.res.plural,
                r.ns.as_deref(),
                r.name.as_deref(),
                r.sub.as_deref()
            ),
            ("pods", Some("default"), Some("p"), Some("status"))
        );
        let r = res("/api/v1/namespaces/kube-system");
        assert_eq!(
            (r.res.plural, r.ns, r.name.as_deref()),
            ("namespaces", None, Some("kube-system"))
        );
        let r = res("/api/v1/namespaces/x/status");
        assert_eq!(
            (r.name.as_deref(), r.sub.as_deref()),
            (Some("x"), Some("status"))
        );
        let r = res("/apis/discovery.k8s.io/v1/endpointslices");
        assert_eq!((r.res.kind, r.ns), ("EndpointSlice", None));
        assert!(
            parse("/api/v1/pods/x").is_err(),
            "namespaced get needs a namespace"
        );
        assert!(parse("/api/v1/namespaces/x/nodes").is_err());
        assert!(parse("/apis/apps/v1/widgets").is_err());
        assert!(matches!(
            parse("/apis/apps/v1"),
            Ok(Route::ResourceList { .. })
        ));
    }
}
