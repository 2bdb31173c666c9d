//! A minimal kubeconfig pointing at the lab server (no credentials).

/// Renders a kubeconfig with one cluster, user and context named
/// `context_name`, current-context set, server `server_url` (plain HTTP).
pub fn kubeconfig_yaml(server_url: &str, context_name: &str) -> String {
    let server = yaml_string(server_url);
    let name = yaml_string(context_name);
    format!(
        "apiVersion: v1\nkind: Config\nclusters:\n- name: {name}\n  cluster:\n    server: {server}\n\
         users:\n- name: {name}\n  user: {{}}\ncontexts:\n- name: {name}\n  context:\n    cluster: {name}\n    user: {name}\n    namespace: default\n\
         current-context: {name}\npreferences: {{}}\n"
    )
}

/// A double-quoted YAML scalar (JSON string syntax is valid YAML).
fn yaml_string(s: &str) -> String {
    serde_json::Value::String(s.to_string()).to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_as_yaml_with_server() {
        let text = kubeconfig_yaml("http://127.0.0.1:6443", "lab-a");
        let v: serde_json::Value = serde_yaml::from_str(&text).expect("valid YAML");
        assert_eq!(
            v["clusters"][0]["cluster"]["server"],
            "http://127.0.0.1:6443"
        );
        assert_eq!(v["current-context"], "lab-a");
        assert_eq!(v["contexts"][0]["context"]["user"], "lab-a");
    }
}
