//! CNI error results (`{cniVersion, code, msg, details}`) and their codes.

use serde_json::{Value, json};

/// Codes from the CNI specification, plus our plugin-specific ones (>= 100).
pub mod code {
    /// Incompatible CNI version.
    pub const INCOMPATIBLE_VERSION: u32 = 1;
    /// Unknown container (CHECK of a container we never added).
    pub const UNKNOWN_CONTAINER: u32 = 3;
    /// Invalid or missing environment variable.
    pub const BAD_ENV: u32 = 4;
    /// I/O failure (stdin, state files).
    pub const IO: u32 = 5;
    /// Failure to decode content (stdin JSON).
    pub const DECODE: u32 = 6;
    /// Invalid network config.
    pub const INVALID_CONFIG: u32 = 7;
    /// Try again later (subnet.env not written yet).
    pub const TRY_AGAIN: u32 = 11;
    /// IPAM failed: no free address, or the container already has one.
    pub const IPAM: u32 = 100;
    /// A kernel operation (netlink, nftables, sysctl) failed.
    pub const KERNEL: u32 = 101;
    /// CHECK found the container's networking incomplete.
    pub const CHECK_FAILED: u32 = 102;
}

/// An error to report to the runtime.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("CNI error {code}: {msg}{}", if details.is_empty() { String::new() } else { format!(" ({details})") })]
pub struct CniError {
    pub code: u32,
    pub msg: String,
    pub details: String,
}

impl CniError {
    pub fn new(code: u32, msg: impl Into<String>, details: impl Into<String>) -> Self {
        CniError {
            code,
            msg: msg.into(),
            details: details.into(),
        }
    }

    /// Missing or invalid environment variable `var`.
    pub fn bad_env(var: &str, why: &str) -> Self {
        CniError::new(
            code::BAD_ENV,
            format!("invalid environment variable {var}: {why}"),
            "",
        )
    }

    /// Config JSON field `field` cannot be decoded.
    pub fn decode(field: &str, why: impl std::fmt::Display) -> Self {
        CniError::new(code::DECODE, format!("cannot decode {field}: {why}"), "")
    }

    /// Config field `field` decodes but has an unusable value.
    pub fn invalid_config(field: &str, why: impl std::fmt::Display) -> Self {
        CniError::new(
            code::INVALID_CONFIG,
            format!("invalid config field {field}: {why}"),
            "",
        )
    }

    /// An I/O failure on `what`.
    pub fn io(what: impl std::fmt::Display, err: impl std::fmt::Display) -> Self {
        CniError::new(code::IO, format!("I/O error on {what}"), err.to_string())
    }

    /// A failed kernel operation.
    pub fn kernel(what: impl std::fmt::Display, err: impl std::fmt::Display) -> Self {
        CniError::new(code::KERNEL, format!("cannot {what}"), err.to_string())
    }

    /// The error result JSON for `cni_version`.
    pub fn to_json(&self, cni_version: &str) -> Value {
        json!({
            "cniVersion": cni_version,
            "code": self.code,
            "msg": self.msg,
            "details": self.details,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn error_json_has_the_spec_fields() {
        let err = CniError::bad_env("CNI_NETNS", "missing");
        assert_eq!(
            err.to_json("1.0.0"),
            json!({"cniVersion":"1.0.0","code":4,"msg":"invalid environment variable CNI_NETNS: missing","details":""})
        );
        assert!(err.to_string().contains("CNI_NETNS"));
    }
}
