use super::*;

fn v4(s: &str) -> Ipv4Net {
    s.parse().expect("literal")
}

fn k3s_env() -> SubnetEnv {
    SubnetEnv {
        network: Some(v4("10.42.0.0/16")),
        subnet: Some(v4("10.42.0.1/24")),
        ipv6_network: None,
        ipv6_subnet: None,
        mtu: 1450,
        ipmasq: true,
    }
}

#[test]
fn renders_k3s_lines_in_order() {
    assert_eq!(
        k3s_env().render(),
        "FLANNEL_NETWORK=10.42.0.0/16\nFLANNEL_SUBNET=10.42.0.1/24\nFLANNEL_MTU=1450\nFLANNEL_IPMASQ=true\n"
    );
    let dual = SubnetEnv {
        ipv6_network: Some("2001:db8:42::/56".parse().expect("literal")),
        ipv6_subnet: Some("2001:db8:42::1/64".parse().expect("literal")),
        ..k3s_env()
    };
    assert_eq!(
        dual.render(),
        "FLANNEL_NETWORK=10.42.0.0/16\nFLANNEL_SUBNET=10.42.0.1/24\n\
         FLANNEL_IPV6_NETWORK=2001:db8:42::/56\nFLANNEL_IPV6_SUBNET=2001:db8:42::1/64\n\
         FLANNEL_MTU=1450\nFLANNEL_IPMASQ=true\n"
    );
}

#[test]
fn parse_roundtrips_render() {
    let env = k3s_env();
    assert_eq!(SubnetEnv::parse(&env.render()).expect("parse"), env);
    assert_eq!(env.pod_cidr_v4(), Some(v4("10.42.0.0/24")));
}

#[test]
fn parse_names_the_missing_key() {
    let cases = [
        (
            "FLANNEL_SUBNET=10.42.0.1/24\nFLANNEL_MTU=1450\nFLANNEL_IPMASQ=true\n",
            "FLANNEL_NETWORK",
        ),
        (
            "FLANNEL_NETWORK=10.42.0.0/16\nFLANNEL_MTU=1450\nFLANNEL_IPMASQ=true\n",
            "FLANNEL_SUBNET",
        ),
        (
            "FLANNEL_NETWORK=10.42.0.0/16\nFLANNEL_SUBNET=10.42.0.1/24\nFLANNEL_IPMASQ=true\n",
            "FLANNEL_MTU",
        ),
        (
            "FLANNEL_NETWORK=10.42.0.0/16\nFLANNEL_SUBNET=10.42.0.1/24\nFLANNEL_MTU=1450\n",
            "FLANNEL_IPMASQ",
        ),
    ];
    for (text, key) in cases {
        let err = SubnetEnv::parse(text).expect_err(key).to_string();
        assert!(err.contains(key), "{err} should name {key}");
    }
}

#[test]
fn parse_names_the_invalid_key() {
    let err = SubnetEnv::parse("FLANNEL_MTU=big\n")
        .expect_err("bad mtu")
        .to_string();
    assert!(err.contains("FLANNEL_MTU") && err.contains("big"), "{err}");
    let err = SubnetEnv::parse("garbage line\n")
        .expect_err("no =")
        .to_string();
    assert!(err.contains("garbage line"), "{err}");
}

#[test]
fn derive_from_node_pod_cidr() {
    let cluster: Vec<IpNet> = vec!["10.42.0.0/16".parse().expect("literal")];
    let env = derive(&["10.42.3.0/24".to_string()], &cluster, 1450).expect("derive");
    assert_eq!(env.subnet, Some(v4("10.42.3.1/24")));
    assert_eq!(env.network, Some(v4("10.42.0.0/16")));
    assert!(env.ipmasq);
}

#[test]
fn derive_dual_stack() {
    let cluster: Vec<IpNet> = vec![
        "10.42.0.0/16".parse().expect("literal"),
        "fd00:42::/56".parse().expect("literal"),
    ];
    let pods = ["10.42.1.0/24".to_string(), "fd00:42:0:1::/64".to_string()];
    let env = derive(&pods, &cluster, 1450).expect("derive");
    assert_eq!(
        env.ipv6_subnet,
        Some("fd00:42:0:1::1/64".parse().expect("literal"))
    );
}

#[test]
fn a_family_without_a_cluster_cidr_is_left_out() {
    let pods = ["10.42.1.0/24".to_string(), "fd00:42:0:1::/64".to_string()];
    let v4: Vec<IpNet> = vec!["10.42.0.0/16".parse().expect("literal")];
    let env = derive(&pods, &v4, 1450).expect("IPv4-only nodenet, dual-stack Node");
    assert_eq!(env.subnet, Some("10.42.1.1/24".parse().expect("literal")));
    assert_eq!((env.ipv6_network, env.ipv6_subnet), (None, None));
    let v6: Vec<IpNet> = vec!["fd00:42::/56".parse().expect("literal")];
    let env = derive(&pods, &v6, 1450).expect("IPv6-only nodenet, dual-stack Node");
    assert_eq!((env.network, env.subnet), (None, None));
    assert!(env.ipv6_subnet.is_some());
}

#[test]
fn derive_rejects_pod_cidr_outside_cluster_naming_the_field() {
    let cluster: Vec<IpNet> = vec!["10.42.0.0/16".parse().expect("literal")];
    for bad in ["10.99.0.0/24", "not-a-cidr", "10.42.0.0/8"] {
        let err = derive(&[bad.to_string()], &cluster, 1450)
            .expect_err(bad)
            .to_string();
        assert!(err.contains("spec.podCIDR") && err.contains(bad), "{err}");
    }
    let err = derive(&[], &cluster, 1450).expect_err("empty").to_string();
    assert!(err.contains("spec.podCIDR"), "{err}");
    let v6only = ["fd00::/64".to_string()];
    assert!(derive(&v6only, &cluster, 1450).is_err());
}

#[test]
fn write_atomic_then_read() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("nested/subnet.env");
    assert!(matches!(
        SubnetEnv::read(&path),
        Err(SubnetEnvError::NotFound { .. })
    ));
    k3s_env().write_atomic(&path).expect("write");
    assert_eq!(SubnetEnv::read(&path).expect("read"), k3s_env());
    let leftovers: Vec<_> = std::fs::read_dir(path.parent().expect("dir"))
        .expect("list")
        .map(|e| e.expect("entry").file_name())
        .collect();
    assert_eq!(leftovers, vec![std::ffi::OsString::from("subnet.env")]);
}
