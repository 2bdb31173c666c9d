use super::*;
use crate::cni::config::{PortMapping, Protocol};
use serde_json::json;

fn env(command: &str) -> CniEnv {
    CniEnv {
        command: Some(command.into()),
        container_id: Some("abc123".into()),
        netns: Some("/run/netns/pod".into()),
        ifname: Some("eth0".into()),
        args: None,
        path: Some("/opt/cni/bin".into()),
    }
}

fn conf() -> serde_json::Value {
    json!({"cniVersion":"1.0.0","name":"cbr0","type":"nodenet",
           "subnetFile":"/run/nodenet/subnet.env","dataDir":"/var/lib/nodenet/cni"})
}

fn bytes(v: &serde_json::Value) -> Vec<u8> {
    serde_json::to_vec(v).expect("serialize")
}

fn err(env: &CniEnv, stdin: &[u8]) -> CniError {
    parse(env, stdin).expect_err("must fail")
}

#[test]
fn add_request_is_validated() {
    let Request::Add(target, conf) = parse(&env("ADD"), &bytes(&conf())).expect("valid") else {
        panic!("not ADD");
    };
    assert_eq!(target.container_id, "abc123");
    assert_eq!(
        target.netns.as_deref(),
        Some(std::path::Path::new("/run/netns/pod"))
    );
    assert_eq!(
        conf.ipam_dir(),
        std::path::Path::new("/var/lib/nodenet/cni/networks/cbr0")
    );
    assert!(conf.port_mappings.is_empty());
}

#[test]
fn version_needs_no_config() {
    let only_command = CniEnv {
        command: Some("VERSION".into()),
        ..CniEnv::default()
    };
    assert_eq!(
        parse(&only_command, b"").expect("version"),
        Request::Version
    );
    let v = version_result("1.0.0");
    assert_eq!(
        v["supportedVersions"],
        json!(["0.3.0", "0.3.1", "0.4.0", "1.0.0"])
    );
}

#[test]
fn bad_env_vars_are_code_4_and_named() {
    let cases: Vec<(CniEnv, &str)> = vec![
        (
            CniEnv {
                command: None,
                ..env("ADD")
            },
            "CNI_COMMAND",
        ),
        (env("GC"), "CNI_COMMAND"),
        (
            CniEnv {
                container_id: None,
                ..env("ADD")
            },
            "CNI_CONTAINERID",
        ),
        (
            CniEnv {
                container_id: Some("../etc".into()),
                ..env("ADD")
            },
            "CNI_CONTAINERID",
        ),
        (
            CniEnv {
                ifname: Some("much-too-long-name".into()),
                ..env("ADD")
            },
            "CNI_IFNAME",
        ),
        (
            CniEnv {
                ifname: Some("a/b".into()),
                ..env("ADD")
            },
            "CNI_IFNAME",
        ),
        (
            CniEnv {
                netns: None,
                ..env("ADD")
            },
            "CNI_NETNS",
        ),
        (
            CniEnv {
                netns: Some("relative".into()),
                ..env("CHECK")
            },
            "CNI_NETNS",
        ),
    ];
    for (e, var) in cases {
        let error = err(&e, &bytes(&conf()));
        assert_eq!(error.code, code::BAD_ENV, "{var}: {error}");
        assert!(error.msg.contains(var), "{error} should name {var}");
    }
}

#[test]
fn del_without_netns_is_fine() {
    let e = CniEnv {
        netns: None,
        ..env("DEL")
    };
    let Request::Del(target, _) = parse(&e, &bytes(&conf())).expect("valid") else {
        panic!("not DEL");
    };
    assert_eq!(target.netns, None);
}

