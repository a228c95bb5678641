//! The metadata filter language: its AST, its JSON parser and its evaluator.
//!
//! A filter reads `{"must": [...], "should": [...], "must_not": [...]}`. Each list holds
//! conditions or nested groups of the same shape:
//!
//! | condition | meaning |
//! |-----------|---------|
//! | `{"key": "a.b", "match": "x"}` | the value at `a.b` equals `x` (string, integer or bool) |
//! | `{"key": "tag", "any": ["x", "y"]}` | the value equals one of the listed values |
//! | `{"key": "n", "range": {"gte": 1, "lt": 5}}` | the value is a number inside the bounds |
//! | `{"must": [...], ...}` | a nested group |
//!
//! A group matches when every `must` condition holds, at least one `should` condition
//! holds (if there are any) and no `must_not` condition holds; the empty filter matches
//! everything. Dots in a key walk into nested metadata objects. When the value found is
//! an array, a condition holds if it holds for any element, so `{"key": "tags", "match":
//! "red"}` finds documents tagged red among others.
//!
//! Filters are parsed and validated once; errors name the offending place, such as
//! `must[1].range: gt of key "n" must be a number`. Nesting is limited to [`MAX_FILTER_DEPTH`] groups
//! so a hostile filter cannot exhaust the stack.

use serde::{Deserialize, Deserializer};
use serde_json::Value;

use crate::{CoreError, Metadata, Result};

/// Deepest nesting of groups a filter may use (the top level counts as one).
pub const MAX_FILTER_DEPTH: usize = 16;

/// A parsed, validated boolean filter over document metadata.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Filter {
    /// Every one of these must hold.
    pub must: Vec<Condition>,
    /// At least one of these must hold, when the list is not empty.
    pub should: Vec<Condition>,
    /// None of these may hold.
    pub must_not: Vec<Condition>,
}

/// One test inside a filter group.
#[derive(Debug, Clone, PartialEq)]
pub enum Condition {
    /// The value at `key` equals `value`.
    Match { key: KeyPath, value: MatchValue },
    /// The value at `key` equals one of `values`.
    Any {
        key: KeyPath,
        values: Vec<MatchValue>,
    },
    /// The value at `key` is a number within `range`.
    Range { key: KeyPath, range: Range },
    /// A nested boolean group.
    Group(Box<Filter>),
}

/// A value a `match` or `any` condition compares against.
#[derive(Debug, Clone, PartialEq)]
pub enum MatchValue {
    Str(String),
    Int(i64),
    Bool(bool),
}

/// Numeric bounds; absent bounds do not constrain. At least one is present.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct Range {
    pub gt: Option<f64>,
    pub gte: Option<f64>,
    pub lt: Option<f64>,
    pub lte: Option<f64>,
}

/// A dotted metadata key split into its segments (`"a.b"` -> `["a", "b"]`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyPath {
    segments: Vec<String>,
}

impl KeyPath {
    /// Splits a dotted key; every segment must be non-empty.
    pub fn parse(key: &str) -> std::result::Result<Self, &'static str> {
        if key.is_empty() {
            return Err("key must not be empty");
        }
        let segments: Vec<String> = key.split('.').map(str::to_owned).collect();
        if segments.iter().any(String::is_empty) {
            return Err("key must not have empty segments");
        }
        Ok(KeyPath { segments })
    }

    /// The segments in order.
    pub fn segments(&self) -> &[String] {
        &self.segments
    }

    /// The value this path reaches in `metadata`, if any.
    pub fn lookup<'a>(&self, metadata: &'a Metadata) -> Option<&'a Value> {
        let (first, rest) = self.segments.split_first()?;
        let mut value = metadata.get(first)?;
        for segment in rest {
            value = value.as_object()?.get(segment)?;
        }
        Some(value)
    }
}

impl std::fmt::Display for KeyPath {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.segments.join("."))
    }
}

impl MatchValue {
    fn from_json(value: &Value) -> Option<Self> {
        match value {
            Value::String(s) => Some(MatchValue::Str(s.clone())),
            Value::Bool(b) => Some(MatchValue::Bool(*b)),
            Value::Number(n) => n.as_i64().map(MatchValue::Int),
            _ => None,
        }
    }

