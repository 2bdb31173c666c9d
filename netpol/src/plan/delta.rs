//! The change between two plans, restricted to what changed, and the
//! journal that records it while a plan is edited in place.
//!
//! A [`Delta`] holds two partial plans, `before` and `after`, with only the
//! touched objects, and of touched sets and maps only the touched elements
//! (with their state before and after). Every step of [`super::diff`] works
//! name by name and element by element, so `diff(before, after)` is the
//! same script as a diff of the two complete plans, at a cost proportional
//! to the change.

use std::collections::{BTreeMap, BTreeSet};

use super::{Chain, CounterInfo, MapDef, Plan, Script, SetDef, diff};

/// What changed between two plans (see the module docs).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Delta {
    pub before: Plan,
    pub after: Plan,
}

/// One element-level command of an element-only delta.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ElementOp {
    /// `true`: add, `false`: delete.
    pub add: bool,
    /// Set or map name.
    pub object: String,
    /// Elements in the planner's text form; for maps `(key, Some(verdict))`
    /// on add, `(key, None)` on delete.
    pub elements: Vec<(String, Option<String>)>,
}

impl Delta {
    /// Whether nothing changed.
    pub fn is_empty(&self) -> bool {
        self.script().is_empty()
    }

    /// The nft script of this change.
    pub fn script(&self) -> Script {
        diff(&self.before, &self.after)
    }

    /// The element adds and deletes, in the order [`super::diff`] emits
    /// them, when the change touches nothing but elements of existing sets
    /// and maps; `None` for any structural change.
    pub fn element_ops(&self) -> Option<Vec<ElementOp>> {
        let (b, a) = (&self.before, &self.after);
        if b.chains != a.chains || b.counters != a.counters {
            return None;
        }
        if !b.sets.keys().eq(a.sets.keys()) || !b.maps.keys().eq(a.maps.keys()) {
            return None;
        }
        let mut ops = Vec::new();
        for (name, after) in &a.sets {
            let before = &b.sets[name];
            if before.key_type != after.key_type || before.interval != after.interval {
                return None;
            }
            let gone = before.elements.difference(&after.elements);
            push(&mut ops, false, name, gone.map(|e| (e.clone(), None)));
            let added = after.elements.difference(&before.elements);
            push(&mut ops, true, name, added.map(|e| (e.clone(), None)));
        }
        for (name, after) in &a.maps {
            let before = &b.maps[name];
            if before.key_type != after.key_type {
                return None;
            }
            let stale = before
                .elements
                .iter()
                .filter(|(k, v)| after.elements.get(*k) != Some(*v));
            push(&mut ops, false, name, stale.map(|(k, _)| (k.clone(), None)));
            let fresh = after
                .elements
                .iter()
                .filter(|(k, v)| before.elements.get(*k) != Some(*v));
            push(
                &mut ops,
                true,
                name,
                fresh.map(|(k, v)| (k.clone(), Some(v.clone()))),
            );
        }
        Some(ops)
    }
}

fn push(
    ops: &mut Vec<ElementOp>,
    add: bool,
    object: &str,
    elements: impl Iterator<Item = (String, Option<String>)>,
) {
    let elements: Vec<_> = elements.collect();
    if !elements.is_empty() {
        ops.push(ElementOp {
            add,
            object: object.to_string(),
            elements,
        });
    }
}

impl Plan {
    /// Applies `delta` (made against a plan equal to `self`) in place.
    pub fn apply_delta(&mut self, delta: &Delta) {
        let names: BTreeSet<&String> = delta
            .before
            .sets
            .keys()
            .chain(delta.after.sets.keys())
            .collect();
        for name in names {
            match (delta.after.sets.get(name), self.sets.get_mut(name)) {
                (None, _) => {
                    self.sets.remove(name);
                }
                (Some(after), Some(set)) if delta.before.sets.contains_key(name) => {
                    let before = &delta.before.sets[name];
                    set.elements.retain(|e| !before.elements.contains(e));
                    set.elements.extend(after.elements.iter().cloned());
                }
                (Some(after), _) => {
                    self.sets.insert(name.clone(), after.clone());
                }
            }
        }
        let names: BTreeSet<&String> = delta
            .before
            .maps
            .keys()
            .chain(delta.after.maps.keys())
            .collect();
        for name in names {
            match (delta.after.maps.get(name), self.maps.get_mut(name)) {
                (None, _) => {
                    self.maps.remove(name);
                }
                (Some(after), Some(map)) if delta.before.maps.contains_key(name) => {
                    for key in delta.before.maps[name].elements.keys() {
                        map.elements.remove(key);
                    }
                    map.elements.extend(after.elements.clone());
                }
                (Some(after), _) => {
                    self.maps.insert(name.clone(), after.clone());
                }
            }
        }
        replace_touched(&mut self.chains, &delta.before.chains, &delta.after.chains);
        replace_touched(
            &mut self.counters,
            &delta.before.counters,
            &delta.after.counters,
        );
    }
}

