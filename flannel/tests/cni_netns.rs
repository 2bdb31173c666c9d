//! The CNI plugin against a real kernel: a "node" and "pod" network
//! namespaces per test (never the machine's root namespace). The plugin
//! runs on a thread inside the node namespace, as the runtime would run it.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::PathBuf;
use std::time::Duration;

use flannel::cni::{CniEnv, CniError, code};
use flannel::subnet::SubnetEnv;
use host::netns::TestNetns;
use serde_json::{Value, json};

fn require_root() {
    assert!(
        nix::unistd::geteuid().is_root(),
        "CNI netns tests must run as root (they create network namespaces)"
    );
}

/// A node namespace with its own run/data dirs and subnet.env.
struct Node {
    ns: TestNetns,
    dir: tempfile::TempDir,
}

impl Node {
    fn new(tag: &str) -> Node {
        Node::with_env(tag, None)
    }

    fn dual_stack(tag: &str) -> Node {
        let v6 = (
            "fd00:42::/56".parse().expect("l"),
            "fd00:42::1/64".parse().expect("l"),
        );
        Node::with_env(tag, Some(v6))
    }

    fn with_env(tag: &str, v6: Option<(ipnet::Ipv6Net, ipnet::Ipv6Net)>) -> Node {
        require_root();
        let node = Node {
            ns: TestNetns::new(tag).expect("node netns"),
            dir: tempfile::tempdir().expect("tempdir"),
        };
        let env = SubnetEnv {
            network: Some("10.42.0.0/16".parse().expect("l")),
            subnet: Some("10.42.0.1/24".parse().expect("l")),
            ipv6_network: v6.map(|v| v.0),
            ipv6_subnet: v6.map(|v| v.1),
            mtu: 1450,
            ipmasq: true,
        };
        env.write_atomic(&node.subnet_file()).expect("subnet.env");
        node
    }

    fn subnet_file(&self) -> PathBuf {
        self.dir.path().join("run/subnet.env")
    }

    fn data_dir(&self) -> PathBuf {
        self.dir.path().join("data/cni")
    }

    fn conf(&self, port_mappings: Value) -> Value {
        let mut conf = json!({
            "cniVersion": "1.0.0", "name": "cbr0", "type": "nodenet",
            "subnetFile": self.subnet_file(), "dataDir": self.data_dir(),
        });
        if !port_mappings.is_null() {
            conf["runtimeConfig"] = json!({"portMappings": port_mappings});
        }
        conf
    }

    /// Runs the plugin in the node namespace.
    fn cni(
        &self,
        command: &str,
        id: &str,
        pod: Option<&TestNetns>,
        stdin: Vec<u8>,
    ) -> Result<Value, CniError> {
        let env = CniEnv {
            command: Some(command.into()),
            container_id: Some(id.into()),
            netns: pod.map(|p| p.path().to_string_lossy().into_owned()),
            ifname: Some("eth0".into()),
            args: None,
            path: Some("/opt/cni/bin".into()),
        };
        self.ns
            .run(move || flannel::cni::handle(&env, &stdin))
            .expect("enter node netns")
    }

    fn add(&self, id: &str, pod: &TestNetns, mappings: Value) -> Result<Value, CniError> {
        self.cni(
            "ADD",
            id,
            Some(pod),
            serde_json::to_vec(&self.conf(mappings)).expect("json"),
        )
    }

    fn del(&self, id: &str, pod: Option<&TestNetns>) -> Result<Value, CniError> {
        self.cni(
            "DEL",
            id,
            pod,
            serde_json::to_vec(&self.conf(Value::Null)).expect("json"),
        )
    }

    fn check(&self, id: &str, pod: &TestNetns) -> Result<Value, CniError> {
        self.cni(
            "CHECK",
            id,
            Some(pod),
            serde_json::to_vec(&self.conf(Value::Null)).expect("json"),
        )
    }

    fn ipam_files(&self) -> Vec<String> {
        let dir = self.data_dir().join("networks/cbr0");
        let Ok(entries) = std::fs::read_dir(dir) else {
            return Vec::new();
        };
        let mut names: Vec<String> = entries
            .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
            .filter(|n| n.parse::<std::net::IpAddr>().is_ok())
            .collect();
        names.sort();
        names
    }

    fn link(&self, name: &str) -> Option<Value> {
        let links = self.ns.ip_json(&["-d", "link", "show"]).expect("ip link");
        links
            .as_array()
            .expect("array")
            .iter()
            .find(|l| l["ifname"] == name)
            .cloned()
    }