    /// Whether a single (non-array) metadata value equals this one. Integers also
    /// equal floats of the same value, since JSON does not tell `3` from `3.0` apart.
    fn equals(&self, value: &Value) -> bool {
        match (self, value) {
            (MatchValue::Str(a), Value::String(b)) => a == b,
            (MatchValue::Bool(a), Value::Bool(b)) => a == b,
            (MatchValue::Int(a), Value::Number(n)) => match n.as_i64() {
                Some(b) => *a == b,
                None => n.as_f64() == Some(*a as f64),
            },
            _ => false,
        }
    }
}

impl Range {
    /// Whether `x` lies within every present bound.
    pub fn contains(&self, x: f64) -> bool {
        self.gt.is_none_or(|b| x > b)
            && self.gte.is_none_or(|b| x >= b)
            && self.lt.is_none_or(|b| x < b)
            && self.lte.is_none_or(|b| x <= b)
    }
}

/// Calls `test` on the value, or on each element when the value is an array.
fn any_element(value: &Value, test: impl Fn(&Value) -> bool) -> bool {
    match value {
        Value::Array(items) => items.iter().any(test),
        other => test(other),
    }
}

impl Condition {
    /// Whether this condition holds for `metadata`. A missing key never matches.
    pub fn matches(&self, metadata: &Metadata) -> bool {
        match self {
            Condition::Match { key, value } => key
                .lookup(metadata)
                .is_some_and(|v| any_element(v, |x| value.equals(x))),
            Condition::Any { key, values } => key
                .lookup(metadata)
                .is_some_and(|v| any_element(v, |x| values.iter().any(|m| m.equals(x)))),
            Condition::Range { key, range } => key
                .lookup(metadata)
                .is_some_and(|v| any_element(v, |x| x.as_f64().is_some_and(|n| range.contains(n)))),
            Condition::Group(group) => group.matches(metadata),
        }
    }
}

impl Filter {
    /// Parses and validates a filter from its JSON form.
    pub fn parse(json: &Value) -> Result<Self> {
        parse_group(json, "", 1)
    }

    /// Parses a filter from JSON text.
    pub fn from_json_str(text: &str) -> Result<Self> {
        let value: Value = serde_json::from_str(text).map_err(|e| CoreError::InvalidFilter {
            at: String::new(),
            reason: format!("not valid JSON: {e}"),
        })?;
        Filter::parse(&value)
    }

    /// Whether the filter has no conditions at all (it then matches everything).
    pub fn is_empty(&self) -> bool {
        self.must.is_empty() && self.should.is_empty() && self.must_not.is_empty()
    }

    /// Whether `metadata` satisfies the filter.
    pub fn matches(&self, metadata: &Metadata) -> bool {
        self.must.iter().all(|c| c.matches(metadata))
            && (self.should.is_empty() || self.should.iter().any(|c| c.matches(metadata)))
            && !self.must_not.iter().any(|c| c.matches(metadata))
    }
}

impl<'de> Deserialize<'de> for Filter {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> std::result::Result<Self, D::Error> {
        let value = Value::deserialize(deserializer)?;
        Filter::parse(&value).map_err(serde::de::Error::custom)
    }
}

fn invalid(at: &str, reason: impl Into<String>) -> CoreError {
    CoreError::InvalidFilter {
        at: at.to_owned(),
        reason: reason.into(),
    }
}

/// Joins a parent location and a child name the way errors print them.
fn child(at: &str, name: &str) -> String {
    if at.is_empty() {
        name.to_owned()
    } else {
        format!("{at}.{name}")
    }
}

