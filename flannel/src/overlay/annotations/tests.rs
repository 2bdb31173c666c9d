use super::*;

fn mac(s: &str) -> MacAddr {
    s.parse().expect("test literal")
}

fn map(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

fn vxlan_facts() -> LocalFacts {
    LocalFacts {
        backend: Backend::Vxlan,
        v4: Some(FamilyFacts {
            public_ip: "192.168.50.2".parse().expect("ip"),
            vtep_mac: Some(mac("0e:11:22:33:44:55")),
            wireguard: None,
        }),
        v6: None,
        overwrites: vec![],
    }
}

#[test]
fn vxlan_data_renders_flannels_exact_bytes() {
    let data = VxlanData {
        vni: 1,
        vtep_mac: mac("0E:11:22:33:44:55"),
    };
    assert_eq!(data.render(), r#"{"VNI":1,"VtepMAC":"0e:11:22:33:44:55"}"#);
}

#[test]
fn vxlan_data_parses_any_key_order_and_case() {
    let want = VxlanData {
        vni: 1,
        vtep_mac: mac("0e:11:22:33:44:55"),
    };
    for text in [
        r#"{"VNI":1,"VtepMAC":"0e:11:22:33:44:55"}"#,
        r#"{ "VtepMAC": "0E:11:22:33:44:55", "VNI": 1 }"#,
        r#"{"vni":1,"vtepmac":"0e:11:22:33:44:55","Extra":true}"#,
    ] {
        assert_eq!(VxlanData::parse(text), Ok(want), "{text}");
    }
}

#[test]
fn vxlan_data_rejects_malformed_with_reason() {
    let cases = [
        ("null", "JSON object"),
        ("{", "not JSON"),
        (r#"{"VtepMAC":"0e:11:22:33:44:55"}"#, "VNI"),
        (r#"{"VNI":"1","VtepMAC":"0e:11:22:33:44:55"}"#, "VNI"),
        (r#"{"VNI":1}"#, "VtepMAC"),
        (r#"{"VNI":1,"VtepMAC":"0e:11:22"}"#, "MAC"),
        (r#"{"VNI":-1,"VtepMAC":"0e:11:22:33:44:55"}"#, "VNI"),
    ];
    for (text, needle) in cases {
        let err = VxlanData::parse(text).expect_err(text);
        assert!(err.contains(needle), "{text}: {err}");
    }
}

#[test]
fn desired_vxlan_annotations_are_flannels() {
    let got = desired_annotations(&vxlan_facts(), &BTreeMap::new());
    let want = map(&[
        (KUBE_SUBNET_MANAGER, "true"),
        (BACKEND_TYPE, "vxlan"),
        (BACKEND_DATA, r#"{"VNI":1,"VtepMAC":"0e:11:22:33:44:55"}"#),
        (PUBLIC_IP, "192.168.50.2"),
    ]);
    assert_eq!(got, want);
}

#[test]
fn desired_host_gw_dual_stack_writes_null_data_per_family() {
    let facts = LocalFacts {
        backend: Backend::HostGw,
        v4: Some(FamilyFacts {
            public_ip: "192.168.50.2".parse().expect("ip"),
            vtep_mac: None,
            wireguard: None,
        }),
        v6: Some(FamilyFacts {
            public_ip: "fd00:50::2".parse().expect("ip"),
            vtep_mac: None,
            wireguard: None,
        }),
        overwrites: vec![],
    };
    let got = desired_annotations(&facts, &BTreeMap::new());
    let want = map(&[
        (KUBE_SUBNET_MANAGER, "true"),
        (BACKEND_TYPE, "host-gw"),
        (BACKEND_DATA, "null"),
        (BACKEND_V6_DATA, "null"),
        (PUBLIC_IP, "192.168.50.2"),
        (PUBLIC_IPV6, "fd00:50::2"),
    ]);
    assert_eq!(got, want);
}

#[test]
fn existing_overwrite_wins_and_is_not_rewritten() {
    let current = map(&[(PUBLIC_IP_OVERWRITE, "203.0.113.9")]);
    let got = desired_annotations(&vxlan_facts(), &current);
    assert_eq!(got[PUBLIC_IP], "203.0.113.9");
    assert!(!got.contains_key(PUBLIC_IP_OVERWRITE));
}

#[test]
fn configured_overwrite_is_written_and_used() {
    let mut facts = vxlan_facts();
    facts.overwrites = vec!["198.51.100.7".parse().expect("ip")];
    let current = map(&[(PUBLIC_IP_OVERWRITE, "203.0.113.9")]);
    let got = desired_annotations(&facts, &current);
    assert_eq!(got[PUBLIC_IP_OVERWRITE], "198.51.100.7");
    assert_eq!(got[PUBLIC_IP], "198.51.100.7");
}

#[test]
fn overwrite_of_wrong_family_is_ignored() {
    let current = map(&[(PUBLIC_IP_OVERWRITE, "fd00::9")]);
    let got = desired_annotations(&vxlan_facts(), &current);
    assert_eq!(got[PUBLIC_IP], "192.168.50.2");
}

#[test]
fn patch_is_none_when_nothing_changes() {
    let desired = desired_annotations(&vxlan_facts(), &BTreeMap::new());
    let mut current = desired.clone();
    current.insert("other/annotation".into(), "kept".into());
    assert_eq!(annotations_patch(&current, &desired), None);
}

#[test]
fn patch_sets_only_changed_keys() {
    let desired = desired_annotations(&vxlan_facts(), &BTreeMap::new());
    let mut current = desired.clone();
    current.insert(PUBLIC_IP.into(), "192.168.50.99".into());
    current.remove(KUBE_SUBNET_MANAGER);
    let patch = annotations_patch(&current, &desired).expect("changed");
    assert_eq!(
        patch,
        serde_json::json!({"metadata": {"annotations": {
            KUBE_SUBNET_MANAGER: "true",
            PUBLIC_IP: "192.168.50.2",
        }}})
    );
}

#[test]
fn wireguard_annotations_carry_key_and_port_per_family() {
    use crate::overlay::wireguard::key::WgKey;
    let key = WgKey::from_base64("hSDwCYkwp1R0i33ctD73Wg2/Og0mOBr066SpjqqbTmo=").expect("key");
    let facts_of = |ip: &str, port: u16| FamilyFacts {
        public_ip: ip.parse().expect("ip"),
        vtep_mac: None,
        wireguard: Some(WireguardData {
            public_key: key,
            port: Some(port),
        }),
    };
    let facts = LocalFacts {
        backend: Backend::Wireguard,
        v4: Some(facts_of("192.168.50.2", 51820)),
        v6: Some(facts_of("fd00:50::2", 51821)),
        overwrites: vec![],
    };
    let want = map(&[
        (KUBE_SUBNET_MANAGER, "true"),
        (BACKEND_TYPE, "wireguard"),
        (
            BACKEND_DATA,
            r#"{"PublicKey":"hSDwCYkwp1R0i33ctD73Wg2/Og0mOBr066SpjqqbTmo=","Port":51820}"#,
        ),
        (
            BACKEND_V6_DATA,
            r#"{"PublicKey":"hSDwCYkwp1R0i33ctD73Wg2/Og0mOBr066SpjqqbTmo=","Port":51821}"#,
        ),
        (PUBLIC_IP, "192.168.50.2"),
        (PUBLIC_IPV6, "fd00:50::2"),
    ]);
    let desired = desired_annotations(&facts, &BTreeMap::new());
    assert_eq!(desired, want);
    // A restart with the same key writes nothing.
    assert_eq!(annotations_patch(&desired, &desired), None);
}
