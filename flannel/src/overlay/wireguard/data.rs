//! `backend-data` / `backend-v6-data` of the WireGuard backend, exactly as
//! flannel writes it: `{"PublicKey":"<base64>","Port":51820}`.

use serde_json::Value;

use super::key::WgKey;
use crate::overlay::annotations::{go_field, go_json_object};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct WireguardData {
    pub public_key: WgKey,
    /// `None` when `Port` is missing or 0 (older flannel): the reader uses
    /// its own listen port for that family.
    pub port: Option<u16>,
}

impl WireguardData {
    /// Canonical form: flannel's key order, no spaces.
    pub fn render(&self) -> String {
        format!(
            r#"{{"PublicKey":"{}","Port":{}}}"#,
            self.public_key.to_base64(),
            self.port.unwrap_or(0)
        )
    }

    /// Parses any key order; keys match case-insensitively (as Go's JSON
    /// decoder does). The error says what is wrong, for an Event.
    pub fn parse(text: &str) -> Result<WireguardData, String> {
        let object = go_json_object(text)?;
        let field = |name: &str| go_field(&object, name);
        let key = field("PublicKey")
            .and_then(Value::as_str)
            .ok_or("missing \"PublicKey\" string")?;
        let public_key = WgKey::from_base64(key).map_err(|e| format!("\"PublicKey\" {e}"))?;
        let port = match field("Port") {
            None | Some(Value::Null) => None,
            Some(v) => {
                let port = v
                    .as_u64()
                    .and_then(|p| u16::try_from(p).ok())
                    .ok_or_else(|| format!("\"Port\" {v} is not a UDP port"))?;
                (port != 0).then_some(port)
            }
        };
        Ok(WireguardData { public_key, port })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const KEY: &str = "hSDwCYkwp1R0i33ctD73Wg2/Og0mOBr066SpjqqbTmo=";

    #[test]
    fn renders_flannels_exact_form() {
        let data = WireguardData {
            public_key: WgKey::from_base64(KEY).expect("key"),
            port: Some(51820),
        };
        let text = data.render();
        assert_eq!(text, format!(r#"{{"PublicKey":"{KEY}","Port":51820}}"#));
        assert_eq!(WireguardData::parse(&text), Ok(data));
    }

    #[test]
    fn accepts_other_order_case_and_missing_or_zero_port() {
        let key = WgKey::from_base64(KEY).expect("key");
        for text in [
            format!(r#"{{"Port":51821, "publickey":"{KEY}"}}"#),
            format!(r#"{{"PublicKey":"{KEY}"}}"#),
            format!(r#"{{"PublicKey":"{KEY}","Port":0}}"#),
        ] {
            let parsed = WireguardData::parse(&text).expect(&text);
            assert_eq!(parsed.public_key, key);
            assert_eq!(parsed.port.is_some(), text.contains("51821"), "{text}");
        }
    }

    #[test]
    fn refuses_malformed_data_saying_why() {
        let cases = [
            ("null", "JSON object"),
            ("{\"VNI\":1}", "PublicKey"),
            ("{\"PublicKey\":\"abc\"}", "PublicKey"),
            (
                r#"{"PublicKey":"AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=","Port":70000}"#,
                "Port",
            ),
            ("{", "not JSON"),
        ];
        for (text, want) in cases {
            let err = WireguardData::parse(text).expect_err(text);
            assert!(err.contains(want), "{text}: {err}");
        }
    }
}
