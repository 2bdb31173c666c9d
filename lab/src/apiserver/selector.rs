//! Label and field selectors as the API accepts them in query strings.

use serde_json::Value;

use super::meta;

/// A selector string that does not parse.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum SelectorError {
    /// A requirement is not of a form we know; names the requirement.
    #[error("unable to parse requirement {0:?}")]
    Requirement(String),
    /// Parentheses of an `in`/`notin` set are unbalanced.
    #[error("unbalanced parentheses in selector {0:?}")]
    Parentheses(String),
}

#[derive(Debug, Clone, PartialEq)]
enum LabelReq {
    Eq(String, String),
    NotEq(String, String),
    In(String, Vec<String>),
    NotIn(String, Vec<String>),
    Exists(String),
    NotExists(String),
}

/// A parsed label selector; the empty selector matches everything.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct LabelSelector(Vec<LabelReq>);

impl LabelSelector {
    pub fn parse(s: &str) -> Result<Self, SelectorError> {
        let parts = split_top_level(s)?;
        let reqs = parts
            .iter()
            .map(|p| parse_label_req(p))
            .collect::<Result<_, _>>()?;
        Ok(LabelSelector(reqs))
    }

    pub fn matches(&self, obj: &Value) -> bool {
        let labels = meta::labels(obj);
        let get = |k: &str| labels.iter().find(|(key, _)| *key == k).map(|(_, v)| *v);
        self.0.iter().all(|req| match req {
            LabelReq::Eq(k, v) => get(k) == Some(v.as_str()),
            LabelReq::NotEq(k, v) => get(k) != Some(v.as_str()),
            LabelReq::In(k, vs) => get(k).is_some_and(|x| vs.iter().any(|v| v == x)),
            LabelReq::NotIn(k, vs) => !get(k).is_some_and(|x| vs.iter().any(|v| v == x)),
            LabelReq::Exists(k) => get(k).is_some(),
            LabelReq::NotExists(k) => get(k).is_none(),
        })
    }
}

/// Splits at commas that are not inside parentheses; drops empty parts.
fn split_top_level(s: &str) -> Result<Vec<String>, SelectorError> {
    let (mut parts, mut cur, mut depth) = (Vec::new(), String::new(), 0i32);
    for c in s.chars() {
        match c {
            '(' => depth += 1,
            ')' => depth -= 1,
            ',' if depth == 0 => {
                parts.push(std::mem::take(&mut cur));
                continue;
            }
            _ => {}
        }
        if depth < 0 {
            return Err(SelectorError::Parentheses(s.to_string()));
        }
        cur.push(c);
    }
    if depth != 0 {
        return Err(SelectorError::Parentheses(s.to_string()));
    }
    parts.push(cur);
    Ok(parts
        .into_iter()
        .map(|p| p.trim().to_string())
        .filter(|p| !p.is_empty())
        .collect())
}

fn parse_label_req(req: &str) -> Result<LabelReq, SelectorError> {
    let bad = || SelectorError::Requirement(req.to_string());
    if let Some(key) = req.strip_prefix('!') {
        return valid_key(key.trim())
            .map(LabelReq::NotExists)
            .ok_or_else(bad);
    }
    if let Some((key, rest)) = split_set_op(req) {
        let key = valid_key(key).ok_or_else(bad)?;
        let (op, set) = rest;
        let values = parse_set(set).ok_or_else(bad)?;
        return Ok(if op == "in" {
            LabelReq::In(key, values)
        } else {
            LabelReq::NotIn(key, values)
        });
    }
    for (op, ctor) in [
        ("!=", LabelReq::NotEq as fn(String, String) -> LabelReq),
        ("==", LabelReq::Eq),
        ("=", LabelReq::Eq),
    ] {
        if let Some((k, v)) = req.split_once(op) {
            let key = valid_key(k.trim()).ok_or_else(bad)?;
            return Ok(ctor(key, v.trim().to_string()));
        }
    }
    valid_key(req).map(LabelReq::Exists).ok_or_else(bad)
}

/// Recognises `key in (..)` / `key notin (..)`; returns key and (op, set text).
fn split_set_op(req: &str) -> Option<(&str, (&str, &str))> {
    let open = req.find('(')?;
    let head = req[..open].trim_end();
    let (key, op) = head.rsplit_once(char::is_whitespace)?;
    matches!(op, "in" | "notin").then(|| (key.trim(), (op, &req[open..])))
}

fn parse_set(set: &str) -> Option<Vec<String>> {
    let inner = set.trim().strip_prefix('(')?.strip_suffix(')')?;
    Some(
        inner
            .split(',')
            .map(|v| v.trim().to_string())
            .filter(|v| !v.is_empty())
            .collect(),
    )
}

