//! K3s flannel's iptables leftovers: the FLANNEL-POSTRTG (nat) and
//! FLANNEL-FWD (filter) chains and every rule jumping to them, in each
//! iptables front-end. Nothing else is touched: rules are deleted one by
//! one by their exact specification, never by flushing a built-in chain
//! or restoring a filtered dump (what k3s-killall.sh does).

mod save;

use std::fmt;
use std::io::ErrorKind;
use std::process::{Command, Output};

use crate::item::Item;
use crate::run::Cause;
use crate::steps::{Found, Step};
pub use save::{ParseError, SavedRule, SavedTable, parse, split_words};

/// The front-ends a K3s node may have used. Each sees only its own rules
/// (legacy: the kernel's x_tables; nft: the `ip`/`ip6` nftables tables
/// named after the iptables tables), so each is read and cleaned.
pub const TOOLS: [&str; 4] = [
    "iptables-legacy",
    "iptables-nft",
    "ip6tables-legacy",
    "ip6tables-nft",
];

/// flannel's chains as (table, chain) (flannel.md §3.1).
pub const FLANNEL_CHAINS: [(&str, &str); 2] =
    [("nat", "FLANNEL-POSTRTG"), ("filter", "FLANNEL-FWD")];

/// An iptables command failed.
#[derive(Debug, thiserror::Error)]
pub enum IptablesError {
    /// The program could not be started.
    #[error("cannot run {command}: {source}")]
    Spawn {
        command: String,
        #[source]
        source: std::io::Error,
    },
    /// The program exited with an error.
    #[error("`{command}` failed ({status}): {stderr}")]
    Failed {
        command: String,
        status: String,
        stderr: String,
    },
    /// `<tool>-save` printed something unexpected.
    #[error("{tool}-save output: {source}")]
    Parse {
        tool: String,
        #[source]
        source: ParseError,
    },
}

/// A rule to delete with `<tool> -t <table> -D <chain> <args>`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rule {
    pub tool: String,
    pub table: String,
    pub saved: SavedRule,
}

impl fmt::Display for Rule {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} -t {} {}", self.tool, self.table, self.saved.line)
    }
}

/// A user chain to flush and delete.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Chain {
    pub tool: String,
    pub table: String,
    pub chain: String,
}

impl fmt::Display for Chain {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} -t {} chain {}", self.tool, self.table, self.chain)
    }
}

/// The leftovers of one front-end.
pub struct FlannelChains {
    pub tool: &'static str,
}

impl Step for FlannelChains {
    fn name(&self) -> &'static str {
        "K3s flannel iptables"
    }
    fn find(&self) -> Found<'_> {
        Box::pin(async move {
            let Some(text) = save(self.tool)? else {
                return Ok(Vec::new());
            };
            let tables = parse(&text).map_err(|source| IptablesError::Parse {
                tool: self.tool.into(),
                source,
            })?;
            Ok(leftovers(self.tool, &tables))
        })
    }
}

/// The jump rules first (a referenced chain cannot be deleted), then the
/// chains themselves.
pub fn leftovers(tool: &str, tables: &[SavedTable]) -> Vec<Item> {
    let mut rules = Vec::new();
    let mut chains = Vec::new();
    for (table_name, chain) in FLANNEL_CHAINS {
        let Some(table) = tables.iter().find(|t| t.name == table_name) else {
            continue;
        };
        let jumps = table
            .rules
            .iter()
            .filter(|r| r.target() == Some(chain) && r.chain != chain);
        rules.extend(jumps.map(|saved| {
            Item::IptablesRule(Rule {
                tool: tool.into(),
                table: table_name.into(),
                saved: saved.clone(),
            })
        }));
        if table.chains.iter().any(|c| c == chain) {
            chains.push(Item::IptablesChain(Chain {
                tool: tool.into(),
                table: table_name.into(),
                chain: chain.into(),
            }));
        }
    }
    rules.extend(chains);
    rules
}

