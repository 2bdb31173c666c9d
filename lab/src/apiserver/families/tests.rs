use super::*;
use serde_json::json;

const DUAL: &[Family] = &[Family::V4, Family::V6];
const V4_ONLY: &[Family] = &[Family::V4];

fn svc(spec: Value) -> Value {
    json!({"metadata": {"name": "web", "namespace": "default"}, "spec": spec})
}

fn selected(mut spec: Value) -> Value {
    spec["selector"] = json!({"app": "web"});
    svc(spec)
}

fn ips(policy: &'static str, families: &[Family], wanted: &[Option<&str>]) -> Decision {
    Decision::Ips {
        policy,
        families: families.to_vec(),
        wanted: wanted
            .iter()
            .map(|w| w.map(|t| t.parse().unwrap()))
            .collect(),
    }
}

fn field_of(err: ApiError) -> String {
    match err {
        ApiError::Invalid { field, .. } => field,
        other => panic!("not an Invalid error: {other:?}"),
    }
}

#[test]
fn nothing_requested_is_single_stack_of_the_primary_family() {
    let d = decide(&selected(json!({})), None, DUAL).unwrap();
    assert_eq!(d, ips(SINGLE, &[Family::V4], &[None]));
    let d = decide(&selected(json!({})), None, &[Family::V6, Family::V4]).unwrap();
    assert_eq!(d, ips(SINGLE, &[Family::V6], &[None]));
}

#[test]
fn prefer_and_require_dual_stack_add_the_other_family() {
    let prefer = selected(json!({"ipFamilyPolicy": PREFER_DUAL}));
    assert_eq!(
        decide(&prefer, None, DUAL).unwrap(),
        ips(PREFER_DUAL, DUAL, &[None, None])
    );
    // PreferDualStack on a single-stack cluster stays single.
    assert_eq!(
        decide(&prefer, None, V4_ONLY).unwrap(),
        ips(PREFER_DUAL, V4_ONLY, &[None])
    );
    let v6_first = selected(json!({"ipFamilyPolicy": REQUIRE_DUAL, "ipFamilies": ["IPv6"]}));
    assert_eq!(
        decide(&v6_first, None, DUAL).unwrap(),
        ips(REQUIRE_DUAL, &[Family::V6, Family::V4], &[None, None])
    );
    let require = selected(json!({"ipFamilyPolicy": REQUIRE_DUAL}));
    let err = decide(&require, None, V4_ONLY).unwrap_err();
    assert_eq!(field_of(err), "spec.ipFamilyPolicy");
}

#[test]
fn two_families_or_two_ips_default_to_require_dual_stack() {
    let fams = selected(json!({"ipFamilies": ["IPv6", "IPv4"]}));
    assert_eq!(
        decide(&fams, None, DUAL).unwrap(),
        ips(REQUIRE_DUAL, &[Family::V6, Family::V4], &[None, None])
    );
    // The kube-dns Service of the DNS component.
    let dns = svc(json!({
        "clusterIP": "10.43.0.10", "clusterIPs": ["10.43.0.10", "fd43::a"],
        "ipFamilies": ["IPv4", "IPv6"], "ipFamilyPolicy": REQUIRE_DUAL
    }));
    assert_eq!(
        decide(&dns, None, DUAL).unwrap(),
        ips(REQUIRE_DUAL, DUAL, &[Some("10.43.0.10"), Some("fd43::a")])
    );
    let two_ips = svc(json!({"clusterIPs": ["fd43::5", "10.43.0.5"]}));
    assert_eq!(
        decide(&two_ips, None, DUAL).unwrap(),
        ips(
            REQUIRE_DUAL,
            &[Family::V6, Family::V4],
            &[Some("fd43::5"), Some("10.43.0.5")]
        )
    );
}

#[test]
fn single_stack_ipv6_from_family_or_address() {
    let by_family = selected(json!({"ipFamilies": ["IPv6"]}));
    assert_eq!(
        decide(&by_family, None, DUAL).unwrap(),
        ips(SINGLE, &[Family::V6], &[None])
    );
    let by_ip = selected(json!({"clusterIP": "fd43::7"}));
    assert_eq!(
        decide(&by_ip, None, DUAL).unwrap(),
        ips(SINGLE, &[Family::V6], &[Some("fd43::7")])
    );
    let err = decide(&by_family, None, V4_ONLY).unwrap_err();
    assert_eq!(field_of(err), "spec.ipFamilies[0]");
    let err = decide(&by_ip, None, V4_ONLY).unwrap_err();
    assert_eq!(field_of(err), "spec.clusterIP");
}

