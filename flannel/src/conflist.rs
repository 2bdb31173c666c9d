//! The CNI conflist the daemon installs so the runtime calls our plugin.

use std::path::PathBuf;

use host::names;
use serde_json::json;

/// Where the daemon keeps its files (`--run-dir`, `--data-dir`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConflistParams {
    pub run_dir: PathBuf,
    pub data_dir: PathBuf,
}

/// Renders `10-nodenet.conflist`: network `cbr0`, CNI 1.0.0, one plugin of
/// type `nodenet` that reads `<run-dir>/subnet.env` at ADD time and keeps its
/// state under `<data-dir>/cni`, with the `portMappings` capability.
pub fn render(params: &ConflistParams) -> String {
    let subnet_file = params.run_dir.join(names::SUBNET_ENV_FILE);
    let data_dir = params.data_dir.join(names::CNI_STATE_DIR);
    let value = json!({
        "name": names::CNI_NETWORK_NAME,
        "cniVersion": "1.0.0",
        "plugins": [{
            "type": names::CNI_PLUGIN_TYPE,
            "subnetFile": subnet_file.to_string_lossy(),
            "dataDir": data_dir.to_string_lossy(),
            "capabilities": {"portMappings": true},
        }],
    });
    let mut text = serde_json::to_string_pretty(&value).unwrap_or_default();
    text.push('\n');
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_the_contract() {
        let text = render(&ConflistParams {
            run_dir: "/run/nodenet".into(),
            data_dir: "/var/lib/nodenet".into(),
        });
        let v: serde_json::Value = serde_json::from_str(&text).expect("valid JSON");
        assert_eq!(
            v,
            json!({
                "name": "cbr0",
                "cniVersion": "1.0.0",
                "plugins": [{
                    "type": "nodenet",
                    "subnetFile": "/run/nodenet/subnet.env",
                    "dataDir": "/var/lib/nodenet/cni",
                    "capabilities": {"portMappings": true}
                }]
            })
        );
        assert!(text.ends_with('\n'));
    }
}
