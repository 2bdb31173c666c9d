//! Parsing of `nft -j` output.

use serde_json::Value;

/// One nftables table: `family` (`ip`, `ip6`, `inet`, `arp`, `bridge`,
/// `netdev`) and `name`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct TableRef {
    pub family: String,
    pub name: String,
}

/// Parses `nft -j list tables` output into table references.
pub fn parse_tables(json: &str) -> Result<Vec<TableRef>, String> {
    let value: Value = serde_json::from_str(json).map_err(|e| e.to_string())?;
    let items = value
        .get("nftables")
        .and_then(Value::as_array)
        .ok_or("missing top-level `nftables` array")?;
    let mut tables = Vec::new();
    for table in items.iter().filter_map(|item| item.get("table")) {
        let field = |key: &str| {
            table
                .get(key)
                .and_then(Value::as_str)
                .map(str::to_string)
                .ok_or(format!("table object without string field `{key}`"))
        };
        tables.push(TableRef {
            family: field("family")?,
            name: field("name")?,
        });
    }
    Ok(tables)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_tables_and_skips_metainfo() {
        let json = r#"{"nftables":[{"metainfo":{"version":"1.0.6","json_schema_version":1}},
            {"table":{"family":"inet","name":"nodenet-hostport","handle":3}},
            {"table":{"family":"ip","name":"nat","handle":4}}]}"#;
        let tables = parse_tables(json).expect("valid");
        assert_eq!(
            tables,
            vec![
                TableRef {
                    family: "inet".into(),
                    name: "nodenet-hostport".into()
                },
                TableRef {
                    family: "ip".into(),
                    name: "nat".into()
                },
            ]
        );
    }

    #[test]
    fn rejects_malformed_output() {
        assert!(parse_tables("{}").is_err());
        assert!(parse_tables("not json").is_err());
        assert!(parse_tables(r#"{"nftables":[{"table":{"family":"ip"}}]}"#).is_err());
    }
}