fn valid_key(key: &str) -> Option<String> {
    let ok = !key.is_empty()
        && key
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.' | '/'));
    ok.then(|| key.to_string())
}

#[derive(Debug, Clone, PartialEq)]
struct FieldReq {
    path: String,
    value: String,
    equal: bool,
}

/// A parsed field selector (`a.b=c`, `a.b==c`, `a.b!=c`, comma-joined).
#[derive(Debug, Clone, PartialEq, Default)]
pub struct FieldSelector(Vec<FieldReq>);

impl FieldSelector {
    pub fn parse(s: &str) -> Result<Self, SelectorError> {
        let mut reqs = Vec::new();
        for part in s.split(',').map(str::trim).filter(|p| !p.is_empty()) {
            reqs.push(parse_field_req(part)?);
        }
        Ok(FieldSelector(reqs))
    }

    /// A missing field compares as the empty string, as in Kubernetes
    /// (`spec.nodeName=` selects unscheduled pods).
    pub fn matches(&self, obj: &Value) -> bool {
        self.0.iter().all(|r| {
            let actual = meta::path(obj, &r.path)
                .and_then(meta::scalar_string)
                .unwrap_or_default();
            (actual == r.value) == r.equal
        })
    }

    /// The value of a `metadata.name=` requirement, used to narrow lookups.
    pub fn exact_name(&self) -> Option<&str> {
        self.0
            .iter()
            .find(|r| r.equal && r.path == "metadata.name")
            .map(|r| r.value.as_str())
    }
}

fn parse_field_req(part: &str) -> Result<FieldReq, SelectorError> {
    let (path, value, equal) = if let Some((p, v)) = part.split_once("!=") {
        (p, v, false)
    } else if let Some((p, v)) = part.split_once("==") {
        (p, v, true)
    } else if let Some((p, v)) = part.split_once('=') {
        (p, v, true)
    } else {
        return Err(SelectorError::Requirement(part.to_string()));
    };
    let path = path.trim();
    if path.is_empty() {
        return Err(SelectorError::Requirement(part.to_string()));
    }
    Ok(FieldReq {
        path: path.to_string(),
        value: value.trim().to_string(),
        equal,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn pod(labels: Value) -> Value {
        json!({"metadata": {"name": "p", "namespace": "default", "labels": labels},
               "spec": {"nodeName": "node-1"}, "status": {"phase": "Running"}})
    }

    fn sel(s: &str) -> LabelSelector {
        LabelSelector::parse(s).expect("selector parses")
    }

    #[test]
    fn label_operators() {
        let p = pod(json!({"app": "web", "tier": "front"}));
        assert!(sel("").matches(&p));
        assert!(sel("app=web").matches(&p));
        assert!(sel("app==web,tier=front").matches(&p));
        assert!(!sel("app=web,tier=back").matches(&p));
        assert!(sel("app!=db").matches(&p));
        assert!(!sel("app!=web").matches(&p));
        assert!(sel("app in (db, web)").matches(&p));
        assert!(!sel("app notin (db,web)").matches(&p));
        assert!(sel("tier notin (back)").matches(&p));
        assert!(sel("app,tier").matches(&p));
        assert!(sel("!missing").matches(&p));
        assert!(!sel("!app").matches(&p));
        assert!(!sel("missing").matches(&p));
        assert!(sel("missing notin (x)").matches(&p));
        assert!(!sel("missing in (x)").matches(&p));
        assert!(sel("app in (web),tier in (front,back)").matches(&p));
    }

    #[test]
    fn label_selector_errors() {
        assert!(LabelSelector::parse("app in (a").is_err());
        assert!(LabelSelector::parse("a b c").is_err());
        assert!(LabelSelector::parse("=x").is_err());
    }

    #[test]
    fn field_selectors() {
        let p = pod(json!({}));
        let f = |s: &str| FieldSelector::parse(s).expect("parses");
        assert!(f("metadata.name=p,metadata.namespace=default").matches(&p));
        assert!(f("spec.nodeName==node-1").matches(&p));
        assert!(!f("spec.nodeName!=node-1").matches(&p));
        assert!(f("status.phase=Running").matches(&p));
        assert!(f("spec.hostNetwork=").matches(&p));
        assert!(!f("metadata.name=q").matches(&p));
        assert_eq!(f("metadata.name=p").exact_name(), Some("p"));
        assert!(FieldSelector::parse("nonsense").is_err());
    }
}
