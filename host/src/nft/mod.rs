//! Driving nftables through the `nft` CLI (Debian package `nftables`).
//!
//! Every change is one `nft -f -` transaction, so a table is replaced whole or
//! not at all. `nft` runs in the network namespace of the calling thread.

mod json;

use std::io::Write;
use std::process::{Command, Stdio};

pub use json::{TableRef, parse_tables};

/// Errors from running `nft`.
#[derive(Debug, thiserror::Error)]
pub enum NftError {
    /// The `nft` binary could not be started (not installed, not executable).
    #[error("cannot run `{command}`: {source}")]
    Spawn {
        command: String,
        #[source]
        source: std::io::Error,
    },
    /// `nft` ran and rejected the command or transaction.
    #[error("`{command}` failed for {subject} ({status}): {stderr}")]
    Failed {
        command: String,
        /// The table(s) the command was about.
        subject: String,
        status: std::process::ExitStatus,
        stderr: String,
    },
    /// `nft -j` printed something that is not the JSON we expect.
    #[error("cannot parse the JSON output of `{command}`: {reason}")]
    Parse { command: String, reason: String },
}

/// Applies `script` as one atomic `nft -f -` transaction.
pub fn apply(script: &str) -> Result<(), NftError> {
    let subject = script_subject(script);
    run(&["-f", "-"], Some(script), &subject).map(drop)
}

/// Lists all tables of the current network namespace.
pub fn list_tables() -> Result<Vec<TableRef>, NftError> {
    let out = run(&["-j", "list", "tables"], None, "all tables")?;
    parse_tables(&out).map_err(|reason| NftError::Parse {
        command: "nft -j list tables".into(),
        reason,
    })
}

/// Deletes table `family name`; returns whether it existed.
pub fn delete_table(family: &str, name: &str) -> Result<bool, NftError> {
    if !table_exists(family, name)? {
        return Ok(false);
    }
    let subject = format!("table {family} {name}");
    run(&["delete", "table", family, name], None, &subject)?;
    Ok(true)
}

/// Whether table `family name` exists.
pub fn table_exists(family: &str, name: &str) -> Result<bool, NftError> {
    let tables = list_tables()?;
    Ok(tables.iter().any(|t| t.family == family && t.name == name))
}

/// The table as `nft -j list table` JSON (the `nftables` array), or `None`
/// when it does not exist. Used by tests and CHECK to inspect rules.
pub fn table_json(family: &str, name: &str) -> Result<Option<serde_json::Value>, NftError> {
    if !table_exists(family, name)? {
        return Ok(None);
    }
    let subject = format!("table {family} {name}");
    let out = run(&["-j", "list", "table", family, name], None, &subject)?;
    let value: serde_json::Value = serde_json::from_str(&out).map_err(|e| NftError::Parse {
        command: format!("nft -j list table {family} {name}"),
        reason: e.to_string(),
    })?;
    Ok(Some(value))
}

/// Runs `nft args...`, feeding `stdin` if given; returns stdout.
fn run(args: &[&str], stdin: Option<&str>, subject: &str) -> Result<String, NftError> {
    let command = format!("nft {}", args.join(" "));
    let spawn_err = |source| NftError::Spawn {
        command: command.clone(),
        source,
    };
    let mut child = Command::new("nft")
        .args(args)
        .stdin(if stdin.is_some() {
            Stdio::piped()
        } else {
            Stdio::null()
        })
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(spawn_err)?;
    if let (Some(text), Some(mut pipe)) = (stdin, child.stdin.take()) {
        // A write error (nft exited early) shows up in its status below.
        let _ = pipe.write_all(text.as_bytes());
    }
    let output = child.wait_with_output().map_err(spawn_err)?;
    if !output.status.success() {
        return Err(NftError::Failed {
            command,
            subject: subject.to_string(),
            status: output.status,
            stderr: String::from_utf8_lossy(&output.stderr).trim().to_string(),
        });
    }
    Ok(String::from_utf8_lossy(&output.stdout).into_owned())
}

/// Names the tables a script touches, for error messages.
fn script_subject(script: &str) -> String {
    let mut tables: Vec<String> = Vec::new();
    for line in script.lines() {
        let words: Vec<&str> = line.split_whitespace().collect();
        let rest = match words.as_slice() {
            ["table", rest @ ..] => rest,
            [
                "add" | "delete" | "flush" | "create" | "destroy",
                "table",
                rest @ ..,
            ] => rest,
            _ => continue,
        };
        if let [family, name, ..] = rest {
            let table = format!("table {family} {}", name.trim_end_matches('{').trim());
            if !tables.contains(&table) {
                tables.push(table);
            }
        }
    }
    if tables.is_empty() {
        "an nft script naming no table".to_string()
    } else {
        tables.join(", ")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn subject_names_each_table_once() {
        let script = "add table inet t1\ndelete table inet t1\ntable ip t2 {\n}\n";
        assert_eq!(script_subject(script), "table inet t1, table ip t2");
        assert_eq!(
            script_subject("list ruleset"),
            "an nft script naming no table"
        );
    }
}