/// `<tool>-save` output; `None` when the tool is not installed (then it
/// cannot have been used to make anything). No `-t`: naming a table makes
/// the legacy backend create it, and a dry run must change nothing.
pub(crate) fn save(tool: &str) -> Result<Option<String>, IptablesError> {
    let program = format!("{tool}-save");
    match Command::new(&program).output() {
        Err(e) if e.kind() == ErrorKind::NotFound => {
            tracing::debug!(tool, "not installed; nothing to clean with it");
            Ok(None)
        }
        Err(source) => Err(IptablesError::Spawn {
            command: program,
            source,
        }),
        Ok(out) => Ok(Some(checked(&program, out)?)),
    }
}

impl Rule {
    /// Deletes the rule; Ok(false) if it was already gone.
    pub(crate) fn delete(&self) -> Result<bool, Cause> {
        let mut args = vec!["-w", "-t", &self.table, "-D", &self.saved.chain];
        args.extend(self.saved.args.iter().map(String::as_str));
        Ok(run_unless_gone(&self.tool, &args)?)
    }
}

impl Chain {
    /// Flushes and deletes the chain; Ok(false) if it was already gone.
    pub(crate) fn delete(&self) -> Result<bool, Cause> {
        let flushed = run_unless_gone(&self.tool, &["-w", "-t", &self.table, "-F", &self.chain])?;
        let deleted = run_unless_gone(&self.tool, &["-w", "-t", &self.table, "-X", &self.chain])?;
        Ok(flushed && deleted)
    }
}

/// Runs `tool args`; Ok(false) when iptables says the rule or chain does
/// not exist (someone removed it between find and remove).
fn run_unless_gone(tool: &str, args: &[&str]) -> Result<bool, IptablesError> {
    let command = format!("{tool} {}", args.join(" "));
    let out = Command::new(tool)
        .args(args)
        .output()
        .map_err(|source| IptablesError::Spawn {
            command: command.clone(),
            source,
        })?;
    let stderr = String::from_utf8_lossy(&out.stderr);
    let gone = [
        "No chain/target/match by that name",
        "does a matching rule exist",
    ];
    if !out.status.success() && gone.iter().any(|g| stderr.contains(g)) {
        return Ok(false);
    }
    checked(&command, out).map(|_| true)
}

fn checked(command: &str, out: Output) -> Result<String, IptablesError> {
    if !out.status.success() {
        return Err(IptablesError::Failed {
            command: command.into(),
            status: out.status.to_string(),
            stderr: String::from_utf8_lossy(&out.stderr).trim().to_string(),
        });
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_jumps_then_chains_and_nothing_else() {
        let text = "*nat\n:POSTROUTING ACCEPT [0:0]\n:FLANNEL-POSTRTG - [0:0]\n:OTHER - [0:0]\n\
            -A POSTROUTING -m comment --comment \"flanneld masq\" -j FLANNEL-POSTRTG\n\
            -A POSTROUTING -j MASQUERADE\n-A POSTROUTING -j OTHER\n\
            -A FLANNEL-POSTRTG -j RETURN\nCOMMIT\n\
            *filter\n:FORWARD ACCEPT [0:0]\n:FLANNEL-FWD - [0:0]\n\
            -A FORWARD -j FLANNEL-FWD\n-A FLANNEL-FWD -s 10.42.0.0/16 -j ACCEPT\nCOMMIT\n\
            *mangle\n:FLANNEL-FWD - [0:0]\nCOMMIT\n";
        let tables = parse(text).expect("valid");
        let found: Vec<String> = leftovers("iptables-nft", &tables)
            .iter()
            .map(ToString::to_string)
            .collect();
        assert_eq!(
            found,
            [
                "iptables-nft -t nat -A POSTROUTING -m comment --comment \"flanneld masq\" -j FLANNEL-POSTRTG",
                "iptables-nft -t filter -A FORWARD -j FLANNEL-FWD",
                "iptables-nft -t nat chain FLANNEL-POSTRTG",
                "iptables-nft -t filter chain FLANNEL-FWD",
            ]
        );
    }

    #[test]
    fn no_flannel_no_items() {
        let tables =
            parse("*nat\n:POSTROUTING ACCEPT [0:0]\n-A POSTROUTING -j MASQUERADE\nCOMMIT\n")
                .expect("valid");
        assert!(leftovers("iptables-legacy", &tables).is_empty());
    }
}
