//! The ADD success result (CNI spec "Success" section).

use std::path::Path;

use serde_json::{Value, json};

use super::wire::{PodAddress, pod_routes};

/// Interfaces as reported: the bridge, the host veth, the pod interface.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Interfaces<'a> {
    pub bridge: (&'a str, Option<String>),
    pub host_veth: (&'a str, Option<String>),
    pub pod: (&'a str, Option<String>),
    pub sandbox: &'a Path,
}

/// Builds the result JSON. Before 1.0.0, `ips[].version` was required.
pub fn add_result(cni_version: &str, ifs: &Interfaces<'_>, addrs: &[PodAddress]) -> Value {
    let interface = |(name, mac): &(&str, Option<String>)| json!({"name": name, "mac": mac.clone().unwrap_or_default()});
    let mut pod = interface(&ifs.pod);
    pod["sandbox"] = json!(ifs.sandbox.to_string_lossy());
    let legacy = cni_version != "1.0.0";
    let ips: Vec<Value> = addrs
        .iter()
        .map(|a| {
            let mut ip = json!({"address": a.address.to_string(), "gateway": a.gateway.to_string(), "interface": 2});
            if legacy {
                ip["version"] = json!(if a.address.addr().is_ipv4() { "4" } else { "6" });
            }
            ip
        })
        .collect();
    let routes: Vec<Value> = addrs
        .iter()
        .flat_map(pod_routes)
        .map(|r| json!({"dst": r.dst.to_string(), "gw": r.gateway.map(|g| g.to_string())}))
        .collect();
    json!({
        "cniVersion": cni_version,
        "interfaces": [interface(&ifs.bridge), interface(&ifs.host_veth), pod],
        "ips": ips,
        "routes": routes,
        "dns": {},
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn result_has_sandbox_ips_routes() {
        let addrs = [PodAddress {
            address: "10.42.0.5/24".parse().expect("literal"),
            gateway: "10.42.0.1".parse().expect("literal"),
            cluster: Some("10.42.0.0/16".parse().expect("literal")),
        }];
        let ifs = Interfaces {
            bridge: ("cni0", Some("aa:aa:aa:aa:aa:aa".into())),
            host_veth: ("veth01234567", None),
            pod: ("eth0", Some("bb:bb:bb:bb:bb:bb".into())),
            sandbox: Path::new("/run/netns/p"),
        };
        let v = add_result("1.0.0", &ifs, &addrs);
        assert_eq!(
            v["interfaces"][2],
            json!({"name":"eth0","mac":"bb:bb:bb:bb:bb:bb","sandbox":"/run/netns/p"})
        );
        assert_eq!(
            v["ips"],
            json!([{"address":"10.42.0.5/24","gateway":"10.42.0.1","interface":2}])
        );
        assert_eq!(
            v["routes"],
            json!([{"dst":"10.42.0.0/16","gw":"10.42.0.1"},{"dst":"0.0.0.0/0","gw":"10.42.0.1"}])
        );
        assert_eq!(v["dns"], json!({}));
        let old = add_result("0.4.0", &ifs, &addrs);
        assert_eq!(old["ips"][0]["version"], "4");
    }
}
