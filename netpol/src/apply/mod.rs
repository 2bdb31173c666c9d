//! Applying plans: one nft transaction per change, drift repair, counters.
//!
//! Acts on the network namespace of the calling thread (nft is a child
//! process); the calls block, so async callers use `spawn_blocking`.

mod counters;
pub mod netlink;
pub mod observed;

use host::names::{NFT_NETPOL_FAMILY, NFT_NETPOL_TABLE};
use host::nft::NftError;

use crate::plan::{Delta, Plan, Script, diff, full_script};

pub use counters::{CounterSample, read_counters, samples};

/// Errors applying or reading back our table.
#[derive(Debug, thiserror::Error)]
pub enum ApplyError {
    /// nft rejected a transaction or could not be run.
    #[error("netpol table {NFT_NETPOL_FAMILY} {NFT_NETPOL_TABLE}: {0}")]
    Nft(#[from] NftError),
    /// br_netfilter could not be enabled (same-node traffic would bypass us).
    #[error("cannot enable br_netfilter for same-node pod traffic: {0}")]
    BridgeNetfilter(#[from] host::sysctl::SysctlError),
    /// A delta was given before any full plan was applied.
    #[error("no plan applied yet to apply a change to")]
    NothingApplied,
}

/// What one [`Enforcer::apply`] or [`Enforcer::apply_delta`] did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// The table already matched the plan; nothing was sent.
    Unchanged,
    /// One `nft -f` transaction ran.
    Applied(Script),
    /// One netlink batch ran (element-only change); the script is what
    /// nft would have been given, for logs and byte counts.
    Elements(Script),
}

/// Owns our table: remembers what it applied last so the next change is a
/// diff. A fresh enforcer (daemon start) does not touch the table until its
/// first plan, which replaces the old one in one transaction: the previous
/// run's rules keep protecting pods until then.
#[derive(Debug, Default)]
pub struct Enforcer {
    applied: Option<Plan>,
}

impl Enforcer {
    /// An enforcer that has applied nothing yet.
    pub fn new() -> Self {
        Enforcer::default()
    }

    /// The plan currently believed to be live.
    pub fn applied(&self) -> Option<&Plan> {
        self.applied.as_ref()
    }

    /// Makes the table equal to `plan`: a full replace the first time, a
    /// diff afterwards. A diff that nft rejects (the table drifted from
    /// what we applied) is followed by a full replace.
    pub fn apply(&mut self, plan: Plan) -> Result<Outcome, ApplyError> {
        let script = match &self.applied {
            None => replace_script(&plan),
            Some(old) => diff(old, &plan),
        };
        if script.is_empty() {
            return Ok(Outcome::Unchanged);
        }
        let result = host::nft::apply(&script.text);
        let script = match result {
            Ok(()) => script,
            Err(err) if !script.replace => {
                tracing::warn!(component = "netpol", error = %err, "incremental update rejected; replacing the table");
                let full = replace_script(&plan);
                self.applied = None;
                host::nft::apply(&full.text)?;
                full
            }
            Err(err) => return Err(err.into()),
        };
        self.applied = Some(plan);
        Ok(Outcome::Applied(script))
    }

    /// Applies the change `delta` to the live table in one transaction:
    /// a netlink batch when it only adds or removes elements, else the
    /// diff script through `nft -f`. Falls back to a full replace when the
    /// kernel rejects it (the table drifted). Without a previous apply
    /// there is nothing to apply a delta to: use [`Enforcer::apply`].
    pub fn apply_delta(&mut self, delta: &Delta) -> Result<Outcome, ApplyError> {
        let Some(applied) = self.applied.as_mut() else {
            return Err(ApplyError::NothingApplied);
        };
        let script = delta.script();
        if script.is_empty() {
            applied.apply_delta(delta);
            return Ok(Outcome::Unchanged);
        }
        let result = match delta.element_ops() {
            Some(ops) => netlink::apply_elements(NFT_NETPOL_TABLE, applied, &ops)
                .map(|()| Outcome::Elements(script.clone()))
                .or_else(|err| {
                    tracing::debug!(component = "netpol", error = %err, "netlink batch not applied; using nft");
                    host::nft::apply(&script.text).map(|()| Outcome::Applied(script.clone()))
                }),
            None => host::nft::apply(&script.text).map(|()| Outcome::Applied(script.clone())),
        };
        applied.apply_delta(delta);
        match result {
            Ok(outcome) => Ok(outcome),
            Err(err) => {
                tracing::warn!(component = "netpol", error = %err, "incremental update rejected; replacing the table");
                let full = replace_script(applied);
                host::nft::apply(&full.text)?;
                Ok(Outcome::Applied(full))
            }
        }
    }

    /// Reads the table back; if it differs from the applied plan (or is
    /// gone), replaces it. Returns the differences found (empty: no drift).
    pub fn repair_drift(&mut self) -> Result<Vec<String>, ApplyError> {
        let Some(plan) = self.applied.clone() else {
            return Ok(Vec::new());
        };
        let differences = match host::nft::table_json(NFT_NETPOL_FAMILY, NFT_NETPOL_TABLE)? {
            None => vec!["table missing".to_string()],
            Some(json) => observed::differences(&plan, &observed::parse(&json)),
        };
        if !differences.is_empty() {
            tracing::warn!(
                component = "netpol",
                ?differences,
                "table drifted; replacing it"
            );
            host::nft::apply(&replace_script(&plan).text)?;
        }
        Ok(differences)
    }

    /// Current values of the per-policy counters of the applied plan.
    pub fn counters(&self) -> Result<Vec<CounterSample>, ApplyError> {
        match &self.applied {
            None => Ok(Vec::new()),
            Some(plan) => read_counters(plan),
        }
    }
}

fn replace_script(plan: &Plan) -> Script {
    Script {
        text: full_script(plan),
        replace: true,
    }
}

/// Sends bridged (same-node) pod traffic through the inet hooks of this
/// network namespace (see the data-path notes in [`crate::plan`]).
/// Idempotent; returns whether anything changed.
pub fn enable_bridge_netfilter() -> Result<bool, ApplyError> {
    let v4 = host::sysctl::ensure("net.bridge.bridge-nf-call-iptables", "1")?;
    let v6 = host::sysctl::ensure("net.bridge.bridge-nf-call-ip6tables", "1")?;
    Ok(v4 || v6)
}