fn replace_touched<V: Clone>(
    live: &mut BTreeMap<String, V>,
    before: &BTreeMap<String, V>,
    after: &BTreeMap<String, V>,
) {
    for name in before.keys() {
        live.remove(name);
    }
    live.extend(after.iter().map(|(k, v)| (k.clone(), v.clone())));
}

/// A plan edited in place, recording what each edit touched so that
/// [`Tracked::take_delta`] can say what changed since the last call.
#[derive(Debug, Default)]
pub(crate) struct Tracked {
    plan: Plan,
    journal: Journal,
    /// Edits are not recorded (a bulk load whose result is applied whole).
    paused: bool,
}

/// Touched objects: their state before the first touch, and the names
/// (and elements) touched since.
#[derive(Debug, Default)]
struct Journal {
    before: Plan,
    sets: BTreeMap<String, BTreeSet<String>>,
    maps: BTreeMap<String, BTreeSet<String>>,
    chains: BTreeSet<String>,
    counters: BTreeSet<String>,
}

impl Tracked {
    /// The current plan.
    pub(crate) fn plan(&self) -> &Plan {
        &self.plan
    }

    /// Stops (`false`) or restarts (`true`) recording. Either way the
    /// journal starts empty: after a restart the current plan is the
    /// baseline of the next delta.
    pub(crate) fn set_recording(&mut self, on: bool) {
        self.paused = !on;
        self.journal = Journal::default();
    }

    /// What changed since the previous call (or since creation).
    pub(crate) fn take_delta(&mut self) -> Delta {
        let journal = std::mem::take(&mut self.journal);
        let mut after = Plan::default();
        for (name, touched) in &journal.sets {
            if let Some(set) = self.plan.sets.get(name) {
                let elements = touched
                    .iter()
                    .filter(|e| set.elements.contains(*e))
                    .cloned()
                    .collect();
                after.sets.insert(name.clone(), header(set, elements));
            }
        }
        for (name, touched) in &journal.maps {
            if let Some(map) = self.plan.maps.get(name) {
                let elements = touched
                    .iter()
                    .filter_map(|k| map.elements.get(k).map(|v| (k.clone(), v.clone())))
                    .collect();
                let key_type = map.key_type.clone();
                after
                    .maps
                    .insert(name.clone(), MapDef { key_type, elements });
            }
        }
        for name in &journal.chains {
            if let Some(chain) = self.plan.chains.get(name) {
                after.chains.insert(name.clone(), chain.clone());
            }
        }
        for name in &journal.counters {
            if let Some(counter) = self.plan.counters.get(name) {
                after.counters.insert(name.clone(), counter.clone());
            }
        }
        Delta {
            before: journal.before,
            after,
        }
    }

    /// Creates (or replaces) a set with its elements.
    pub(crate) fn put_set(&mut self, name: &str, def: SetDef) {
        if self.paused {
            self.plan.sets.insert(name.to_string(), def);
            return;
        }
        self.touch_set(name);
        let fresh: Vec<String> = def.elements.iter().cloned().collect();
        if let Some(old) = self.plan.sets.insert(name.to_string(), def) {
            self.record_set_elements(name, old.elements);
        }
        // After the old elements: a new one not touched before was absent.
        let touched = self.journal.sets.entry(name.to_string()).or_default();
        touched.extend(fresh);
    }

    pub(crate) fn delete_set(&mut self, name: &str) {
        if self.paused {
            self.plan.sets.remove(name);
            return;
        }
        self.touch_set(name);
        if let Some(old) = self.plan.sets.remove(name) {
            self.record_set_elements(name, old.elements);
        }
    }

    /// Adds one element to an existing set.
    pub(crate) fn insert_element(&mut self, set: &str, element: &str) {
        if !self.paused {
            self.touch_element(set, element);
        }
        if let Some(def) = self.plan.sets.get_mut(set) {
            def.elements.insert(element.to_string());
        }
    }

    /// Removes one element from an existing set.
    pub(crate) fn remove_element(&mut self, set: &str, element: &str) {
        if !self.paused {
            self.touch_element(set, element);
        }
        if let Some(def) = self.plan.sets.get_mut(set) {
            def.elements.remove(element);
        }
    }

    pub(crate) fn put_map(&mut self, name: &str, def: MapDef) {
        if self.paused {
            self.plan.maps.insert(name.to_string(), def);
            return;
        }
        self.touch_map(name);
        let keys: Vec<String> = def.elements.keys().cloned().collect();
        if let Some(old) = self.plan.maps.insert(name.to_string(), def) {
            self.record_map_entries(name, old.elements);
        }
        self.journal
            .maps
            .entry(name.to_string())
            .or_default()
            .extend(keys);
    }

