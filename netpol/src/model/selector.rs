//! Label selectors (matchLabels AND every matchExpression), validated once.

use std::collections::{BTreeMap, BTreeSet};

use k8s_openapi::apimachinery::pkg::apis::meta::v1::{LabelSelector, LabelSelectorRequirement};

/// Labels of a pod or namespace.
pub type Labels = BTreeMap<String, String>;

/// One validated matchExpression.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
enum Expr {
    In(String, BTreeSet<String>),
    NotIn(String, BTreeSet<String>),
    Exists(String),
    DoesNotExist(String),
}

/// A validated label selector; the empty selector matches everything.
#[derive(Debug, Clone, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Selector {
    labels: BTreeMap<String, String>,
    exprs: BTreeSet<Expr>,
}

impl Selector {
    /// The selector matching everything (`{}`).
    pub fn everything() -> Selector {
        Selector::default()
    }

    /// Validates `sel`; the error names the offending field below `field`.
    pub fn parse(sel: &LabelSelector, field: &str) -> Result<Selector, (String, String)> {
        let labels = sel.match_labels.clone().unwrap_or_default();
        let mut exprs = BTreeSet::new();
        for (i, req) in sel.match_expressions.iter().flatten().enumerate() {
            let at = format!("{field}.matchExpressions[{i}]");
            exprs.insert(parse_expr(req).map_err(|reason| (at, reason))?);
        }
        Ok(Selector { labels, exprs })
    }

    /// Whether `labels` satisfy every term.
    pub fn matches(&self, labels: &Labels) -> bool {
        let labels_ok = self
            .labels
            .iter()
            .all(|(k, v)| labels.get(k).is_some_and(|have| have == v));
        labels_ok && self.exprs.iter().all(|e| expr_matches(e, labels))
    }

    /// A canonical text form: equal selectors render equally (used to
    /// share one peer set between policies that repeat a selector).
    pub fn canonical(&self) -> String {
        let mut out = String::new();
        for (k, v) in &self.labels {
            out.push_str(&format!("{k}={v},"));
        }
        for e in &self.exprs {
            out.push_str(&format!("{e:?},"));
        }
        out
    }
}

fn parse_expr(req: &LabelSelectorRequirement) -> Result<Expr, String> {
    let key = req.key.clone();
    if key.is_empty() {
        return Err("key must not be empty".into());
    }
    let values: BTreeSet<String> = req.values.iter().flatten().cloned().collect();
    let need_values = |op: &str| {
        if values.is_empty() {
            Err(format!("operator {op} needs at least one value"))
        } else {
            Ok(())
        }
    };
    let no_values = |op: &str| {
        if values.is_empty() {
            Ok(())
        } else {
            Err(format!("operator {op} takes no values"))
        }
    };
    match req.operator.as_str() {
        "In" => need_values("In").map(|()| Expr::In(key, values.clone())),
        "NotIn" => need_values("NotIn").map(|()| Expr::NotIn(key, values.clone())),
        "Exists" => no_values("Exists").map(|()| Expr::Exists(key)),
        "DoesNotExist" => no_values("DoesNotExist").map(|()| Expr::DoesNotExist(key)),
        other => Err(format!(
            "unknown operator {other:?} (In, NotIn, Exists, DoesNotExist)"
        )),
    }
}

/// NotIn and DoesNotExist match objects that lack the key.
fn expr_matches(expr: &Expr, labels: &Labels) -> bool {
    match expr {
        Expr::In(k, vs) => labels.get(k).is_some_and(|v| vs.contains(v)),
        Expr::NotIn(k, vs) => labels.get(k).is_none_or(|v| !vs.contains(v)),
        Expr::Exists(k) => labels.contains_key(k),
        Expr::DoesNotExist(k) => !labels.contains_key(k),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn labels(pairs: &[(&str, &str)]) -> Labels {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    fn req(key: &str, op: &str, values: &[&str]) -> LabelSelectorRequirement {
        LabelSelectorRequirement {
            key: key.into(),
            operator: op.into(),
            values: Some(values.iter().map(|v| v.to_string()).collect()),
        }
    }

    fn sel(reqs: Vec<LabelSelectorRequirement>) -> Selector {
        let raw = LabelSelector {
            match_expressions: Some(reqs),
            match_labels: None,
        };
        Selector::parse(&raw, "s").expect("valid")
    }

    #[test]
    fn empty_matches_everything() {
        assert!(Selector::everything().matches(&labels(&[])));
        assert!(Selector::everything().matches(&labels(&[("a", "b")])));
    }

    #[test]
    fn four_operators() {
        let a_b = labels(&[("a", "b")]);
        let a_c = labels(&[("a", "c")]);
        let none = labels(&[]);
        let s = sel(vec![req("a", "In", &["b"])]);
        assert!(s.matches(&a_b) && !s.matches(&a_c) && !s.matches(&none));
        let s = sel(vec![req("a", "NotIn", &["b"])]);
        assert!(!s.matches(&a_b) && s.matches(&a_c) && s.matches(&none));
        let s = sel(vec![req("a", "Exists", &[])]);
        assert!(s.matches(&a_b) && !s.matches(&none));
        let s = sel(vec![req("a", "DoesNotExist", &[])]);
        assert!(!s.matches(&a_b) && s.matches(&none));
    }

    #[test]
    fn labels_and_expressions_are_anded() {
        let raw = LabelSelector {
            match_labels: Some(labels(&[("x", "1")])),
            match_expressions: Some(vec![req("y", "Exists", &[])]),
        };
        let s = Selector::parse(&raw, "s").expect("valid");
        assert!(s.matches(&labels(&[("x", "1"), ("y", "z")])));
        assert!(!s.matches(&labels(&[("x", "1")])));
        assert!(!s.matches(&labels(&[("y", "z")])));
    }

    #[test]
    fn invalid_expressions_name_the_field() {
        for bad in [
            req("a", "Equals", &["b"]),
            req("a", "In", &[]),
            req("a", "Exists", &["b"]),
            req("", "Exists", &[]),
        ] {
            let raw = LabelSelector {
                match_expressions: Some(vec![bad]),
                match_labels: None,
            };
            let (field, _) = Selector::parse(&raw, "spec.podSelector").expect_err("invalid");
            assert_eq!(field, "spec.podSelector.matchExpressions[0]");
        }
    }
}
