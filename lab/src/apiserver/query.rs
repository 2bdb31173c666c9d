//! Query-string and DeleteOptions parsing into typed options.

use std::collections::HashMap;

use serde_json::Value;

use super::error::ApiError;
use super::ops::{DeleteOptions, ListOptions, Propagation};
use super::selector::{FieldSelector, LabelSelector};

/// Decoded query parameters (last occurrence wins).
#[derive(Debug, Default)]
pub struct Query(HashMap<String, String>);

impl Query {
    pub fn parse(raw: Option<&str>) -> Self {
        let pairs = raw
            .unwrap_or("")
            .split('&')
            .filter(|p| !p.is_empty())
            .map(|p| {
                let (k, v) = p.split_once('=').unwrap_or((p, ""));
                (percent_decode(k), percent_decode(v))
            });
        Query(pairs.collect())
    }

    pub fn get(&self, key: &str) -> Option<&str> {
        self.0.get(key).map(String::as_str)
    }

    /// `true` for `1`/`true` (and a bare `?key`), as Kubernetes accepts.
    pub fn flag(&self, key: &str) -> bool {
        matches!(self.get(key), Some("1" | "true" | "True" | ""))
    }

    fn number(&self, key: &str) -> Result<Option<i64>, ApiError> {
        self.get(key)
            .filter(|v| !v.is_empty())
            .map(|v| {
                v.parse().map_err(|_| {
                    ApiError::BadRequest(format!("query parameter {key}={v:?} is not a number"))
                })
            })
            .transpose()
    }

    pub fn list_options(&self) -> Result<ListOptions, ApiError> {
        let bad = |e: super::selector::SelectorError| ApiError::BadRequest(e.to_string());
        Ok(ListOptions {
            labels: LabelSelector::parse(self.get("labelSelector").unwrap_or("")).map_err(bad)?,
            fields: FieldSelector::parse(self.get("fieldSelector").unwrap_or("")).map_err(bad)?,
            limit: self.number("limit")?.map(|l| l.max(0) as usize),
            continue_token: self
                .get("continue")
                .filter(|c| !c.is_empty())
                .map(str::to_string),
        })
    }

    pub fn watch_options(&self) -> Result<WatchOptions, ApiError> {
        let rv = self.get("resourceVersion").unwrap_or("");
        let resource_version = match rv {
            "" | "0" => None,
            v => Some(
                v.parse()
                    .map_err(|_| ApiError::BadRequest(format!("invalid resourceVersion {v:?}")))?,
            ),
        };
        Ok(WatchOptions {
            resource_version,
            timeout_seconds: self
                .number("timeoutSeconds")?
                .filter(|t| *t > 0)
                .map(|t| t as u64),
            bookmarks: self.flag("allowWatchBookmarks"),
            send_initial_events: self.flag("sendInitialEvents"),
        })
    }

    /// Delete options from the query, overridden by a DeleteOptions body.
    pub fn delete_options(&self, body: &[u8]) -> Result<DeleteOptions, ApiError> {
        let mut opts = DeleteOptions {
            grace_period: self.number("gracePeriodSeconds")?,
            propagation: propagation(self.get("propagationPolicy"), self.flag("orphanDependents"))?,
            ..DeleteOptions::default()
        };
        if body.iter().all(u8::is_ascii_whitespace) {
            return Ok(opts);
        }
        let v: Value = serde_json::from_slice(body)
            .map_err(|e| ApiError::BadRequest(format!("invalid DeleteOptions body: {e}")))?;
        if let Some(g) = v.get("gracePeriodSeconds").and_then(Value::as_i64) {
            opts.grace_period = Some(g);
        }
        let orphan = v
            .get("orphanDependents")
            .and_then(Value::as_bool)
            .unwrap_or(false);
        if let Some(p) = v.get("propagationPolicy").and_then(Value::as_str) {
            opts.propagation = propagation(Some(p), orphan)?;
        } else if orphan {
            opts.propagation = Propagation::Orphan;
        }
        let pre = |f: &str| {
            v.pointer(&format!("/preconditions/{f}"))
                .and_then(Value::as_str)
                .map(str::to_string)
        };
        opts.precondition_uid = pre("uid");
        opts.precondition_rv = pre("resourceVersion");
        Ok(opts)
    }
}

fn propagation(policy: Option<&str>, orphan: bool) -> Result<Propagation, ApiError> {
    match policy {
        None | Some("") if orphan => Ok(Propagation::Orphan),
        None | Some("" | "Background" | "Foreground") => Ok(Propagation::Background),
        Some("Orphan") => Ok(Propagation::Orphan),
        Some(other) => Err(ApiError::BadRequest(format!(
            "unknown propagationPolicy {other:?}"
        ))),
    }
}

#[derive(Debug, Clone, Default)]
pub struct WatchOptions {
    /// None: start with synthetic ADDED events for current objects.
    pub resource_version: Option<u64>,
    pub timeout_seconds: Option<u64>,
    pub bookmarks: bool,
    pub send_initial_events: bool,
}

fn percent_decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let hex = bytes
            .get(i + 1..i + 3)
            .and_then(|h| std::str::from_utf8(h).ok())
            .and_then(|h| u8::from_str_radix(h, 16).ok());
        match (bytes[i], hex) {
            (b'%', Some(b)) => {
                out.push(b);
                i += 3;
            }
            (b'+', _) => {
                out.push(b' ');
                i += 1;
            }
            (b, _) => {
                out.push(b);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decodes_selectors_and_flags() {
        let q = Query::parse(Some(
            "labelSelector=app%3Dweb%2Ctier+in+%28a%2Cb%29&watch=1&limit=5&allowWatchBookmarks=true",
        ));
        assert_eq!(q.get("labelSelector"), Some("app=web,tier in (a,b)"));
        assert!(q.flag("watch") && q.flag("allowWatchBookmarks") && !q.flag("missing"));
        assert_eq!(q.list_options().expect("valid").limit, Some(5));
        assert!(Query::parse(Some("limit=x")).list_options().is_err());
    }

    #[test]
    fn delete_options_body_overrides_query() {
        let q = Query::parse(Some("gracePeriodSeconds=30"));
        let o = q.delete_options(br#"{"gracePeriodSeconds":0,"propagationPolicy":"Orphan","preconditions":{"uid":"u"}}"#).expect("valid");
        assert_eq!(o.grace_period, Some(0));
        assert_eq!(o.propagation, Propagation::Orphan);
        assert_eq!(o.precondition_uid.as_deref(), Some("u"));
        assert_eq!(q.delete_options(b"").expect("valid").grace_period, Some(30));
    }
}
