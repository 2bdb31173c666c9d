//! Reading the per-policy counters for /metrics.
//!
//! `nft -j list counters table` lists only the named counters, not the sets
//! and maps, so a scrape costs the same with 10 000 pods as with 10.

use std::process::Command;

use host::names::{NFT_NETPOL_FAMILY, NFT_NETPOL_TABLE};
use host::nft::NftError;

use super::ApplyError;
use super::observed;
use crate::model::Direction;
use crate::plan::Plan;

/// One per-policy counter reading, for /metrics.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CounterSample {
    /// `namespace/name`; empty for packets of not-yet-known pods.
    pub policy: String,
    pub direction: Option<Direction>,
    /// `allow` or `deny`.
    pub verdict: &'static str,
    pub packets: u64,
    pub bytes: u64,
}

/// Reads the named counters of `plan` from the live table (empty when the
/// table does not exist). Blocks on a child process.
pub fn read_counters(plan: &Plan) -> Result<Vec<CounterSample>, ApplyError> {
    let Some(json) = list_counters()? else {
        return Ok(Vec::new());
    };
    Ok(samples(plan, &json))
}

/// Pairs the plan's counter descriptions with live values; counters the
/// table lacks (a newer plan not applied yet) are left out.
pub fn samples(plan: &Plan, json: &serde_json::Value) -> Vec<CounterSample> {
    let live = observed::parse(json).counters;
    let samples = plan.counters.iter().filter_map(|(name, info)| {
        let (packets, bytes) = *live.get(name)?;
        Some(CounterSample {
            policy: info.policy.clone(),
            direction: info.direction,
            verdict: info.verdict,
            packets,
            bytes,
        })
    });
    samples.collect()
}

fn list_counters() -> Result<Option<serde_json::Value>, NftError> {
    let args = [
        "-j",
        "list",
        "counters",
        "table",
        NFT_NETPOL_FAMILY,
        NFT_NETPOL_TABLE,
    ];
    let command = format!("nft {}", args.join(" "));
    let out = Command::new("nft")
        .args(args)
        .output()
        .map_err(|source| NftError::Spawn {
            command: command.clone(),
            source,
        })?;
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    if !out.status.success() {
        // The table does not exist (netpol never applied, or cleaned up).
        if stderr.contains("No such file or directory") {
            return Ok(None);
        }
        return Err(NftError::Failed {
            command,
            subject: format!("table {NFT_NETPOL_FAMILY} {NFT_NETPOL_TABLE}"),
            status: out.status,
            stderr,
        });
    }
    serde_json::from_slice(&out.stdout)
        .map(Some)
        .map_err(|e| NftError::Parse {
            command,
            reason: e.to_string(),
        })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::plan::CounterInfo;
    use serde_json::json;

    #[test]
    fn pairs_plan_counters_with_live_values() {
        let mut plan = Plan::default();
        let info = |verdict| CounterInfo {
            policy: "x/deny".into(),
            direction: Some(Direction::Ingress),
            verdict,
        };
        plan.counters.insert("pol-a-in-allow".into(), info("allow"));
        plan.counters.insert("pol-a-in-deny".into(), info("deny"));
        let live = json!({"nftables": [
            {"metainfo": {"version": "1.0.6"}},
            {"counter": {"family": "inet", "name": "pol-a-in-deny", "table": "t", "packets": 7, "bytes": 420}},
            {"counter": {"family": "inet", "name": "stranger", "table": "t", "packets": 1, "bytes": 1}}
        ]});
        let got = samples(&plan, &live);
        assert_eq!(got.len(), 1, "{got:?}");
        assert_eq!(got[0].verdict, "deny");
        assert_eq!((got[0].packets, got[0].bytes), (7, 420));
        assert_eq!(got[0].policy, "x/deny");
    }
}