    pub(crate) fn delete_map(&mut self, name: &str) {
        if self.paused {
            self.plan.maps.remove(name);
            return;
        }
        self.touch_map(name);
        if let Some(old) = self.plan.maps.remove(name) {
            self.record_map_entries(name, old.elements);
        }
    }

    /// Sets (`Some`) or removes (`None`) one verdict map entry.
    pub(crate) fn map_entry(&mut self, map: &str, key: &str, verdict: Option<String>) {
        let first = !self.paused && self.touch_map_entry(map, key);
        let Some(def) = self.plan.maps.get_mut(map) else {
            return;
        };
        let old = match verdict {
            Some(v) => def.elements.insert(key.to_string(), v),
            None => def.elements.remove(key),
        };
        if let (true, Some(old)) = (first, old)
            && let Some(before) = self.journal.before.maps.get_mut(map)
        {
            before.elements.insert(key.to_string(), old);
        }
    }

    pub(crate) fn put_chain(&mut self, name: &str, chain: Option<Chain>) {
        if !self.paused
            && self.journal.chains.insert(name.to_string())
            && let Some(old) = self.plan.chains.get(name)
        {
            self.journal
                .before
                .chains
                .insert(name.to_string(), old.clone());
        }
        match chain {
            Some(c) => self.plan.chains.insert(name.to_string(), c),
            None => self.plan.chains.remove(name),
        };
    }

    pub(crate) fn put_counter(&mut self, name: &str, counter: Option<CounterInfo>) {
        if !self.paused
            && self.journal.counters.insert(name.to_string())
            && let Some(old) = self.plan.counters.get(name)
        {
            self.journal
                .before
                .counters
                .insert(name.to_string(), old.clone());
        }
        match counter {
            Some(c) => self.plan.counters.insert(name.to_string(), c),
            None => self.plan.counters.remove(name),
        };
    }

    /// Records the set's header (state before the first touch).
    fn touch_set(&mut self, name: &str) {
        if self.journal.sets.contains_key(name) {
            return;
        }
        self.journal.sets.insert(name.to_string(), BTreeSet::new());
        if let Some(set) = self.plan.sets.get(name) {
            let def = header(set, BTreeSet::new());
            self.journal.before.sets.insert(name.to_string(), def);
        }
    }

    fn touch_element(&mut self, set: &str, element: &str) {
        self.touch_set(set);
        let touched = self.journal.sets.entry(set.to_string()).or_default();
        if !touched.insert(element.to_string()) {
            return;
        }
        let present = self
            .plan
            .sets
            .get(set)
            .is_some_and(|s| s.elements.contains(element));
        if let (true, Some(before)) = (present, self.journal.before.sets.get_mut(set)) {
            before.elements.insert(element.to_string());
        }
    }

    /// Notes `elements` as present before (only those not touched yet
    /// keep their before-state: a touched one was recorded at its touch).
    fn record_set_elements(&mut self, set: &str, elements: BTreeSet<String>) {
        let touched = self.journal.sets.entry(set.to_string()).or_default();
        let Some(before) = self.journal.before.sets.get_mut(set) else {
            touched.extend(elements);
            return;
        };
        for e in elements {
            if touched.insert(e.clone()) {
                before.elements.insert(e);
            }
        }
    }

    /// Whether this is the first touch of the entry `key` of `map`.
    fn touch_map_entry(&mut self, map: &str, key: &str) -> bool {
        self.touch_map(map);
        self.journal
            .maps
            .entry(map.to_string())
            .or_default()
            .insert(key.to_string())
    }

    fn touch_map(&mut self, name: &str) {
        if self.journal.maps.contains_key(name) {
            return;
        }
        self.journal.maps.insert(name.to_string(), BTreeSet::new());
        if let Some(map) = self.plan.maps.get(name) {
            let def = MapDef {
                key_type: map.key_type.clone(),
                elements: BTreeMap::new(),
            };
            self.journal.before.maps.insert(name.to_string(), def);
        }
    }

    fn record_map_entries(&mut self, map: &str, entries: BTreeMap<String, String>) {
        let touched = self.journal.maps.entry(map.to_string()).or_default();
        let Some(before) = self.journal.before.maps.get_mut(map) else {
            touched.extend(entries.into_keys());
            return;
        };
        for (k, v) in entries {
            if touched.insert(k.clone()) {
                before.elements.insert(k, v);
            }
        }
    }
}

fn header(set: &SetDef, elements: BTreeSet<String>) -> SetDef {
    SetDef {
        key_type: set.key_type.clone(),
        interval: set.interval,
        elements,
    }
}