    fn hostport_table(&self) -> Option<Value> {
        self.ns
            .run(|| host::nft::table_json("inet", "nodenet-hostport"))
            .expect("enter")
            .expect("nft")
    }
}

fn pod_ip(result: &Value) -> String {
    let cidr = result["ips"][0]["address"].as_str().expect("address");
    cidr.split('/').next().expect("ip").to_string()
}

fn addresses(ns: &TestNetns, dev: &str) -> Vec<String> {
    let v = ns.ip_json(&["addr", "show", "dev", dev]).expect("ip addr");
    v[0]["addr_info"]
        .as_array()
        .expect("addr_info")
        .iter()
        .filter(|a| a["family"] == "inet")
        .map(|a| format!("{}/{}", a["local"].as_str().expect("local"), a["prefixlen"]))
        .collect()
}

/// A one-shot echo server bound inside `ns`; returns the thread handle.
fn serve_once(ns: &TestNetns, addr: &str) -> std::thread::JoinHandle<String> {
    let addr: SocketAddr = addr.parse().expect("addr");
    let listener = ns
        .run(move || TcpListener::bind(addr))
        .expect("enter")
        .expect("bind");
    std::thread::spawn(move || {
        let (mut conn, peer) = listener.accept().expect("accept");
        let mut buf = [0u8; 5];
        conn.read_exact(&mut buf).expect("read");
        conn.write_all(b"pong").expect("write");
        format!("{}", peer.ip())
    })
}

/// Connects from inside `ns`, sends "ping", returns the reply.
fn ping_from(ns: &TestNetns, addr: &str) -> std::io::Result<String> {
    let addr: SocketAddr = addr.parse().expect("addr");
    ns.run(move || {
        let mut s = TcpStream::connect_timeout(&addr, Duration::from_secs(3))?;
        s.set_read_timeout(Some(Duration::from_secs(3)))?;
        s.write_all(b"ping!")?;
        let mut reply = String::new();
        s.read_to_string(&mut reply)?;
        Ok(reply)
    })
    .expect("enter")
}

#[test]
fn add_wires_bridge_veth_and_pod_then_del_removes_them() {
    let node = Node::new("cni-add");
    let pod = TestNetns::new("cni-pod").expect("pod");
    let result = node.add("c1", &pod, Value::Null).expect("ADD");

    assert_eq!(result["cniVersion"], "1.0.0");
    assert_eq!(
        result["ips"],
        json!([{"address":"10.42.0.2/24","gateway":"10.42.0.1","interface":2}])
    );
    assert_eq!(result["interfaces"][2]["sandbox"], json!(pod.path()));
    let veth = host::names::host_veth_name("c1", "eth0");
    assert_eq!(result["interfaces"][1]["name"], json!(veth));

    let bridge = node.link("cni0").expect("cni0 exists");
    assert_eq!(bridge["mtu"], 1450);
    assert_eq!(addresses(&node.ns, "cni0"), vec!["10.42.0.1/24"]);
    let host_end = node.link(&veth).expect("host veth");
    assert_eq!(host_end["master"], "cni0");
    assert_eq!(host_end["linkinfo"]["info_slave_data"]["hairpin"], true);
    assert_eq!(host_end["mtu"], 1450);
    let forward = node
        .ns
        .run(|| host::sysctl::read("net.ipv4.ip_forward"))
        .expect("enter")
        .expect("read");
    assert_eq!(forward, "1");

    assert_eq!(addresses(&pod, "eth0"), vec!["10.42.0.2/24"]);
    let pod_link = pod.ip_json(&["link", "show", "eth0"]).expect("eth0");
    assert_eq!(
        result["interfaces"][2]["mac"], pod_link[0]["address"],
        "result MAC is the pod's"
    );
    assert_eq!(result["interfaces"][1]["mac"], host_end["address"]);
    let routes = pod.ip_json(&["route", "show"]).expect("routes");
    let via: Vec<(String, String)> = routes
        .as_array()
        .expect("array")
        .iter()
        .filter(|r| r.get("gateway").is_some())
        .map(|r| {
            (
                r["dst"].as_str().expect("dst").to_string(),
                r["gateway"].as_str().expect("gw").to_string(),
            )
        })
        .collect();
    assert!(
        via.contains(&("default".into(), "10.42.0.1".into())),
        "{routes}"
    );
    assert!(
        via.contains(&("10.42.0.0/16".into(), "10.42.0.1".into())),
        "{routes}"
    );
    let lo = pod.ip_json(&["link", "show", "lo"]).expect("lo");
    assert!(
        lo[0]["flags"]
            .as_array()
            .expect("flags")
            .iter()
            .any(|f| f == "UP")
    );

    assert_eq!(node.check("c1", &pod).expect("CHECK"), Value::Null);
    assert_eq!(node.ipam_files(), vec!["10.42.0.2"]);

    assert_eq!(node.del("c1", Some(&pod)).expect("DEL"), Value::Null);
    assert!(node.link(&veth).is_none(), "veth removed");
    assert!(
        pod.ip_json(&["link", "show"])
            .expect("links")
            .as_array()
            .expect("a")
            .iter()
            .all(|l| l["ifname"] != "eth0")
    );
    assert!(node.ipam_files().is_empty(), "IP released");
    node.del("c1", Some(&pod)).expect("second DEL succeeds");
    node.del("never-added", None)
        .expect("DEL of unknown container succeeds");
    let err = node.check("c1", &pod).expect_err("CHECK after DEL");
    assert_eq!(err.code, code::UNKNOWN_CONTAINER);
}

