//! What exists because of local pods: active policy chains and counters,
//! class chains and the dispatch map entries.

use crate::model::{Direction, Family};

use super::super::compile::{class_chain, compile, pod_ips};
use super::super::names;
use super::{Active, Class, DIRECTIONS, Incremental, PodKey};

impl Incremental {
    /// Re-evaluates, for the pod `key`, every policy of its namespace (a
    /// target or not), then the pod's class.
    pub(super) fn retarget(&mut self, key: &PodKey) {
        let ids: Vec<String> = self
            .policies_by_ns
            .get(&key.0)
            .map(|ids| ids.iter().cloned().collect())
            .unwrap_or_default();
        for id in &ids {
            for dir in DIRECTIONS {
                self.retarget_one(key, id, dir);
            }
        }
        self.reclass(key);
    }

    fn retarget_one(&mut self, key: &PodKey, id: &str, dir: Direction) {
        let selects = self.selects_target(id, dir, key);
        let slot = (id.to_string(), dir);
        match (self.active.get_mut(&slot), selects) {
            (Some(active), true) => {
                active.targets.insert(key.clone());
            }
            (Some(active), false) => {
                active.targets.remove(key);
                if active.targets.is_empty()
                    && let Some(gone) = self.deactivate(id, dir)
                {
                    for request in &gone.compiled.sets {
                        self.release_set(request);
                    }
                }
            }
            (None, true) => self.activate(id, dir, [key.clone()].into()),
            (None, false) => {}
        }
    }

    /// Whether policy `id` isolates `dir` for the local endpoint pod `key`.
    fn selects_target(&self, id: &str, dir: Direction, key: &PodKey) -> bool {
        let (Some(policy), Some(pod)) = (self.policies.get(id), self.pods.get(key)) else {
            return false;
        };
        policy.rules(dir).is_some()
            && pod.namespace == policy.namespace
            && self.is_local(pod)
            && policy.pod_selector.matches(&pod.labels)
    }

    /// Activates (`id`, `dir`) when it selects a local pod; returns the
    /// targets (empty: not active).
    pub(super) fn activate_if_selecting(&mut self, id: &str, dir: Direction) -> Vec<PodKey> {
        let Some(policy) = self.policies.get(id) else {
            return Vec::new();
        };
        let names = self.local.get(&policy.namespace);
        let keys = names
            .into_iter()
            .flatten()
            .map(|n| (policy.namespace.clone(), n.clone()));
        let targets: Vec<PodKey> = keys.filter(|k| self.selects_target(id, dir, k)).collect();
        if !targets.is_empty() {
            self.activate(id, dir, targets.iter().cloned().collect());
        }
        targets
    }

    fn activate(&mut self, id: &str, dir: Direction, targets: std::collections::BTreeSet<PodKey>) {
        let Some(policy) = self.policies.get(id) else {
            return;
        };
        let Some(rules) = policy.rules(dir) else {
            return;
        };
        let compiled = compile(policy, dir, rules, &self.families);
        self.out
            .put_chain(&compiled.chain_name, Some(compiled.chain.clone()));
        for (name, counter) in &compiled.counters {
            self.out.put_counter(name, Some(counter.clone()));
        }
        for request in &compiled.sets {
            self.acquire_set(request);
        }
        let active = Active { targets, compiled };
        self.active.insert((id.to_string(), dir), active);
    }

    /// Removes the chain and counters of (`id`, `dir`); the caller releases
    /// its sets and re-classes its targets.
    pub(super) fn deactivate(&mut self, id: &str, dir: Direction) -> Option<Active> {
        let active = self.active.remove(&(id.to_string(), dir))?;
        self.out.put_chain(&active.compiled.chain_name, None);
        for (name, _) in &active.compiled.counters {
            self.out.put_counter(name, None);
        }
        Some(active)
    }

    /// Recomputes the class of pod `key` in both directions.
    pub(super) fn reclass(&mut self, key: &PodKey) {
        let new = DIRECTIONS.map(|dir| self.class_of(key, dir));
        let old = self.classes.get(key).cloned().unwrap_or_default();
        if old == new {
            return;
        }
        for (i, dir) in DIRECTIONS.into_iter().enumerate() {
            if old[i] == new[i] {
                continue;
            }
            if let Some(old) = &old[i] {
                self.leave_class(key, dir, old);
            }
            if let Some(new) = &new[i] {
                self.join_class(key, dir, new);
            }
        }
        match new {
            [None, None] => self.classes.remove(key),
            new => self.classes.insert(key.clone(), new),
        };
    }

    fn class_of(&self, key: &PodKey, dir: Direction) -> Option<Class> {
        let pod = self.pods.get(key).filter(|p| self.is_local(p))?;
        let ids: Vec<String> = self
            .policies_by_ns
            .get(&key.0)?
            .iter()
            .filter(|id| {
                let slot = ((*id).clone(), dir);
                self.active
                    .get(&slot)
                    .is_some_and(|a| a.targets.contains(key))
            })
            .cloned()
            .collect();
        if ids.is_empty() {
            return None;
        }
        let ips = pod_ips(pod).filter(|(f, _)| self.planned(*f)).collect();
        Some(Class {
            chain: names::class_chain(&ids, dir),
            ids,
            ips,
        })
    }

    fn join_class(&mut self, key: &PodKey, dir: Direction, class: &Class) {
        let refs = self.class_refs.entry(class.chain.clone()).or_default();
        *refs += 1;
        if *refs == 1 {
            let chain = class_chain(&class.ids, dir);
            self.out.put_chain(&class.chain, Some(chain));
        }
        let verdict = format!("jump {}", class.chain);
        for (family, ip) in &class.ips {
            let slot = (dir, ip.clone());
            let owners = self.dispatch.entry(slot).or_default();
            owners.insert(key.clone(), verdict.clone());
            let winner = owners.values().next_back().cloned();
            self.set_dispatch(dir, *family, ip, winner);
        }
    }

    fn leave_class(&mut self, key: &PodKey, dir: Direction, class: &Class) {
        if let Some(refs) = self.class_refs.get_mut(&class.chain) {
            *refs -= 1;
            if *refs == 0 {
                self.class_refs.remove(&class.chain);
                self.out.put_chain(&class.chain, None);
            }
        }
        for (family, ip) in &class.ips {
            let slot = (dir, ip.clone());
            let Some(owners) = self.dispatch.get_mut(&slot) else {
                continue;
            };
            owners.remove(key);
            let winner = owners.values().next_back().cloned();
            if winner.is_none() {
                self.dispatch.remove(&slot);
            }
            self.set_dispatch(dir, *family, ip, winner);
        }
    }

    fn set_dispatch(&mut self, dir: Direction, family: Family, ip: &str, verdict: Option<String>) {
        let map = names::dispatch_map(dir, family);
        let current = self
            .out
            .plan()
            .maps
            .get(&map)
            .and_then(|m| m.elements.get(ip));
        if current != verdict.as_ref() {
            self.out.map_entry(&map, ip, verdict);
        }
    }
}
