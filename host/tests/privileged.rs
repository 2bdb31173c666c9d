//! Privileged tests of the host crate. Every kernel change happens inside a
//! TestNetns namespace; the machine's root namespace is never touched.

use std::os::fd::AsFd;

use host::link::{AddressFamilyFilter, Netlink, RouteSpec, VethSpec};
use host::netns::TestNetns;
use ipnet::IpNet;
use serde_json::Value;

fn require_root() {
    // Never skip silently: these tests need CAP_SYS_ADMIN/CAP_NET_ADMIN.
    assert!(
        nix::unistd::geteuid().is_root(),
        "host privileged tests must run as root (they create network namespaces)"
    );
}

fn net(s: &str) -> IpNet {
    s.parse().expect("test literal")
}

fn link_json(ns: &TestNetns, name: &str) -> Value {
    let v = ns
        .ip_json(&["-d", "link", "show", "dev", name])
        .expect("ip link show");
    v[0].clone()
}

#[test]
fn netns_thread_sees_only_its_namespace() {
    require_root();
    let ns = TestNetns::new("hostns").expect("netns");
    let links = ns
        .block_on(|| async {
            let nl = Netlink::connect()?;
            nl.links().await
        })
        .expect("enter")
        .expect("links");
    let names: Vec<_> = links.iter().map(|l| l.name.as_str()).collect();
    assert_eq!(names, vec!["lo"]);
    let path = ns.path();
    drop(ns);
    assert!(!path.exists(), "TestNetns drop must delete {path:?}");
}

#[test]
fn bridge_is_created_once_and_wrong_kind_is_refused() {
    require_root();
    let ns = TestNetns::new("bridge").expect("netns");
    let result = ns.block_on(|| async {
        let nl = Netlink::connect()?;
        let first = nl.ensure_bridge("br-test", 1400).await?;
        let second = nl.ensure_bridge("br-test", 9000).await?;
        let veth = VethSpec {
            host_name: "va",
            peer_name: "vb",
            mtu: 1500,
            peer_netns: None,
        };
        nl.create_veth(&veth).await?;
        let wrong = nl.ensure_bridge("va", 1500).await;
        Ok::<_, host::link::LinkError>((first, second, wrong))
    });
    let (first, second, wrong) = result.expect("enter").expect("netlink");
    assert_eq!(first.index, second.index);
    let shown = link_json(&ns, "br-test");
    assert_eq!(shown["mtu"], 1400, "MTU is set at creation only: {shown}");
    assert_eq!(shown["linkinfo"]["info_kind"], "bridge");
    assert!(
        shown["flags"]
            .as_array()
            .expect("flags")
            .iter()
            .any(|f| f == "UP")
    );
    let err = wrong.expect_err("veth is not a bridge").to_string();
    assert!(err.contains("va") && err.contains("veth"), "{err}");
}

#[test]
fn veth_into_other_netns_with_master_and_hairpin() {
    require_root();
    let node = TestNetns::new("node").expect("netns");
    let pod = TestNetns::new("pod").expect("netns");
    let pod_path = pod.path();
    node.block_on(move || async move {
        let pod_ns = std::fs::File::open(&pod_path).expect("open pod netns");
        let nl = Netlink::connect()?;
        nl.ensure_bridge("br0", 1450).await?;
        let spec = VethSpec {
            host_name: "vethtest0",
            peer_name: "eth0",
            mtu: 1450,
            peer_netns: Some(pod_ns.as_fd()),
        };
        nl.create_veth(&spec).await?;
        nl.set_master("vethtest0", "br0").await?;
        nl.set_hairpin("vethtest0", true).await?;
        nl.set_up("vethtest0").await
    })
    .expect("enter")
    .expect("netlink");
    let host_end = link_json(&node, "vethtest0");
    assert_eq!(host_end["master"], "br0");
    assert_eq!(host_end["mtu"], 1450);
    assert_eq!(
        host_end["linkinfo"]["info_slave_data"]["hairpin"], true,
        "{host_end}"
    );
    let pod_end = link_json(&pod, "eth0");
    assert_eq!(pod_end["mtu"], 1450);
    assert_eq!(pod_end["linkinfo"]["info_kind"], "veth");
}

#[test]
fn addresses_routes_and_delete_link() {
    require_root();
    let ns = TestNetns::new("addr").expect("netns");
    let (addrs, removed, after, existed, again, exists) = ns
        .block_on(|| async {
            let nl = Netlink::connect()?;
            nl.ensure_bridge("br1", 1500).await?;
            nl.add_address("br1", net("10.1.0.1/24")).await?;
            nl.add_address("br1", net("10.9.0.1/24")).await?;
            nl.add_address("br1", net("10.1.0.1/24")).await?; // idempotent
            nl.add_address("br1", net("fd00::1/64")).await?;
            let route = RouteSpec {
                dst: net("10.2.0.0/16"),
                gateway: Some("10.1.0.254".parse().expect("ip")),
                dev: None,
            };
            nl.add_route(&route).await?;
            let addrs = nl.addresses("br1", AddressFamilyFilter::V4).await?;
            let removed = nl
                .flush_addresses_except("br1", AddressFamilyFilter::V4, Some(net("10.1.0.1/24")))
                .await?;
            let after = nl.addresses("br1", AddressFamilyFilter::Any).await?;
            let existed = nl.delete_link("br1").await?;
            let again = nl.delete_link("br1").await?;
            let exists = nl.link_exists("br1").await?;
            Ok::<_, host::link::LinkError>((addrs, removed, after, existed, again, exists))
        })
        .expect("enter")
        .expect("netlink");
    assert_eq!(addrs, vec![net("10.1.0.1/24"), net("10.9.0.1/24")]);
    assert_eq!(removed, vec![net("10.9.0.1/24")]);
    assert!(after.contains(&net("10.1.0.1/24")) && after.contains(&net("fd00::1/64")));
    assert!(!after.contains(&net("10.9.0.1/24")));
    assert!(existed && !again && !exists);
}

