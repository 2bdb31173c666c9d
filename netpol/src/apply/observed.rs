//! Reading our table back (`nft -j list table`) and comparing it with the
//! plan we last applied, to find drift (someone flushed a chain, deleted an
//! element, or the table is gone).

use std::collections::{BTreeMap, BTreeSet};

use serde_json::Value;

use crate::plan::Plan;

/// The parts of the live table we compare.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Observed {
    /// Chain name -> number of rules.
    pub chains: BTreeMap<String, usize>,
    /// Set name -> elements in the planner's text form.
    pub sets: BTreeMap<String, BTreeSet<String>>,
    /// Map name -> key -> verdict text.
    pub maps: BTreeMap<String, BTreeMap<String, String>>,
    /// Counter name -> (packets, bytes).
    pub counters: BTreeMap<String, (u64, u64)>,
}

/// Parses `nft -j list table` output.
pub fn parse(json: &Value) -> Observed {
    let mut seen = Observed::default();
    let items = json.get("nftables").and_then(Value::as_array);
    for item in items.into_iter().flatten() {
        if let Some(chain) = item.get("chain") {
            let name = text(chain, "name");
            seen.chains.entry(name).or_insert(0);
        } else if let Some(rule) = item.get("rule") {
            *seen.chains.entry(text(rule, "chain")).or_insert(0) += 1;
        } else if let Some(set) = item.get("set") {
            let elems = set.get("elem").and_then(Value::as_array);
            let elements = elems.into_iter().flatten().map(element_text).collect();
            seen.sets.insert(text(set, "name"), elements);
        } else if let Some(map) = item.get("map") {
            seen.maps.insert(text(map, "name"), map_elements(map));
        } else if let Some(counter) = item.get("counter") {
            let n = |k: &str| counter.get(k).and_then(Value::as_u64).unwrap_or(0);
            seen.counters
                .insert(text(counter, "name"), (n("packets"), n("bytes")));
        }
    }
    seen
}

/// What differs between the plan and the live table, one line each
/// (empty: no drift).
pub fn differences(plan: &Plan, seen: &Observed) -> Vec<String> {
    let mut out = Vec::new();
    let planned: BTreeMap<&String, usize> = plan
        .chains
        .iter()
        .map(|(n, c)| (n, c.rules.len()))
        .collect();
    let live: BTreeMap<&String, usize> = seen.chains.iter().map(|(n, c)| (n, *c)).collect();
    if planned != live {
        out.push(format!(
            "chains/rule counts: planned {planned:?}, live {live:?}"
        ));
    }
    for (name, set) in &plan.sets {
        match seen.sets.get(name) {
            None => out.push(format!("set {name} missing")),
            Some(live) if *live != set.elements => out.push(format!(
                "set {name}: {} planned elements, {} live, differing",
                set.elements.len(),
                live.len()
            )),
            Some(_) => {}
        }
    }
    extra(&mut out, "set", plan.sets.keys(), seen.sets.keys());
    for (name, map) in &plan.maps {
        if seen.maps.get(name) != Some(&map.elements) {
            out.push(format!("map {name} differs"));
        }
    }
    extra(&mut out, "map", plan.maps.keys(), seen.maps.keys());
    let counters: BTreeSet<&String> = seen.counters.keys().collect();
    if plan.counters.keys().collect::<BTreeSet<_>>() != counters {
        out.push("named counters differ".into());
    }
    out
}

fn extra<'a>(
    out: &mut Vec<String>,
    kind: &str,
    planned: impl Iterator<Item = &'a String>,
    live: impl Iterator<Item = &'a String>,
) {
    let planned: BTreeSet<&String> = planned.collect();
    for name in live.filter(|n| !planned.contains(n)) {
        out.push(format!("unplanned {kind} {name}"));
    }
}

fn text(obj: &Value, key: &str) -> String {
    obj.get(key)
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_string()
}

/// One element as the planner writes it: `10.0.0.1`, `10.0.0.0/8`,
/// `10.0.0.1-10.0.0.9`, `10.0.0.1 . tcp . 80`.
fn element_text(elem: &Value) -> String {
    match elem {
        Value::String(s) => s.clone(),
        Value::Number(n) => n.to_string(),
        Value::Object(obj) => {
            if let Some(p) = obj.get("prefix") {
                format!("{}/{}", element_text(&p["addr"]), element_text(&p["len"]))
            } else if let Some(Value::Array(r)) = obj.get("range") {
                let parts: Vec<String> = r.iter().map(element_text).collect();
                parts.join("-")
            } else if let Some(Value::Array(c)) = obj.get("concat") {
                let parts: Vec<String> = c.iter().map(element_text).collect();
                parts.join(" . ")
            } else if let Some(inner) = obj.get("elem").and_then(|e| e.get("val")) {
                element_text(inner)
            } else {
                elem.to_string()
            }
        }
        other => other.to_string(),
    }
}

fn map_elements(map: &Value) -> BTreeMap<String, String> {
    let mut out = BTreeMap::new();
    let elems = map.get("elem").and_then(Value::as_array);
    for pair in elems.into_iter().flatten().filter_map(Value::as_array) {
        if let [key, verdict] = pair.as_slice() {
            out.insert(element_text(key), verdict_text(verdict));
        }
    }
    out
}

fn verdict_text(v: &Value) -> String {
    for kind in ["jump", "goto"] {
        if let Some(target) = v
            .get(kind)
            .and_then(|j| j.get("target"))
            .and_then(Value::as_str)
        {
            return format!("{kind} {target}");
        }
    }
    v.to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_elements_like_the_planner_writes_them() {
        let json: Value = serde_json::from_str(
            r#"{"nftables":[{"metainfo":{}},
            {"set":{"name":"b","elem":[{"prefix":{"addr":"10.0.0.0","len":9}},"10.0.0.4",
                {"range":["10.128.0.0","10.200.0.0"]}]}},
            {"set":{"name":"np","elem":[{"concat":["10.42.0.5","tcp",80]}]}},
            {"map":{"name":"m","elem":[["10.42.0.5",{"jump":{"target":"cls"}}]]}},
            {"chain":{"name":"c"}},{"rule":{"chain":"c"}},{"rule":{"chain":"c"}},
            {"counter":{"name":"k","packets":3,"bytes":180}}]}"#,
        )
        .expect("json");
        let seen = parse(&json);
        let b: Vec<&str> = seen.sets["b"].iter().map(String::as_str).collect();
        assert_eq!(b, ["10.0.0.0/9", "10.0.0.4", "10.128.0.0-10.200.0.0"]);
        assert!(seen.sets["np"].contains("10.42.0.5 . tcp . 80"));
        assert_eq!(seen.maps["m"]["10.42.0.5"], "jump cls");
        assert_eq!(seen.chains["c"], 2);
        assert_eq!(seen.counters["k"], (3, 180));
    }
}