fn parse_group(json: &Value, at: &str, depth: usize) -> Result<Filter> {
    if depth > MAX_FILTER_DEPTH {
        return Err(invalid(
            at,
            format!("filter nests deeper than {MAX_FILTER_DEPTH} groups"),
        ));
    }
    let object = json
        .as_object()
        .ok_or_else(|| invalid(at, "a filter group must be a JSON object"))?;
    let mut filter = Filter::default();
    for (name, value) in object {
        let list = match name.as_str() {
            "must" => &mut filter.must,
            "should" => &mut filter.should,
            "must_not" => &mut filter.must_not,
            other => {
                return Err(invalid(
                    at,
                    format!("unknown field {other:?}, expected must, should or must_not"),
                ))
            }
        };
        let here = child(at, name);
        let items = value
            .as_array()
            .ok_or_else(|| invalid(&here, "must be an array of conditions"))?;
        for (i, item) in items.iter().enumerate() {
            list.push(parse_condition(item, &format!("{here}[{i}]"), depth)?);
        }
    }
    Ok(filter)
}

fn parse_condition(json: &Value, at: &str, depth: usize) -> Result<Condition> {
    let object = json
        .as_object()
        .ok_or_else(|| invalid(at, "a condition must be a JSON object"))?;
    let is_group = ["must", "should", "must_not"]
        .iter()
        .any(|k| object.contains_key(*k));
    if is_group {
        if object.contains_key("key") {
            return Err(invalid(
                at,
                "a condition is either a group or a key test, not both",
            ));
        }
        return Ok(Condition::Group(Box::new(parse_group(
            json,
            at,
            depth + 1,
        )?)));
    }
    let key_text = object
        .get("key")
        .ok_or_else(|| invalid(at, "a condition needs a \"key\" (or must/should/must_not)"))?
        .as_str()
        .ok_or_else(|| invalid(&child(at, "key"), "must be a string"))?;
    let key = KeyPath::parse(key_text).map_err(|e| invalid(&child(at, "key"), e))?;
    let mut tests = object.iter().filter(|(k, _)| k.as_str() != "key");
    let (kind, operand) = match (tests.next(), tests.next()) {
        (Some(test), None) => test,
        (None, _) => return Err(invalid(at, "a condition needs one of match, any, range")),
        (Some(_), Some(_)) => {
            return Err(invalid(
                at,
                "a condition takes exactly one of match, any, range",
            ))
        }
    };
    let here = child(at, kind);
    match kind.as_str() {
        "match" => {
            let value = MatchValue::from_json(operand)
                .ok_or_else(|| invalid(&here, "must be a string, an integer or a bool"))?;
            Ok(Condition::Match { key, value })
        }
        "any" => {
            let items = operand
                .as_array()
                .ok_or_else(|| invalid(&here, "must be an array"))?;
            let values = items
                .iter()
                .enumerate()
                .map(|(i, v)| {
                    MatchValue::from_json(v).ok_or_else(|| {
                        invalid(
                            &format!("{here}[{i}]"),
                            "must be a string, an integer or a bool",
                        )
                    })
                })
                .collect::<Result<Vec<_>>>()?;
            Ok(Condition::Any { key, values })
        }
        "range" => Ok(Condition::Range {
            range: parse_range(operand, &here, key_text)?,
            key,
        }),
        other => Err(invalid(
            at,
            format!("unknown field {other:?}, expected match, any or range"),
        )),
    }
}