#[test]
fn check_names_what_is_missing() {
    let node = Node::new("cni-check");
    let pod = TestNetns::new("cni-pod").expect("pod");
    node.add("c1", &pod, Value::Null).expect("ADD");
    pod.ip(&["addr", "flush", "dev", "eth0"]).expect("flush");
    let err = node.check("c1", &pod).expect_err("address gone");
    assert_eq!(err.code, code::CHECK_FAILED);
    assert!(err.msg.contains("address 10.42.0.2/24 on eth0"), "{err}");
    node.del("c1", Some(&pod)).expect("DEL");
}

#[test]
fn two_pods_on_one_node_talk_tcp() {
    let node = Node::new("cni-two");
    let a = TestNetns::new("cni-a").expect("pod a");
    let b = TestNetns::new("cni-b").expect("pod b");
    let ra = node.add("ca", &a, Value::Null).expect("ADD a");
    let rb = node.add("cb", &b, Value::Null).expect("ADD b");
    let (ip_a, ip_b) = (pod_ip(&ra), pod_ip(&rb));
    assert_ne!(ip_a, ip_b);
    let server = serve_once(&b, &format!("{ip_b}:7000"));
    assert_eq!(
        ping_from(&a, &format!("{ip_b}:7000")).expect("a -> b"),
        "pong"
    );
    assert_eq!(server.join().expect("server"), ip_a, "no NAT between pods");
    node.del("ca", Some(&a)).expect("DEL a");
    node.del("cb", Some(&b)).expect("DEL b");
}

#[test]
fn twenty_concurrent_adds_get_distinct_addresses() {
    let node = std::sync::Arc::new(Node::new("cni-many"));
    let pods: Vec<std::sync::Arc<TestNetns>> = (0..20)
        .map(|i| std::sync::Arc::new(TestNetns::new(&format!("p{i}")).expect("pod")))
        .collect();
    let threads: Vec<_> = pods
        .iter()
        .enumerate()
        .map(|(i, pod)| {
            let (node, pod) = (node.clone(), pod.clone());
            std::thread::spawn(move || {
                node.add(&format!("c{i}"), &pod, Value::Null)
                    .map(|r| pod_ip(&r))
            })
        })
        .collect();
    let mut ips: Vec<String> = threads
        .into_iter()
        .map(|t| t.join().expect("thread").expect("ADD"))
        .collect();
    ips.sort();
    ips.dedup();
    assert_eq!(ips.len(), 20, "{ips:?}");
    assert_eq!(node.ipam_files().len(), 20);
    for (i, pod) in pods.iter().enumerate() {
        node.del(&format!("c{i}"), Some(pod)).expect("DEL");
    }
    assert!(node.ipam_files().is_empty());
}