#[test]
fn route_via_gateway_is_in_main_table() {
    require_root();
    let ns = TestNetns::new("route").expect("netns");
    ns.block_on(|| async {
        let nl = Netlink::connect()?;
        nl.ensure_bridge("br2", 1500).await?;
        nl.add_address("br2", net("10.5.0.1/24")).await?;
        let route = RouteSpec {
            dst: net("10.6.0.0/16"),
            gateway: Some("10.5.0.9".parse().expect("ip")),
            dev: Some("br2".into()),
        };
        nl.add_route(&route).await?;
        nl.add_route(&route).await // replace semantics: second add is fine
    })
    .expect("enter")
    .expect("netlink");
    let routes = ns
        .ip_json(&["route", "show", "10.6.0.0/16"])
        .expect("ip route");
    assert_eq!(routes[0]["gateway"], "10.5.0.9", "{routes}");
    assert_eq!(routes[0]["dev"], "br2");
}

#[test]
fn free_functions_act_in_the_calling_threads_namespace() {
    require_root();
    let ns = TestNetns::new("free").expect("netns");
    ns.ip(&[
        "link", "add", "vfree", "type", "veth", "peer", "name", "vfree-p",
    ])
    .expect("ip link add");
    let (before, deleted, after) = ns
        .block_on(|| async {
            let before = host::link::link_exists("vfree").await?;
            let deleted = host::link::delete_link("vfree").await?;
            let after = host::link::link_exists("vfree-p").await?;
            Ok::<_, host::link::LinkError>((before, deleted, after))
        })
        .expect("enter")
        .expect("netlink");
    assert!(before && deleted, "vfree existed and was deleted");
    assert!(!after, "deleting one veth end removes its peer");
}

#[test]
fn exec_in_netns_does_not_move_the_tokio_worker() {
    require_root();
    let ns = TestNetns::new("exec").expect("netns");
    let path = ns.path();
    let runtime = tokio::runtime::Runtime::new().expect("runtime");
    let own = std::fs::read_link("/proc/thread-self/ns/net").expect("own netns");
    let inside = runtime.block_on(async move {
        host::netns::exec_in_netns(&path, || async {
            std::fs::read_link("/proc/thread-self/ns/net").expect("netns link")
        })
        .await
    });
    let inside = inside.expect("enter");
    assert_ne!(inside, own);
    let after = std::fs::read_link("/proc/thread-self/ns/net").expect("own netns");
    assert_eq!(after, own);
}

#[test]
fn entering_a_missing_namespace_names_the_path() {
    let err = host::netns::run_in_netns(
        std::path::Path::new("/run/netns/nntest-does-not-exist"),
        || (),
    )
    .expect_err("missing netns");
    assert!(err.to_string().contains("nntest-does-not-exist"), "{err}");
}

#[test]
fn nft_apply_list_delete_in_a_namespace() {
    require_root();
    let ns = TestNetns::new("nft").expect("netns");
    let result = ns.run(|| {
        host::nft::apply("add table inet nntest-t\nadd chain inet nntest-t c { type nat hook prerouting priority dstnat; }\n")?;
        let tables = host::nft::list_tables()?;
        let json = host::nft::table_json("inet", "nntest-t")?;
        let bad = host::nft::apply("add table inet nntest-t\nadd chain inet nntest-t c2 { bogus }\n");
        let existed = host::nft::delete_table("inet", "nntest-t")?;
        let again = host::nft::delete_table("inet", "nntest-t")?;
        let missing = host::nft::table_json("inet", "nntest-t")?;
        Ok::<_, host::nft::NftError>((tables, json, bad, existed, again, missing))
    });
    let (tables, json, bad, existed, again, missing) = result.expect("enter").expect("nft");
    assert_eq!(
        tables,
        vec![host::nft::TableRef {
            family: "inet".into(),
            name: "nntest-t".into()
        }]
    );
    let items = json.expect("table exists")["nftables"]
        .as_array()
        .expect("array")
        .clone();
    assert!(
        items
            .iter()
            .any(|i| i["chain"]["name"] == "c" && i["chain"]["hook"] == "prerouting")
    );
    let err = bad.expect_err("bogus chain spec").to_string();
    assert!(err.contains("table inet nntest-t"), "{err}");
    assert!(existed && !again && missing.is_none());
}

#[test]
fn sysctl_ensure_is_idempotent_inside_namespace() {
    require_root();
    let ns = TestNetns::new("sysctl").expect("netns");
    let (first, second, value) = ns
        .run(|| {
            let first = host::sysctl::ensure("net.ipv4.ip_forward", "1")?;
            let second = host::sysctl::ensure("net.ipv4.ip_forward", "1")?;
            let value = host::sysctl::read("net.ipv4.ip_forward")?;
            Ok::<_, host::sysctl::SysctlError>((first, second, value))
        })
        .expect("enter")
        .expect("sysctl");
    assert!(first && !second);
    assert_eq!(value, "1");
}