#[test]
fn decode_failures_are_code_6_and_name_the_field() {
    let mut wrong_type = conf();
    wrong_type["name"] = json!(42);
    let mut bad_port_type = conf();
    bad_port_type["runtimeConfig"] = json!({"portMappings":[{"hostPort":"80","containerPort":80}]});
    for (stdin, field) in [
        (b"{not json".to_vec(), "stdin"),
        (bytes(&json!([1])), "stdin"),
        (bytes(&wrong_type), "name"),
        (
            bytes(&bad_port_type),
            "runtimeConfig.portMappings[0].hostPort",
        ),
    ] {
        let error = err(&env("ADD"), &stdin);
        assert_eq!(error.code, code::DECODE, "{error}");
        assert!(error.msg.contains(field), "{error} should name {field}");
    }
}

#[test]
fn invalid_config_is_code_7_and_names_the_field() {
    let edits: Vec<(&str, serde_json::Value, &str)> = vec![
        ("type", json!("bridge"), "type"),
        ("name", json!("../x"), "name"),
        ("dataDir", json!("relative/dir"), "dataDir"),
        (
            "runtimeConfig",
            json!({"portMappings":[{"hostPort":0,"containerPort":80}]}),
            "portMappings[0].hostPort",
        ),
        (
            "runtimeConfig",
            json!({"portMappings":[{"hostPort":80,"containerPort":80,"protocol":"icmp"}]}),
            "portMappings[0].protocol",
        ),
        (
            "runtimeConfig",
            json!({"portMappings":[{"hostPort":80,"containerPort":80,"hostIP":"nope"}]}),
            "portMappings[0].hostIP",
        ),
    ];
    for (key, value, field) in edits {
        let mut c = conf();
        c[key] = value;
        let error = err(&env("ADD"), &bytes(&c));
        assert_eq!(error.code, code::INVALID_CONFIG, "{error}");
        assert!(error.msg.contains(field), "{error} should name {field}");
    }
    let mut missing = conf();
    missing
        .as_object_mut()
        .expect("object")
        .remove("cniVersion");
    assert!(
        err(&env("ADD"), &bytes(&missing))
            .msg
            .contains("cniVersion")
    );
}

#[test]
fn unsupported_version_is_code_1() {
    let mut c = conf();
    c["cniVersion"] = json!("0.2.0");
    assert_eq!(
        err(&env("ADD"), &bytes(&c)).code,
        code::INCOMPATIBLE_VERSION
    );
}

#[test]
fn port_mappings_are_decoded() {
    let mut c = conf();
    c["runtimeConfig"] = json!({"portMappings":[
        {"hostPort":8080,"containerPort":80,"protocol":"TCP"},
        {"hostPort":5353,"containerPort":53,"protocol":"udp","hostIP":"192.0.2.1"},
        {"hostPort":9,"containerPort":9,"hostIP":""}]});
    let Request::Add(_, conf) = parse(&env("ADD"), &bytes(&c)).expect("valid") else {
        panic!("not ADD");
    };
    assert_eq!(
        conf.port_mappings,
        vec![
            PortMapping {
                host_port: 8080,
                container_port: 80,
                protocol: Protocol::Tcp,
                host_ip: None
            },
            PortMapping {
                host_port: 5353,
                container_port: 53,
                protocol: Protocol::Udp,
                host_ip: Some("192.0.2.1".parse().expect("ip"))
            },
            PortMapping {
                host_port: 9,
                container_port: 9,
                protocol: Protocol::Tcp,
                host_ip: None
            },
        ]
    );
}

#[test]
fn pod_comes_from_cni_args_when_both_names_are_there() {
    use super::{PodRef, pod_from_args};
    let args = "IgnoreUnknown=1;K8S_POD_NAMESPACE=demo;K8S_POD_NAME=web;K8S_POD_UID=u";
    let want = PodRef {
        namespace: "demo".into(),
        name: "web".into(),
    };
    assert_eq!(pod_from_args(Some(args)), Some(want));
    assert_eq!(pod_from_args(Some("K8S_POD_NAME=web")), None);
    assert_eq!(
        pod_from_args(Some("K8S_POD_NAMESPACE=demo;K8S_POD_NAME=")),
        None
    );
    assert_eq!(pod_from_args(None), None);
}