#[test]
fn inconsistent_requests_name_the_field() {
    let cases = [
        (
            json!({"ipFamilyPolicy": "Sometimes"}),
            "spec.ipFamilyPolicy",
        ),
        (json!({"ipFamilies": ["IPv5"]}), "spec.ipFamilies[0]"),
        (
            json!({"ipFamilies": ["IPv4", "IPv4"]}),
            "spec.ipFamilies[1]",
        ),
        (
            json!({"clusterIPs": ["10.43.0.5", "10.43.0.6"]}),
            "spec.clusterIPs[1]",
        ),
        (
            json!({"clusterIPs": ["10.43.0.5", "bad"]}),
            "spec.clusterIPs[1]",
        ),
        (
            json!({"clusterIP": "10.43.0.5", "clusterIPs": ["10.43.0.6"]}),
            "spec.clusterIPs[0]",
        ),
        (
            json!({"ipFamilies": ["IPv6"], "clusterIP": "10.43.0.5"}),
            "spec.ipFamilies[0]",
        ),
        (
            json!({"ipFamilyPolicy": SINGLE, "ipFamilies": ["IPv4", "IPv6"]}),
            "spec.ipFamilyPolicy",
        ),
        (
            json!({"ipFamilyPolicy": SINGLE, "clusterIPs": ["10.43.0.5", "fd43::5"]}),
            "spec.ipFamilyPolicy",
        ),
    ];
    for (spec, field) in cases {
        let err = decide(&selected(spec.clone()), None, DUAL).unwrap_err();
        assert_eq!(field_of(err), field, "{spec}");
    }
}

#[test]
fn headless_services() {
    let with_selector = selected(json!({"clusterIP": "None"}));
    assert_eq!(
        decide(&with_selector, None, DUAL).unwrap(),
        Decision::Headless {
            policy: SINGLE,
            families: vec![Family::V4]
        }
    );
    let dual = selected(json!({"clusterIP": "None", "ipFamilyPolicy": REQUIRE_DUAL}));
    assert_eq!(
        decide(&dual, None, DUAL).unwrap(),
        Decision::Headless {
            policy: REQUIRE_DUAL,
            families: DUAL.to_vec()
        }
    );
    // Without a selector: PreferDualStack and both families, even on a
    // single-stack cluster (they are not checked against it).
    let bare = svc(json!({"clusterIP": "None"}));
    assert_eq!(
        decide(&bare, None, V4_ONLY).unwrap(),
        Decision::Headless {
            policy: PREFER_DUAL,
            families: DUAL.to_vec()
        }
    );
}

#[test]
fn updates_keep_the_primary_and_may_drop_the_secondary() {
    let stored = selected(json!({
        "clusterIP": "10.43.1.1", "clusterIPs": ["10.43.1.1", "fd43::100"],
        "ipFamilies": ["IPv4", "IPv6"], "ipFamilyPolicy": PREFER_DUAL
    }));
    // A replace that repeats nothing keeps both addresses.
    let bare = selected(json!({"ipFamilyPolicy": PREFER_DUAL}));
    assert_eq!(
        decide(&bare, Some(&stored), DUAL).unwrap(),
        ips(PREFER_DUAL, DUAL, &[Some("10.43.1.1"), Some("fd43::100")])
    );
    // SingleStack with the stored fields drops the IPv6 one.
    let mut single = stored.clone();
    single["spec"]["ipFamilyPolicy"] = json!(SINGLE);
    assert_eq!(
        decide(&single, Some(&stored), DUAL).unwrap(),
        ips(SINGLE, V4_ONLY, &[Some("10.43.1.1")])
    );
    let mut moved = stored.clone();
    moved["spec"]["clusterIP"] = json!("10.43.1.2");
    moved["spec"]["clusterIPs"] = json!(["10.43.1.2", "fd43::100"]);
    assert_eq!(
        field_of(decide(&moved, Some(&stored), DUAL).unwrap_err()),
        "spec.clusterIP"
    );
    // SingleStack -> PreferDualStack gains the other family.
    let v4 = selected(
        json!({"clusterIP": "10.43.1.1", "ipFamilyPolicy": SINGLE, "ipFamilies": ["IPv4"]}),
    );
    let upgraded = selected(
        json!({"clusterIP": "10.43.1.1", "ipFamilyPolicy": PREFER_DUAL, "ipFamilies": ["IPv4"]}),
    );
    assert_eq!(
        decide(&upgraded, Some(&v4), DUAL).unwrap(),
        ips(PREFER_DUAL, DUAL, &[Some("10.43.1.1"), None])
    );
}

#[test]
fn external_name_has_no_cluster_ip() {
    let e = svc(
        json!({"type": "ExternalName", "externalName": "x.example", "ipFamilyPolicy": REQUIRE_DUAL}),
    );
    assert_eq!(decide(&e, None, V4_ONLY).unwrap(), Decision::NoClusterIp);
}