fn parse_range(json: &Value, at: &str, key: &str) -> Result<Range> {
    let object = json
        .as_object()
        .ok_or_else(|| invalid(at, "must be an object with gt, gte, lt or lte"))?;
    if object.is_empty() {
        return Err(invalid(at, "needs at least one of gt, gte, lt, lte"));
    }
    let mut range = Range::default();
    for (name, value) in object {
        let slot = match name.as_str() {
            "gt" => &mut range.gt,
            "gte" => &mut range.gte,
            "lt" => &mut range.lt,
            "lte" => &mut range.lte,
            other => {
                return Err(invalid(
                    at,
                    format!("unknown bound {other:?}, expected gt, gte, lt or lte"),
                ))
            }
        };
        let bound = value
            .as_f64()
            .filter(|b| b.is_finite())
            .ok_or_else(|| invalid(at, format!("{name} of key {key:?} must be a number")))?;
        *slot = Some(bound);
    }
    Ok(range)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use serde_json::json;

    fn meta(v: Value) -> Metadata {
        match v {
            Value::Object(m) => m,
            _ => panic!("test metadata must be an object"),
        }
    }

    fn err(v: Value) -> String {
        Filter::parse(&v).unwrap_err().to_string()
    }

    #[test]
    fn evaluates_conditions() {
        let m = meta(json!({"lang": "en", "n": 5, "ok": true, "a": {"b": "deep"},
                            "tags": ["red", "blue"], "f": 2.5}));
        let yes = |v: Value| Filter::parse(&v).unwrap().matches(&m);
        assert!(yes(json!({})));
        assert!(yes(json!({"must": [{"key": "lang", "match": "en"}]})));
        assert!(!yes(json!({"must": [{"key": "lang", "match": "de"}]})));
        assert!(yes(json!({"must": [{"key": "a.b", "match": "deep"}]})));
        assert!(!yes(json!({"must": [{"key": "a.c", "match": "deep"}]})));
        assert!(yes(json!({"must": [{"key": "tags", "match": "blue"}]})));
        assert!(yes(
            json!({"must": [{"key": "n", "match": 5}, {"key": "ok", "match": true}]})
        ));
        assert!(yes(json!({"must": [{"key": "n", "any": [1, 5]}]})));
        assert!(!yes(json!({"must": [{"key": "n", "any": []}]})));
        assert!(yes(
            json!({"must": [{"key": "n", "range": {"gt": 4, "lte": 5}}]})
        ));
        assert!(!yes(json!({"must": [{"key": "n", "range": {"gt": 5}}]})));
        assert!(yes(
            json!({"must": [{"key": "f", "range": {"gte": 2.5, "lt": 3}}]})
        ));
        assert!(!yes(
            json!({"must": [{"key": "lang", "range": {"gte": 0}}]})
        ));
        assert!(yes(
            json!({"should": [{"key": "lang", "match": "de"}, {"key": "n", "match": 5}]})
        ));
        assert!(!yes(json!({"should": [{"key": "lang", "match": "de"}]})));
        assert!(!yes(json!({"must_not": [{"key": "ok", "match": true}]})));
        assert!(yes(
            json!({"must": [{"must_not": [{"key": "missing", "match": 1}]}]})
        ));
    }

    #[test]
    fn reports_where_the_problem_is() {
        assert_eq!(
            err(json!({"must": [{"key": "a", "match": 1}, {"key": "n", "range": {"gt": "x"}}]})),
            "invalid filter at must[1].range: gt of key \"n\" must be a number"
        );
        assert!(err(json!({"filter": []})).contains("unknown field \"filter\""));
        assert!(err(json!({"must": {}})).starts_with("invalid filter at must:"));
        assert!(err(json!({"must": [{"match": 1}]})).contains("needs a \"key\""));
        assert!(err(json!({"must": [{"key": "a"}]})).contains("needs one of"));
        assert!(
            err(json!({"must": [{"key": "a", "match": 1, "any": [1]}]})).contains("exactly one")
        );
        assert!(err(json!({"must": [{"key": "a..b", "match": 1}]})).contains("must[0].key"));
        assert!(err(json!({"must": [{"key": "a", "match": 1.5}]})).contains("must[0].match"));
        assert!(err(json!({"must": [{"key": "a", "any": [1, null]}]})).contains("any[1]"));
        assert!(err(json!({"must": [{"key": "a", "range": {}}]})).contains("at least one"));
        assert!(err(json!({"must": [{"key": "a", "near": 1}]})).contains("unknown field"));
        assert!(err(json!([1])).contains("JSON object"));
        assert!(Filter::from_json_str("{").is_err());
    }

    #[test]
    fn limits_depth() {
        let mut v = json!({"must": [{"key": "a", "match": 1}]});
        for _ in 0..MAX_FILTER_DEPTH - 1 {
            v = json!({"must": [v]});
        }
        assert!(Filter::parse(&v).is_ok());
        let too_deep = json!({"must": [v]});
        assert!(err(too_deep).contains("deeper than"));
    }

    #[test]
    fn deserializes_through_serde() {
        let f: Filter = serde_json::from_str(r#"{"must":[{"key":"x","match":"y"}]}"#).unwrap();
        assert_eq!(f.must.len(), 1);
        assert!(serde_json::from_str::<Filter>(r#"{"must":[{"key":1,"match":"y"}]}"#).is_err());
    }
}