#[test]
fn host_port_dnat_reaches_the_pod_and_del_removes_it() {
    let node = Node::new("cni-hp");
    node.ns
        .ip(&["addr", "add", "192.0.2.10/32", "dev", "lo"])
        .expect("node address");
    let pod = TestNetns::new("cni-hp-pod").expect("pod");
    let other = TestNetns::new("cni-hp-other").expect("pod");
    // SCTP sockets are unavailable on this kernel: the SCTP mapping is checked
    // in the ruleset (CHECK) only, TCP with traffic.
    let mappings = json!([
        {"hostPort": 8080, "containerPort": 80, "protocol": "tcp"},
        {"hostPort": 5353, "containerPort": 53, "protocol": "udp", "hostIP": "192.0.2.10"},
        {"hostPort": 9999, "containerPort": 99, "protocol": "sctp"}
    ]);
    let result = node.add("web", &pod, mappings).expect("ADD");
    let other_result = node.add("client", &other, Value::Null).expect("ADD client");
    let ip = pod_ip(&result);

    let table = node.hostport_table().expect("table exists");
    let chain = host::names::hostport_container_chain("web");
    let items = table["nftables"].as_array().expect("array");
    assert!(items.iter().any(|i| i["chain"]["name"] == chain.as_str()));
    assert!(items.iter().any(|i| {
        i["rule"]["expr"]
            .to_string()
            .contains(&format!("\"addr\":\"{ip}\""))
    }));

    // Node address, from the node itself.
    let server = serve_once(&pod, "0.0.0.0:80");
    assert_eq!(
        ping_from(&node.ns, "192.0.2.10:8080").expect("node -> hostPort"),
        "pong"
    );
    server.join().expect("server");
    // Localhost, masqueraded (route_localnet on cni0).
    let server = serve_once(&pod, "0.0.0.0:80");
    assert_eq!(
        ping_from(&node.ns, "127.0.0.1:8080").expect("localhost -> hostPort"),
        "pong"
    );
    assert_eq!(
        server.join().expect("server"),
        "10.42.0.1",
        "localhost traffic is masqueraded"
    );
    // Another pod through the node address (hairpin via the node, masqueraded).
    let server = serve_once(&pod, "0.0.0.0:80");
    assert_eq!(
        ping_from(&other, "192.0.2.10:8080").expect("pod -> hostPort"),
        "pong"
    );
    assert_eq!(server.join().expect("server"), "10.42.0.1");
    assert_eq!(node.check("web", &pod).expect("CHECK"), Value::Null);
    let _ = other_result;

    node.del("web", Some(&pod)).expect("DEL");
    let table = node.hostport_table().expect("table stays");
    assert!(
        !table.to_string().contains(&chain),
        "container chain and jump removed: {table}"
    );
    assert!(
        ping_from(&node.ns, "192.0.2.10:8080").is_err(),
        "no mapping after DEL"
    );
    node.del("client", Some(&other)).expect("DEL client");
}

#[test]
fn malformed_input_gets_its_code_and_leaves_nothing() {
    let node = Node::new("cni-bad");
    let pod = TestNetns::new("cni-bad-pod").expect("pod");
    let err = node
        .cni("ADD", "c1", Some(&pod), b"{oops".to_vec())
        .expect_err("bad json");
    assert_eq!(err.code, code::DECODE);
    let mut conf = node.conf(Value::Null);
    conf["type"] = json!("bridge");
    let err = node
        .cni(
            "ADD",
            "c1",
            Some(&pod),
            serde_json::to_vec(&conf).expect("j"),
        )
        .expect_err("bad type");
    assert_eq!(err.code, code::INVALID_CONFIG);
    assert!(err.msg.contains("type"));
    let err = node
        .cni(
            "ADD",
            "bad/id",
            Some(&pod),
            serde_json::to_vec(&node.conf(Value::Null)).expect("j"),
        )
        .expect_err("bad id");
    assert_eq!(err.code, code::BAD_ENV);
    assert!(node.link("cni0").is_none(), "nothing created");
    assert!(node.ipam_files().is_empty());

    let gone = TestNetns::new("cni-gone").expect("netns");
    let gone_path = gone.path();
    drop(gone);
    let env_missing = CniEnv {
        command: Some("ADD".into()),
        container_id: Some("c2".into()),
        netns: Some(gone_path.to_string_lossy().into_owned()),
        ifname: Some("eth0".into()),
        ..CniEnv::default()
    };
    let stdin = serde_json::to_vec(&node.conf(Value::Null)).expect("j");
    let err = node
        .ns
        .run(move || flannel::cni::handle(&env_missing, &stdin))
        .expect("enter")
        .expect_err("missing netns");
    assert_eq!(err.code, code::BAD_ENV);
    assert!(err.msg.contains("CNI_NETNS"), "{err}");
    assert!(node.ipam_files().is_empty(), "no address leaked");
}

#[test]
fn missing_subnet_env_is_try_again_later() {
    let node = Node::new("cni-early");
    std::fs::remove_file(node.subnet_file()).expect("remove subnet.env");
    let pod = TestNetns::new("cni-early-pod").expect("pod");
    let err = node
        .add("c1", &pod, Value::Null)
        .expect_err("no subnet.env");
    assert_eq!(err.code, code::TRY_AGAIN);
    assert!(err.msg.contains("subnet.env not yet written"), "{err}");
    assert!(node.link("cni0").is_none());
}

