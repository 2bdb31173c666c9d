//! Planner unit tests, organised like the upstream netpol e2e cases:
//! namespaces x, y, z with pods a, b, c; policies in, nft objects out.
//!
//! `allowed(plan, dir, ip)` reads the plan the way the kernel would walk it
//! (dispatch map -> class chain -> policy chains) and returns the policy
//! rules with every `@set` expanded to its elements, so the assertions say
//! which peers and ports a pod accepts.

use std::net::IpAddr;

use serde_json::json;

use super::names;
use super::*;
use crate::model::{
    Direction, Labels, NamedPort, NamespaceInfo, PodInfo, Policy, Problem, Protocol,
};

const NODE: &str = "node-1";

fn ip(s: &str) -> IpAddr {
    s.parse().expect("test IP")
}

fn labels(pairs: &[(&str, &str)]) -> Labels {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

/// x/a .2, x/b .3, x/c .4, y/a .5 ... z/c .10, all on node-1; label pod=<name>.
fn pods() -> Vec<PodInfo> {
    let mut out = Vec::new();
    let mut n = 2;
    for ns in ["x", "y", "z"] {
        for name in ["a", "b", "c"] {
            out.push(PodInfo {
                namespace: ns.into(),
                name: name.into(),
                node: Some(NODE.into()),
                ips: vec![ip(&format!("10.42.0.{n}"))],
                labels: labels(&[("pod", name)]),
                ports: vec![
                    NamedPort {
                        name: "serve-80-tcp".into(),
                        protocol: Protocol::Tcp,
                        port: 80,
                    },
                    NamedPort {
                        name: "serve-81-udp".into(),
                        protocol: Protocol::Udp,
                        port: 81,
                    },
                ],
                ..PodInfo::default()
            });
            n += 1;
        }
    }
    out
}

fn namespaces() -> Vec<NamespaceInfo> {
    ["x", "y", "z"]
        .iter()
        .map(|n| NamespaceInfo::new(n, labels(&[("ns", n)])))
        .collect()
}

fn node() -> NodeScope {
    NodeScope {
        name: NODE.into(),
        pod_cidrs: vec!["10.42.0.0/24".parse().expect("cidr")],
        fail_closed_unknown_pods: true,
    }
}

fn policy(ns: &str, name: &str, spec: serde_json::Value) -> (Policy, Vec<Problem>) {
    let np: k8s_openapi::api::networking::v1::NetworkPolicy = serde_json::from_value(json!({
        "metadata": {"namespace": ns, "name": name},
        "spec": spec,
    }))
    .expect("policy JSON");
    let mut problems = Vec::new();
    (Policy::from_api(&np, &mut problems), problems)
}

fn build_with(policies: &[Policy], pods: &[PodInfo]) -> Plan {
    let namespaces = namespaces();
    let node = node();
    build(&Inputs {
        policies,
        pods,
        namespaces: &namespaces,
        node: &node,
    })
}

fn plan_of(specs: &[(&str, serde_json::Value)]) -> Plan {
    let policies: Vec<Policy> = specs
        .iter()
        .enumerate()
        .map(|(i, (ns, spec))| policy(ns, &format!("p{i}"), spec.clone()).0)
        .collect();
    build_with(&policies, &pods())
}

/// IP of pod `ns/name` in [`pods`].
fn pod_ip(ns: &str, name: &str) -> String {
    let pods = pods();
    let pod = pods
        .iter()
        .find(|p| p.namespace == ns && p.name == name)
        .expect("pod");
    pod.ips[0].to_string()
}

/// None: the pod is not isolated in `dir`. Some(rules): the expanded allow
/// rules of its policies (empty: deny all).
fn allowed(plan: &Plan, dir: Direction, pod: (&str, &str)) -> Option<Vec<String>> {
    let map = &plan.maps[&names::dispatch_map(dir, crate::model::Family::V4)];
    let verdict = map.elements.get(&pod_ip(pod.0, pod.1))?;
    let class = verdict.strip_prefix("jump ").expect("jump verdict");
    let mut out = Vec::new();
    for rule in &plan.chains[class].rules {
        if let Some(target) = rule.strip_prefix("jump ") {
            out.extend(plan.chains[target].rules.iter().map(|r| expand(plan, r)));
        }
    }
    Some(out)
}

/// Replaces `@set` by `{elements}` and drops the counter statement.
fn expand(plan: &Plan, rule: &str) -> String {
    let words: Vec<String> = rule
        .split(' ')
        .map(|w| match w.strip_prefix('@') {
            Some(name) => {
                let elems: Vec<&str> = plan.sets[name]
                    .elements
                    .iter()
                    .map(String::as_str)
                    .collect();
                format!("{{{}}}", elems.join(","))
            }
            None => w.to_string(),
        })
        .collect();
    let text = words.join(" ");
    match text.find("counter name") {
        Some(i) => format!("{}accept", &text[..i]),
        None => text,
    }
}

#[test]
fn no_policy_isolates_nobody() {
    let plan = plan_of(&[]);
    for ns in ["x", "y", "z"] {
        assert_eq!(allowed(&plan, Direction::Ingress, (ns, "a")), None);
        assert_eq!(allowed(&plan, Direction::Egress, (ns, "a")), None);
    }
    // Every local pod is known, so the unknown-pod guard lets it through.
    let local = &plan.sets[&names::local_pods_set(crate::model::Family::V4)];
    assert_eq!(local.elements.len(), 9);
}

#[test]
fn deny_all_ingress() {
    let plan = plan_of(&[("x", json!({"podSelector": {}}))]);
    for pod in ["a", "b", "c"] {
        assert_eq!(allowed(&plan, Direction::Ingress, ("x", pod)), Some(vec![]));
        assert_eq!(allowed(&plan, Direction::Egress, ("x", pod)), None);
    }
    assert_eq!(allowed(&plan, Direction::Ingress, ("y", "a")), None);
    // The class chain ends in reject: TCP reset, then ICMP.
    let class = plan.maps[&names::dispatch_map(Direction::Ingress, crate::model::Family::V4)]
        .elements[&pod_ip("x", "a")]
        .trim_start_matches("jump ")
        .to_string();
    let rules = &plan.chains[&class].rules;
    assert_eq!(rules[0], "ct state invalid drop");
    assert!(rules[rules.len() - 2].ends_with("reject with tcp reset"));
    assert!(rules[rules.len() - 1].ends_with("reject with icmpx admin-prohibited"));
}

#[test]
fn allow_from_same_namespace() {
    let plan = plan_of(&[(
        "x",
        json!({"podSelector": {"matchLabels": {"pod": "a"}}, "ingress": [{"from": [{"podSelector": {}}]}]}),
    )]);
    let rules = allowed(&plan, Direction::Ingress, ("x", "a")).expect("isolated");
    assert_eq!(rules, ["ip saddr {10.42.0.2,10.42.0.3,10.42.0.4} accept"]);
    assert_eq!(allowed(&plan, Direction::Ingress, ("x", "b")), None);
}

#[test]
fn allow_all_ingress_rule() {
    let plan = plan_of(&[("x", json!({"podSelector": {}, "ingress": [{}]}))]);
    assert_eq!(
        allowed(&plan, Direction::Ingress, ("x", "a")),
        Some(vec!["accept".into()])
    );
}

#[test]
fn namespace_and_pod_selector_in_one_peer_is_and() {
    let plan = plan_of(&[(
        "x",
        json!({"podSelector": {"matchLabels": {"pod": "a"}}, "ingress": [{"from": [
            {"namespaceSelector": {"matchLabels": {"ns": "y"}}, "podSelector": {"matchLabels": {"pod": "b"}}}
        ]}]}),
    )]);
    let rules = allowed(&plan, Direction::Ingress, ("x", "a")).expect("isolated");
    assert_eq!(rules, [format!("ip saddr {{{}}} accept", pod_ip("y", "b"))]);
}

#[test]
fn namespace_and_pod_selector_in_two_peers_is_or() {
    let plan = plan_of(&[(
        "x",
        json!({"podSelector": {"matchLabels": {"pod": "a"}}, "ingress": [{"from": [
            {"namespaceSelector": {"matchLabels": {"ns": "y"}}},
            {"podSelector": {"matchLabels": {"pod": "b"}}}
        ]}]}),
    )]);
    let rules = allowed(&plan, Direction::Ingress, ("x", "a")).expect("isolated");
    assert_eq!(
        rules,
        [
            "ip saddr {10.42.0.5,10.42.0.6,10.42.0.7} accept".to_string(),
            format!("ip saddr {{{}}} accept", pod_ip("x", "b")),
        ]
    );
}

#[test]
fn namespace_selected_by_name_label() {
    let plan = plan_of(&[(
        "x",
        json!({"podSelector": {}, "ingress": [{"from": [
            {"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "z"}}}
        ]}]}),
    )]);
    let rules = allowed(&plan, Direction::Ingress, ("x", "c")).expect("isolated");
    assert_eq!(rules, ["ip saddr {10.42.0.10,10.42.0.8,10.42.0.9} accept"]);
}

#[test]
fn match_expressions_all_operators() {
    let plan = plan_of(&[(
        "x",
        json!({"podSelector": {"matchExpressions": [{"key": "pod", "operator": "In", "values": ["a", "b"]}]},
        "ingress": [{"from": [
            {"namespaceSelector": {"matchExpressions": [{"key": "ns", "operator": "NotIn", "values": ["x"]}]},
             "podSelector": {"matchExpressions": [{"key": "pod", "operator": "Exists"}]}},
            {"podSelector": {"matchExpressions": [{"key": "missing", "operator": "DoesNotExist"}]}}
        ]}]}),
    )]);
    assert!(allowed(&plan, Direction::Ingress, ("x", "a")).is_some());
    assert!(allowed(&plan, Direction::Ingress, ("x", "b")).is_some());
    assert_eq!(allowed(&plan, Direction::Ingress, ("x", "c")), None);
    let rules = allowed(&plan, Direction::Ingress, ("x", "a")).expect("isolated");
    assert_eq!(
        rules,
        [
            "ip saddr {10.42.0.10,10.42.0.5,10.42.0.6,10.42.0.7,10.42.0.8,10.42.0.9} accept",
            "ip saddr {10.42.0.2,10.42.0.3,10.42.0.4} accept",
        ]
    );
}

#[test]
fn ip_block_except_narrows_only_its_own_peer() {
    let plan = plan_of(&[(
        "x",
        json!({"podSelector": {"matchLabels": {"pod": "a"}}, "ingress": [{"from": [
            {"ipBlock": {"cidr": "10.42.0.0/29", "except": ["10.42.0.4/30"]}},
            {"ipBlock": {"cidr": "10.42.0.5/32"}}
        ]}]}),
    )]);
    let rules = allowed(&plan, Direction::Ingress, ("x", "a")).expect("isolated");
    assert_eq!(
        rules,
        [
            "ip saddr {10.42.0.0/30} accept",
            "ip saddr {10.42.0.5} accept"
        ]
    );
    let block = plan
        .sets
        .values()
        .find(|s| s.elements.contains("10.42.0.0/30"))
        .expect("set");
    assert!(block.interval);
}

#[test]
fn numeric_ports_and_protocols() {
    let plan = plan_of(&[(
        "x",
        json!({"podSelector": {"matchLabels": {"pod": "a"}}, "ingress": [{"ports": [
            {"port": 80}, {"protocol": "UDP", "port": 81}, {"protocol": "SCTP", "port": 80}
        ]}]}),
    )]);
    let rules = allowed(&plan, Direction::Ingress, ("x", "a")).expect("isolated");
    assert_eq!(
        rules,
        ["meta l4proto . th dport { tcp . 80, udp . 81, sctp . 80 } accept"]
    );
}

#[test]
fn end_port_ranges_merge() {
    let plan = plan_of(&[(
        "x",
        json!({"podSelector": {"matchLabels": {"pod": "a"}}, "ingress": [{"ports": [
            {"port": 80, "endPort": 90}, {"port": 85}, {"port": 91, "endPort": 95}, {"protocol": "UDP"}
        ]}]}),
    )]);
    let rules = allowed(&plan, Direction::Ingress, ("x", "a")).expect("isolated");
    assert_eq!(
        rules,
        ["meta l4proto . th dport { tcp . 80-95, udp . 0-65535 } accept"]
    );
}

#[test]
fn named_port_resolves_on_destination_pods() {
    let mut pods = pods();
    // y/b serves "serve-80-tcp" on 8080: its own number counts for it.
    pods[4].ports[0].port = 8080;
    let (p, problems) = policy(
        "x",
        "p",
        json!({"podSelector": {"matchLabels": {"pod": "a"}}, "policyTypes": ["Egress"],
               "egress": [{"ports": [{"port": "serve-80-tcp"}]}]}),
    );
    assert!(problems.is_empty());
    let plan = build_with(&[p], &pods);
    let rules = allowed(&plan, Direction::Egress, ("x", "a")).expect("isolated");
    assert_eq!(rules.len(), 1);
    assert!(rules[0].starts_with("ip daddr . meta l4proto . th dport {"));
    assert!(rules[0].contains("10.42.0.6 . tcp . 8080"));
    assert!(rules[0].contains("10.42.0.5 . tcp . 80,"));
    // Never the UDP port of the same pods, never a non-pod address.
    assert!(!rules[0].contains("udp"));
}

#[test]
fn egress_deny_with_dns_allowed() {
    let plan = plan_of(&[(
        "x",
        json!({"podSelector": {}, "policyTypes": ["Egress"], "egress": [{"ports": [
            {"protocol": "UDP", "port": 53}, {"protocol": "TCP", "port": 53}
        ]}]}),
    )]);
    assert_eq!(allowed(&plan, Direction::Ingress, ("x", "a")), None);
    let rules = allowed(&plan, Direction::Egress, ("x", "a")).expect("isolated");
    assert_eq!(
        rules,
        ["meta l4proto . th dport { tcp . 53, udp . 53 } accept"]
    );
}

#[test]
fn multiple_policies_are_unioned_in_one_class() {
    let plan = plan_of(&[
        (
            "x",
            json!({"podSelector": {"matchLabels": {"pod": "a"}}, "ingress": [{"ports": [{"port": 80}]}]}),
        ),
        (
            "x",
            json!({"podSelector": {}, "ingress": [{"ports": [{"port": 81}]}]}),
        ),
    ]);
    let a = allowed(&plan, Direction::Ingress, ("x", "a")).expect("isolated");
    assert_eq!(
        a,
        [
            "meta l4proto . th dport { tcp . 80 } accept",
            "meta l4proto . th dport { tcp . 81 } accept"
        ]
    );
    let b = allowed(&plan, Direction::Ingress, ("x", "b")).expect("isolated");
    assert_eq!(b, ["meta l4proto . th dport { tcp . 81 } accept"]);
    // b and c share one class chain; a has its own: 2 classes, 2 policy chains.
    let classes = plan.chains.keys().filter(|n| n.starts_with("cls-")).count();
    assert_eq!(classes, 2);
}

#[test]
fn policy_types_defaulting() {
    // Egress rules without policyTypes: isolates ingress (deny all) and egress.
    let plan = plan_of(&[(
        "x",
        json!({"podSelector": {}, "egress": [{"ports": [{"port": 53}]}]}),
    )]);
    assert_eq!(allowed(&plan, Direction::Ingress, ("x", "a")), Some(vec![]));
    assert!(allowed(&plan, Direction::Egress, ("x", "a")).is_some());
    // Egress only, no rules: deny all egress, ingress open.
    let plan = plan_of(&[("x", json!({"podSelector": {}, "policyTypes": ["Egress"]}))]);
    assert_eq!(allowed(&plan, Direction::Ingress, ("x", "a")), None);
    assert_eq!(allowed(&plan, Direction::Egress, ("x", "a")), Some(vec![]));
    // Empty egress list without policyTypes: ingress only.
    let plan = plan_of(&[("x", json!({"podSelector": {}, "egress": []}))]);
    assert_eq!(allowed(&plan, Direction::Egress, ("x", "a")), None);
}

#[test]
fn directions_never_leak_into_each_other() {
    // An Ingress+Egress policy: its egress rule must not open ingress.
    let plan = plan_of(&[(
        "x",
        json!({"podSelector": {}, "policyTypes": ["Ingress", "Egress"],
               "egress": [{"to": [{"podSelector": {}}]}]}),
    )]);
    assert_eq!(allowed(&plan, Direction::Ingress, ("x", "a")), Some(vec![]));
    let eg = allowed(&plan, Direction::Egress, ("x", "a")).expect("isolated");
    assert_eq!(eg, ["ip daddr {10.42.0.2,10.42.0.3,10.42.0.4} accept"]);
}

#[test]
fn host_network_and_finished_pods_are_neither_targets_nor_peers() {
    let mut pods = pods();
    pods[1].host_network = true; // x/b
    pods[2].terminal = true; // x/c
    let (p, _) = policy(
        "x",
        "p",
        json!({"podSelector": {}, "ingress": [{"from": [{"podSelector": {}}]}]}),
    );
    let plan = build_with(&[p], &pods);
    let rules = allowed(&plan, Direction::Ingress, ("x", "a")).expect("isolated");
    assert_eq!(rules, ["ip saddr {10.42.0.2} accept"]);
    let map = &plan.maps[&names::dispatch_map(Direction::Ingress, crate::model::Family::V4)];
    assert_eq!(map.elements.len(), 1);
    let local = &plan.sets[&names::local_pods_set(crate::model::Family::V4)];
    assert!(
        !local.elements.contains("10.42.0.4"),
        "finished pod leaves local-pods"
    );
}

#[test]
fn remote_pods_are_peers_but_not_targets() {
    let mut pods = pods();
    pods[3].node = Some("node-2".into()); // y/a
    let (p, _) = policy("y", "p", json!({"podSelector": {}}));
    let (q, _) = policy(
        "x",
        "q",
        json!({"podSelector": {}, "ingress": [{"from": [{"namespaceSelector": {"matchLabels": {"ns": "y"}}}]}]}),
    );
    let plan = build_with(&[p, q], &pods);
    assert!(allowed(&plan, Direction::Ingress, ("y", "b")).is_some());
    let map = &plan.maps[&names::dispatch_map(Direction::Ingress, crate::model::Family::V4)];
    assert!(!map.elements.contains_key("10.42.0.5"));
    let rules = allowed(&plan, Direction::Ingress, ("x", "a")).expect("isolated");
    assert!(rules[0].contains("10.42.0.5"), "{rules:?}");
}

#[test]
fn invalid_parts_are_skipped_and_pods_stay_isolated() {
    let (p, problems) = policy(
        "x",
        "bad",
        json!({"podSelector": {"matchLabels": {"pod": "a"}}, "ingress": [
            {"from": [{"ipBlock": {"cidr": "10.0.0.0/33"}}]},
            {"from": [{"ipBlock": {"cidr": "10.0.0.0/8", "except": ["11.0.0.0/16"]}}, {"podSelector": {}}]},
            {"ports": [{"protocol": "ICMP"}]},
            {"ports": [{"port": 90, "endPort": 80}]},
            {"ports": [{"port": "web", "endPort": 80}]}
        ]}),
    );
    let fields: Vec<&str> = problems.iter().map(|p| p.field.as_str()).collect();
    assert_eq!(
        fields,
        [
            "spec.ingress[0].from[0].ipBlock.cidr",
            "spec.ingress[0].from",
            "spec.ingress[1].from[0].ipBlock.except[0]",
            "spec.ingress[2].ports[0].protocol",
            "spec.ingress[3].ports[0].endPort",
            "spec.ingress[4].ports[0].endPort",
        ]
    );
    assert!(problems.iter().all(|p| p.policy == "x/bad"));
    let plan = build_with(&[p], &pods());
    let rules = allowed(&plan, Direction::Ingress, ("x", "a")).expect("still isolated");
    assert_eq!(rules, ["ip saddr {10.42.0.2,10.42.0.3,10.42.0.4} accept"]);
}

#[test]
fn invalid_target_selector_fails_closed() {
    let (p, problems) = policy(
        "x",
        "bad",
        json!({"podSelector": {"matchExpressions": [{"key": "pod", "operator": "Like"}]}}),
    );
    assert_eq!(problems[0].field, "spec.podSelector.matchExpressions[0]");
    let plan = build_with(&[p], &pods());
    for pod in ["a", "b", "c"] {
        assert_eq!(allowed(&plan, Direction::Ingress, ("x", pod)), Some(vec![]));
    }
}

#[test]
fn dual_stack_pods_are_peers_on_both_families() {
    let mut pods = pods();
    pods[1].ips.push(ip("fd00:42::3"));
    pods[0].ips.push(ip("fd00:42::2"));
    let (p, _) = policy(
        "x",
        "p",
        json!({"podSelector": {"matchLabels": {"pod": "a"}}, "ingress": [{"from": [{"podSelector": {"matchLabels": {"pod": "b"}}}]}]}),
    );
    let namespaces = namespaces();
    let node = NodeScope {
        pod_cidrs: vec![
            "10.42.0.0/24".parse().expect("v4"),
            "fd00:42::/64".parse().expect("v6"),
        ],
        ..node()
    };
    let plan = build(&Inputs {
        policies: &[p],
        pods: &pods,
        namespaces: &namespaces,
        node: &node,
    });
    let v6_map = &plan.maps[&names::dispatch_map(Direction::Ingress, crate::model::Family::V6)];
    let class = v6_map.elements["fd00:42::2"].trim_start_matches("jump ");
    let policy_chain = plan.chains[class].rules[1].trim_start_matches("jump ");
    let rules: Vec<String> = plan.chains[policy_chain]
        .rules
        .iter()
        .map(|r| expand(&plan, r))
        .collect();
    assert_eq!(
        rules,
        [
            "ip saddr {10.42.0.3} accept",
            "ip6 saddr {fd00:42::3} accept"
        ]
    );
}

#[test]
fn guard_rejects_unknown_addresses_of_the_pod_cidr() {
    let plan = plan_of(&[]);
    let fwd = &plan.chains[names::EGRESS_FORWARD];
    let guard: Vec<&String> = fwd
        .rules
        .iter()
        .filter(|r| r.contains("@local-pods-v4"))
        .collect();
    assert_eq!(guard.len(), 2);
    assert!(guard[0].starts_with("ip saddr { 10.42.0.0/24 } ip saddr != @local-pods-v4"));
    let input = &plan.chains[names::EGRESS_INPUT];
    assert!(
        input
            .rules
            .iter()
            .any(|r| r.contains("fib saddr type != local"))
    );
    assert_eq!(
        plan.chains[names::INGRESS_FORWARD].hook,
        Some(Hook {
            hook: "forward",
            priority: 1
        })
    );
}

#[test]
fn plan_is_deterministic() {
    let specs = [(
        "x",
        json!({"podSelector": {}, "ingress": [{"from": [{"namespaceSelector": {}}]}]}),
    )];
    assert_eq!(plan_of(&specs), plan_of(&specs));
    let mut reversed = pods();
    reversed.reverse();
    let policies: Vec<Policy> = specs
        .iter()
        .map(|(ns, s)| policy(ns, "p0", s.clone()).0)
        .collect();
    assert_eq!(build_with(&policies, &reversed), plan_of(&specs));
}

#[test]
fn shared_selectors_share_one_set() {
    let spec = json!({"podSelector": {}, "ingress": [{"from": [{"namespaceSelector": {"matchLabels": {"ns": "y"}}}]}]});
    let plan = plan_of(&[("x", spec.clone()), ("z", spec)]);
    let sel_sets = plan.sets.keys().filter(|n| n.starts_with("sel-")).count();
    assert_eq!(sel_sets, 1);
}

mod diffs {
    use super::*;

    fn policies() -> Vec<Policy> {
        vec![
            policy("x", "deny", json!({"podSelector": {}})).0,
            policy(
                "x",
                "allow-b",
                json!({"podSelector": {"matchLabels": {"pod": "a"}},
                "ingress": [{"from": [{"podSelector": {"matchLabels": {"pod": "b"}}}]}]}),
            )
            .0,
        ]
    }

    #[test]
    fn same_plan_diffs_to_nothing() {
        let plan = build_with(&policies(), &pods());
        assert!(diff(&plan, &plan).is_empty());
    }

    #[test]
    fn pod_event_touches_only_elements() {
        let before = build_with(&policies(), &pods());
        let mut pods = pods();
        pods.push(PodInfo {
            namespace: "x".into(),
            name: "d".into(),
            node: Some(NODE.into()),
            ips: vec![ip("10.42.0.20")],
            labels: labels(&[("pod", "b")]),
            ..PodInfo::default()
        });
        let after = build_with(&policies(), &pods);
        let script = diff(&before, &after);
        assert!(!script.replace);
        for line in script.text.lines() {
            assert!(
                line.starts_with("add element ") || line.starts_with("delete element "),
                "{line}"
            );
        }
        // Joins the allow-b peer set, local-pods and the deny-all class map.
        assert_eq!(script.text.lines().count(), 3, "{}", script.text);
        assert!(script.text.contains("10.42.0.20 : jump cls-"));
    }

    #[test]
    fn label_change_moves_pod_between_classes() {
        let before = build_with(&policies(), &pods());
        let mut pods = pods();
        pods[1].labels = labels(&[("pod", "a")]); // x/b now selected by allow-b too
        let after = build_with(&policies(), &pods);
        let script = diff(&before, &after);
        assert!(
            script
                .text
                .contains("delete element inet nodenet-netpol dispatch-in-v4 { 10.42.0.3 }")
        );
        assert!(
            script
                .text
                .contains("add element inet nodenet-netpol dispatch-in-v4 { 10.42.0.3 : jump cls-")
        );
        assert!(!script.text.contains("chain"), "{}", script.text);
    }

    #[test]
    fn policy_removal_deletes_its_objects_after_references() {
        let before = build_with(&policies(), &pods());
        let after = build_with(&policies()[..1], &pods());
        let text = diff(&before, &after).text;
        let pos = |needle: &str| {
            text.find(needle)
                .unwrap_or_else(|| panic!("{needle} in {text}"))
        };
        let allow_chain = names::policy_chain("x/allow-b", Direction::Ingress);
        assert!(
            pos(&format!("flush chain inet nodenet-netpol {allow_chain}"))
                < pos(&format!("delete chain inet nodenet-netpol {allow_chain}"))
        );
        assert!(pos("delete element inet nodenet-netpol dispatch-in-v4") < pos("delete chain"));
        assert!(pos("delete chain") < pos("delete set"));
        assert!(!text.contains("delete table"));
    }

    #[test]
    fn full_script_replaces_in_one_transaction() {
        let plan = build_with(&policies(), &pods());
        let text = full_script(&plan);
        let head: Vec<&str> = text.lines().take(3).collect();
        assert_eq!(
            head,
            [
                "add table inet nodenet-netpol",
                "delete table inet nodenet-netpol",
                "add table inet nodenet-netpol"
            ]
        );
    }

    #[test]
    fn type_change_falls_back_to_replace() {
        let before = build_with(&policies(), &pods());
        let mut after = before.clone();
        if let Some(set) = after.sets.values_mut().next() {
            set.interval = !set.interval;
        }
        assert!(diff(&before, &after).replace);
    }
}
