//! The network configuration on stdin, decoded with field-precise errors.

use std::net::IpAddr;
use std::path::PathBuf;

use host::names;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use super::error::CniError;
use super::request::check_version;

/// Default `subnetFile` (the daemon's default `--run-dir`).
pub const DEFAULT_SUBNET_FILE: &str = "/run/nodenet/subnet.env";
/// Default `dataDir` (the daemon's default `--data-dir` + `/cni`).
pub const DEFAULT_DATA_DIR: &str = "/var/lib/nodenet/cni";

/// Our plugin's config after validation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NetConf {
    pub cni_version: String,
    /// Network name; names the IPAM directory.
    pub name: String,
    pub subnet_file: PathBuf,
    pub data_dir: PathBuf,
    /// `runtimeConfig.portMappings` (hostPort capability).
    pub port_mappings: Vec<PortMapping>,
}

/// Transport protocol of a port mapping.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Protocol {
    Tcp,
    Udp,
    Sctp,
}

impl Protocol {
    /// The nftables keyword.
    pub fn as_str(self) -> &'static str {
        match self {
            Protocol::Tcp => "tcp",
            Protocol::Udp => "udp",
            Protocol::Sctp => "sctp",
        }
    }
}

/// One hostPort mapping.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PortMapping {
    pub host_port: u16,
    pub container_port: u16,
    pub protocol: Protocol,
    /// Only traffic to this local address is mapped; `None` = every local address.
    pub host_ip: Option<IpAddr>,
}

impl NetConf {
    /// Decodes stdin. Wrong JSON types are decode errors (code 6), values we
    /// cannot use are invalid-config errors (code 7); both name the field.
    pub fn parse(stdin: &[u8]) -> Result<NetConf, CniError> {
        let value: Value = serde_json::from_slice(stdin)
            .map_err(|e| CniError::decode("stdin network config", e))?;
        let obj = value
            .as_object()
            .ok_or_else(|| CniError::decode("stdin network config", "not a JSON object"))?;
        let cni_version = required_str(obj, "cniVersion")?;
        check_version(&cni_version)?;
        let name = required_str(obj, "name")?;
        validate_name(&name)?;
        let kind = required_str(obj, "type")?;
        if kind != names::CNI_PLUGIN_TYPE {
            let why = format!("{kind:?} is not {:?}", names::CNI_PLUGIN_TYPE);
            return Err(CniError::invalid_config("type", why));
        }
        Ok(NetConf {
            cni_version,
            name,
            subnet_file: path_field(obj, "subnetFile", DEFAULT_SUBNET_FILE)?,
            data_dir: path_field(obj, "dataDir", DEFAULT_DATA_DIR)?,
            port_mappings: port_mappings(obj)?,
        })
    }

    /// `<dataDir>/networks/<name>`: the IPAM store.
    pub fn ipam_dir(&self) -> PathBuf {
        self.data_dir.join("networks").join(&self.name)
    }

    /// `<dataDir>/containers`: per-container state files.
    pub fn state_dir(&self) -> PathBuf {
        self.data_dir.join("containers")
    }
}

fn required_str(obj: &Map<String, Value>, field: &str) -> Result<String, CniError> {
    match obj.get(field) {
        Some(Value::String(s)) if !s.is_empty() => Ok(s.clone()),
        Some(Value::String(_)) => Err(CniError::invalid_config(field, "must not be empty")),
        Some(other) => Err(CniError::decode(
            field,
            format!("expected a string, got {other}"),
        )),
        None => Err(CniError::invalid_config(field, "missing")),
    }
}

/// The name becomes a directory name.
fn validate_name(name: &str) -> Result<(), CniError> {
    let ok = |c: char| c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-');
    if name.chars().all(ok) && name != "." && name != ".." {
        return Ok(());
    }
    Err(CniError::invalid_config(
        "name",
        "only [A-Za-z0-9_.-] allowed",
    ))
}

fn path_field(obj: &Map<String, Value>, field: &str, default: &str) -> Result<PathBuf, CniError> {
    let path = match obj.get(field) {
        None => return Ok(PathBuf::from(default)),
        Some(Value::String(s)) => PathBuf::from(s),
        Some(other) => {
            return Err(CniError::decode(
                field,
                format!("expected a string, got {other}"),
            ));
        }
    };
    if !path.is_absolute() {
        return Err(CniError::invalid_config(field, "must be an absolute path"));
    }
    Ok(path)
}

fn port_mappings(obj: &Map<String, Value>) -> Result<Vec<PortMapping>, CniError> {
    let Some(runtime) = obj.get("runtimeConfig") else {
        return Ok(Vec::new());
    };
    let runtime = runtime
        .as_object()
        .ok_or_else(|| CniError::decode("runtimeConfig", "expected an object"))?;
    let list = match runtime.get("portMappings") {
        None | Some(Value::Null) => return Ok(Vec::new()),
        Some(Value::Array(list)) => list,
        Some(_) => {
            return Err(CniError::decode(
                "runtimeConfig.portMappings",
                "expected an array",
            ));
        }
    };
    list.iter()
        .enumerate()
        .map(|(i, item)| port_mapping(&format!("runtimeConfig.portMappings[{i}]"), item))
        .collect()
}

fn port_mapping(field: &str, item: &Value) -> Result<PortMapping, CniError> {
    let obj = item
        .as_object()
        .ok_or_else(|| CniError::decode(field, "expected an object"))?;
    Ok(PortMapping {
        host_port: port(obj, field, "hostPort")?,
        container_port: port(obj, field, "containerPort")?,
        protocol: protocol(obj, field)?,
        host_ip: host_ip(obj, field)?,
    })
}

fn port(obj: &Map<String, Value>, field: &str, key: &str) -> Result<u16, CniError> {
    let name = format!("{field}.{key}");
    let value = obj
        .get(key)
        .ok_or_else(|| CniError::invalid_config(&name, "missing"))?;
    let number = value
        .as_i64()
        .ok_or_else(|| CniError::decode(&name, format!("expected an integer, got {value}")))?;
    match u16::try_from(number) {
        Ok(port) if port > 0 => Ok(port),
        _ => Err(CniError::invalid_config(
            &name,
            format!("{number} is not a port (1-65535)"),
        )),
    }
}

fn protocol(obj: &Map<String, Value>, field: &str) -> Result<Protocol, CniError> {
    let name = format!("{field}.protocol");
    let text = match obj.get("protocol") {
        None | Some(Value::Null) => return Ok(Protocol::Tcp),
        Some(Value::String(s)) => s.to_ascii_lowercase(),
        Some(other) => {
            return Err(CniError::decode(
                &name,
                format!("expected a string, got {other}"),
            ));
        }
    };
    match text.as_str() {
        "" | "tcp" => Ok(Protocol::Tcp),
        "udp" => Ok(Protocol::Udp),
        "sctp" => Ok(Protocol::Sctp),
        other => Err(CniError::invalid_config(
            &name,
            format!("{other:?} is not tcp, udp or sctp"),
        )),
    }
}

fn host_ip(obj: &Map<String, Value>, field: &str) -> Result<Option<IpAddr>, CniError> {
    let name = format!("{field}.hostIP");
    match obj.get("hostIP") {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) if s.is_empty() => Ok(None),
        Some(Value::String(s)) => s
            .parse::<IpAddr>()
            .map(|ip| if ip.is_unspecified() { None } else { Some(ip) })
            .map_err(|e| CniError::invalid_config(&name, format!("{s:?}: {e}"))),
        Some(other) => Err(CniError::decode(
            &name,
            format!("expected a string, got {other}"),
        )),
    }
}
