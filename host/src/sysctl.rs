//! Reading and writing sysctls under `/proc/sys`.
//!
//! `/proc/sys/net/...` shows the network namespace of the calling thread, so
//! call these from inside [`crate::netns`] work to target another namespace.

use std::path::PathBuf;

/// Errors reading or writing a sysctl.
#[derive(Debug, thiserror::Error)]
pub enum SysctlError {
    /// The key contains characters that would escape `/proc/sys`.
    #[error("invalid sysctl key {key:?}")]
    InvalidKey { key: String },
    /// Reading or writing the file failed.
    #[error("cannot {op} sysctl {key} ({path}): {source}")]
    Io {
        op: &'static str,
        key: String,
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
}

/// The `/proc/sys` path of a dotted key such as `net.ipv4.ip_forward`.
/// Interface names may contain dots, so a key may also be given with slashes
/// (`net/ipv4/conf/eth0.100/forwarding`).
pub fn path_of(key: &str) -> Result<PathBuf, SysctlError> {
    let invalid = || SysctlError::InvalidKey {
        key: key.to_string(),
    };
    if key.is_empty() || key.contains("..") || key.starts_with('/') || key.contains('\0') {
        return Err(invalid());
    }
    let relative = if key.contains('/') {
        key.to_string()
    } else {
        key.replace('.', "/")
    };
    Ok(PathBuf::from("/proc/sys").join(relative))
}

/// Reads a sysctl value, trimmed.
pub fn read(key: &str) -> Result<String, SysctlError> {
    let path = path_of(key)?;
    std::fs::read_to_string(&path)
        .map(|v| v.trim().to_string())
        .map_err(|source| io_err("read", key, path, source))
}

/// Sets a sysctl to `value` unless it already has it; returns whether it
/// changed (idempotent: read, compare, write the difference).
pub fn ensure(key: &str, value: &str) -> Result<bool, SysctlError> {
    if read(key)? == value {
        return Ok(false);
    }
    let path = path_of(key)?;
    std::fs::write(&path, value).map_err(|source| io_err("write", key, path, source))?;
    Ok(true)
}

fn io_err(op: &'static str, key: &str, path: PathBuf, source: std::io::Error) -> SysctlError {
    SysctlError::Io {
        op,
        key: key.to_string(),
        path,
        source,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dotted_and_slashed_keys_map_to_proc_sys() {
        assert_eq!(
            path_of("net.ipv4.ip_forward").expect("valid"),
            PathBuf::from("/proc/sys/net/ipv4/ip_forward")
        );
        assert_eq!(
            path_of("net/ipv4/conf/eth0.100/forwarding").expect("valid"),
            PathBuf::from("/proc/sys/net/ipv4/conf/eth0.100/forwarding")
        );
    }

    #[test]
    fn escaping_keys_are_rejected() {
        for key in ["", "/etc/passwd", "net/../../etc", "a\0b"] {
            assert!(path_of(key).is_err(), "{key:?} accepted");
        }
    }
}