#[test]
fn failure_after_allocation_rolls_everything_back() {
    let node = Node::new("cni-undo");
    let pod = TestNetns::new("cni-undo-pod").expect("pod");
    // A foreign chain with our base chain's name but another hook makes the
    // hostPort transaction fail after the veth and address exist.
    let sabotage = "add table inet nodenet-hostport\nadd chain inet nodenet-hostport prerouting { type filter hook input priority 0; }\n";
    node.ns
        .run(move || host::nft::apply(sabotage))
        .expect("enter")
        .expect("nft");
    let mappings = json!([{"hostPort": 8080, "containerPort": 80}]);
    let err = node.add("c1", &pod, mappings).expect_err("nft must fail");
    assert_eq!(err.code, code::KERNEL, "{err}");
    assert!(err.msg.contains("hostPort"), "{err}");
    assert!(
        node.link(&host::names::host_veth_name("c1", "eth0"))
            .is_none(),
        "veth rolled back"
    );
    assert!(node.ipam_files().is_empty(), "address released");
    assert!(
        !node.data_dir().join("containers/c1.json").exists(),
        "no state"
    );
    // Once the obstacle is gone the same container can be added.
    node.ns
        .run(|| host::nft::delete_table("inet", "nodenet-hostport"))
        .expect("enter")
        .expect("nft");
    node.add("c1", &pod, json!([{"hostPort": 8080, "containerPort": 80}]))
        .expect("ADD after fix");
    node.del("c1", Some(&pod)).expect("DEL");
}

#[test]
fn del_after_pod_netns_is_gone_succeeds() {
    let node = Node::new("cni-gone");
    let pod = TestNetns::new("cni-gone-pod").expect("pod");
    node.add("c1", &pod, Value::Null).expect("ADD");
    let path = pod.path();
    drop(pod); // deleting the netns destroys the pod end and with it the veth
    let env = CniEnv {
        command: Some("DEL".into()),
        container_id: Some("c1".into()),
        netns: Some(path.to_string_lossy().into_owned()),
        ifname: Some("eth0".into()),
        ..CniEnv::default()
    };
    let stdin = serde_json::to_vec(&node.conf(Value::Null)).expect("j");
    node.ns
        .run(move || flannel::cni::handle(&env, &stdin))
        .expect("enter")
        .expect("DEL");
    assert!(node.ipam_files().is_empty());
}

#[test]
fn dual_stack_pods_get_ipv6_and_talk_over_it() {
    let node = Node::dual_stack("cni-v6");
    let a = TestNetns::new("cni-v6a").expect("pod a");
    let b = TestNetns::new("cni-v6b").expect("pod b");
    let ra = node.add("ca", &a, Value::Null).expect("ADD a");
    let mappings = json!([{"hostPort": 8081, "containerPort": 7001}]);
    let rb = node.add("cb", &b, mappings).expect("ADD b");
    assert_eq!(
        ra["ips"][1],
        json!({"address":"fd00:42::2/64","gateway":"fd00:42::1","interface":2})
    );
    let routes = ra["routes"].as_array().expect("routes");
    assert!(
        routes.contains(&json!({"dst":"::/0","gw":"fd00:42::1"})),
        "{routes:?}"
    );
    assert!(
        routes.contains(&json!({"dst":"fd00:42::/56","gw":"fd00:42::1"})),
        "{routes:?}"
    );
    let v6_routes = a
        .ip_json(&["-6", "route", "show", "default"])
        .expect("routes");
    assert_eq!(v6_routes[0]["gateway"], "fd00:42::1", "{v6_routes}");
    let ip_b = rb["ips"][1]["address"]
        .as_str()
        .expect("v6")
        .split('/')
        .next()
        .expect("ip")
        .to_string();
    let server = serve_once(&b, &format!("[{ip_b}]:7000"));
    assert_eq!(
        ping_from(&a, &format!("[{ip_b}]:7000")).expect("a -> b over IPv6"),
        "pong"
    );
    assert_eq!(server.join().expect("server"), "fd00:42::2");
    // hostPort over IPv6: the node's cni0 address is local, DNAT to pod b.
    let server = serve_once(&b, "[::]:7001");
    assert_eq!(
        ping_from(&node.ns, "[fd00:42::1]:8081").expect("node -> v6 hostPort"),
        "pong"
    );
    server.join().expect("server");
    assert_eq!(node.check("cb", &b).expect("CHECK"), Value::Null);
    assert_eq!(node.ipam_files().len(), 4);
    node.del("ca", Some(&a)).expect("DEL a");
    node.del("cb", Some(&b)).expect("DEL b");
    assert!(node.ipam_files().is_empty());
}
