//! The configurable rule table (Contract 2, `schemas.rules.SignalRules`) compiled once: `classify`
//! returns the stateless signals a touchpoint fires; repeat_contact is found by the customer state.

use crate::json::{Json, Object};

/// A metric value as the record holds it (JSON types, integers apart from doubles as Python keeps them).
#[derive(Clone, Debug, PartialEq)]
pub enum Metric {
    Int(i64),
    Float(f64),
    Bool(bool),
    Str(String),
}

/// The metrics a rule may test, in `TouchpointRecord` order.
pub const METRIC_FIELDS: [&str; 10] =
    ["wait_seconds", "transfers", "handled_by", "resolved", "csat", "nps", "ces", "rating", "sentiment", "amount"];

/// One signal kind: its bit in masks, polarity, dimension and score weight.
#[derive(Clone, Debug, PartialEq)]
pub struct Signal {
    pub bit: u32,
    pub name: String,
    pub polarity: i8,
    pub dimension: String,
    pub weight: f64,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Op {
    Eq,
    Ne,
    Lt,
    Le,
    Gt,
    Ge,
}

#[derive(Clone, Debug)]
struct Check {
    field: usize,
    op: Op,
    value: Metric,
    when_missing: bool,
}

#[derive(Clone, Debug)]
struct Rule {
    signal: usize,
    event_types: Option<Vec<String>>,
    any_of: Vec<Vec<Check>>,
}

/// The repeat-contact rule: a contact about a case or order that had another within `within_days`.
#[derive(Clone, Debug, PartialEq)]
pub struct RepeatContact {
    pub signal: usize,
    pub event_type: String,
    pub within_days: i64,
}

/// Compiled rules.
#[derive(Clone, Debug)]
pub struct Classifier {
    pub signals: Vec<Signal>,
    rules: Vec<Rule>,
    pub repeat_contact: Option<RepeatContact>,
    pub negative_mask: u64,
}

/// Python's comparison of a record's metric with a rule's value: numbers (booleans as 0 and 1) by
/// value, strings by code point; a string never equals a number, and ordering them matches nothing
/// (Python would raise: the rule table never asks it for the contract's field types).
fn compare(actual: &Metric, op: Op, value: &Metric) -> bool {
    use std::cmp::Ordering;
    let number = |m: &Metric| match m {
        Metric::Int(i) => Some(*i as f64),
        Metric::Float(f) => Some(*f),
        Metric::Bool(b) => Some(f64::from(u8::from(*b))),
        Metric::Str(_) => None,
    };
    let ordering = match (actual, value) {
        (Metric::Str(a), Metric::Str(b)) => Some(a.as_str().cmp(b.as_str())),
        (Metric::Int(a), Metric::Int(b)) => Some(a.cmp(b)),
        (a, b) => match (number(a), number(b)) {
            (Some(x), Some(y)) => x.partial_cmp(&y),
            _ => None,
        },
    };
    match (ordering, op) {
        (None, Op::Ne) => true,
        (None, _) => false,
        (Some(o), Op::Eq) => o == Ordering::Equal,
        (Some(o), Op::Ne) => o != Ordering::Equal,
        (Some(o), Op::Lt) => o == Ordering::Less,
        (Some(o), Op::Le) => o != Ordering::Greater,
        (Some(o), Op::Gt) => o == Ordering::Greater,
        (Some(o), Op::Ge) => o != Ordering::Less,
    }
}

fn metric_of(value: &Json<'_>) -> Result<Metric, String> {
    Ok(match value {
        Json::Bool(b) => Metric::Bool(*b),
        Json::Int(i) => Metric::Int(*i),
        Json::Float(f) => Metric::Float(*f),
        Json::Str(s) => Metric::Str(s.to_string()),
        other => return Err(format!("a condition's value must be a boolean, number or string, got {other:?}")),
    })
}

fn field<'a>(obj: &'a Object<'_>, name: &str) -> Result<&'a Json<'a>, String> {
    obj.get(name).ok_or_else(|| format!("rule table: '{name}' missing"))
}

fn text(obj: &Object<'_>, name: &str) -> Result<String, String> {
    field(obj, name)?.as_str().map(str::to_string).ok_or_else(|| format!("rule table: '{name}' must be a string"))
}

fn number(obj: &Object<'_>, name: &str) -> Result<f64, String> {
    match field(obj, name)? {
        Json::Int(i) => Ok(*i as f64),
        Json::Float(f) => Ok(*f),
        _ => Err(format!("rule table: '{name}' must be a number")),
    }
}

impl Classifier {
    /// From `SignalRules.model_dump_json()` (already validated by the pydantic model).
    pub fn from_json(raw: &[u8]) -> Result<Self, String> {
        let doc = crate::json::parse(raw)?;
        let top = doc.as_object().ok_or("rule table: not an object")?;
        let Some(Json::Array(rules)) = top.get("rules") else { return Err("rule table: 'rules' missing".into()) };
        let mut signals = Vec::new();
        let mut compiled = Vec::new();
        for (bit, rule) in rules.iter().enumerate() {
            let rule = rule.as_object().ok_or("rule table: a rule is not an object")?;
            signals.push(Signal {
                bit: bit as u32,
                name: text(rule, "signal")?,
                polarity: if number(rule, "polarity")? < 0.0 { -1 } else { 1 },
                dimension: text(rule, "dimension")?,
                weight: number(rule, "weight")?,
            });
            let event_types = match field(rule, "event_types")? {
                Json::Null => None,
                Json::Array(types) => Some(types.iter().filter_map(|t| t.as_str().map(str::to_string)).collect()),
                _ => return Err("rule table: 'event_types' must be a list or null".into()),
            };
            let Json::Array(any_of) = field(rule, "any_of")? else { return Err("rule table: 'any_of'".into()) };
            let mut disjunction = Vec::new();
            for conj in any_of {
                let Json::Array(conditions) = conj else { return Err("rule table: a conjunction".into()) };
                let mut checks = Vec::new();
                for c in conditions {
                    let c = c.as_object().ok_or("rule table: a condition is not an object")?;
                    let name = text(c, "field")?;
                    let field = METRIC_FIELDS
                        .iter()
                        .position(|f| *f == name)
                        .ok_or_else(|| format!("rule table: unknown field {name}"))?;
                    let op = match text(c, "op")?.as_str() {
                        "eq" => Op::Eq,
                        "ne" => Op::Ne,
                        "lt" => Op::Lt,
                        "le" => Op::Le,
                        "gt" => Op::Gt,
                        "ge" => Op::Ge,
                        other => return Err(format!("rule table: unknown op {other}")),
                    };
                    let when_missing = matches!(c.get("when_missing"), Some(Json::Bool(true)));
                    checks.push(Check { field, op, value: metric_of(field_of(c)?)?, when_missing });
                }
                disjunction.push(checks);
            }
            compiled.push(Rule { signal: bit, event_types, any_of: disjunction });
        }
        let repeat_contact = match top.get("repeat_contact") {
            None | Some(Json::Null) => None,
            Some(Json::Object(rc)) => {
                signals.push(Signal {
                    bit: signals.len() as u32,
                    name: text(rc, "signal")?,
                    polarity: -1,
                    dimension: text(rc, "dimension")?,
                    weight: number(rc, "weight")?,
                });
                Some(RepeatContact {
                    signal: signals.len() - 1,
                    event_type: text(rc, "event_type")?,
                    within_days: number(rc, "within_days")? as i64,
                })
            }
            Some(_) => return Err("rule table: 'repeat_contact' must be an object or null".into()),
        };
        let negative_mask = signals.iter().filter(|s| s.polarity < 0).fold(0u64, |m, s| m | 1 << s.bit);
        Ok(Classifier { signals, rules: compiled, repeat_contact, negative_mask })
    }

    /// The stateless signals a touchpoint fires (indexes into `signals`), rules of its event type first,
    /// then the rules of any type, each in table order.
    pub fn classify(&self, event_type: &str, metrics: &[Option<Metric>; 10]) -> Vec<usize> {
        let typed =
            self.rules.iter().filter(|r| r.event_types.as_ref().is_some_and(|t| t.iter().any(|e| e == event_type)));
        let untyped = self.rules.iter().filter(|r| r.event_types.is_none());
        let mut hits = Vec::new();
        for rule in typed.chain(untyped) {
            let fires = rule.any_of.iter().any(|conj| {
                conj.iter().all(|c| match &metrics[c.field] {
                    None => c.when_missing,
                    Some(actual) => compare(actual, c.op, &c.value),
                })
            });
            if fires {
                hits.push(rule.signal);
            }
        }
        hits
    }

    /// Signal names of a bit mask, in table order.
    pub fn names(&self, mask: u64) -> Vec<&str> {
        self.signals.iter().filter(|s| mask >> s.bit & 1 == 1).map(|s| s.name.as_str()).collect()
    }
}

fn field_of<'a>(c: &'a Object<'_>) -> Result<&'a Json<'a>, String> {
    field(c, "value")
}

/// The episode a touchpoint belongs to: first of case, contact, order, else the event itself.
pub fn experience_key(
    case_id: Option<&str>,
    contact_id: Option<&str>,
    order_id: Option<&str>,
    event_id: &str,
) -> String {
    match (case_id, contact_id, order_id) {
        (Some(c), _, _) if !c.is_empty() => format!("case:{c}"),
        (_, Some(c), _) if !c.is_empty() => format!("contact:{c}"),
        (_, _, Some(o)) if !o.is_empty() => format!("order:{o}"),
        _ => format!("event:{event_id}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const RULES: &[u8] = br#"{"rules":[
        {"signal":"no_human_answer","polarity":-1,"dimension":"respect","weight":-3.0,"event_types":["contact_ended"],
         "any_of":[[{"field":"handled_by","op":"eq","value":"none","when_missing":false}],
                   [{"field":"handled_by","op":"eq","value":"bot","when_missing":false},
                    {"field":"resolved","op":"eq","value":false,"when_missing":false}]]},
        {"signal":"long_wait","polarity":-1,"dimension":"respect","weight":-2.0,"event_types":null,
         "any_of":[[{"field":"wait_seconds","op":"ge","value":60,"when_missing":false}]]},
        {"signal":"complaint","polarity":-1,"dimension":"fairness","weight":-4.0,"event_types":["complaint_filed"],"any_of":[[]]},
        {"signal":"quick","polarity":1,"dimension":"respect","weight":1.0,"event_types":null,
         "any_of":[[{"field":"wait_seconds","op":"lt","value":60,"when_missing":true}]]}],
        "repeat_contact":{"signal":"repeat_contact","polarity":-1,"dimension":"knowledge","weight":-2.0,
                          "event_type":"contact_started","within_days":7}}"#;

    fn metrics(wait: Option<Metric>, handled: Option<&str>, resolved: Option<bool>) -> [Option<Metric>; 10] {
        let mut m: [Option<Metric>; 10] = Default::default();
        m[0] = wait;
        m[2] = handled.map(|h| Metric::Str(h.into()));
        m[3] = resolved.map(Metric::Bool);
        m
    }

    #[test]
    fn rules_fire_as_the_table_says() {
        let c = Classifier::from_json(RULES).unwrap();
        assert_eq!(c.signals.len(), 5);
        assert_eq!(c.negative_mask, 0b10111);
        assert_eq!(c.repeat_contact.as_ref().unwrap().signal, 4);
        let hits = c.classify("contact_ended", &metrics(Some(Metric::Int(90)), Some("bot"), Some(false)));
        assert_eq!(hits, vec![0, 1]);
        assert_eq!(c.classify("contact_ended", &metrics(Some(Metric::Float(59.5)), Some("human"), None)), vec![3]);
        assert_eq!(c.classify("complaint_filed", &metrics(None, None, None)), vec![2, 3]);
        assert_eq!(c.names(0b101), vec!["no_human_answer", "complaint"]);
    }

    #[test]
    fn comparisons_are_pythons() {
        assert!(compare(&Metric::Bool(true), Op::Eq, &Metric::Int(1)));
        assert!(compare(&Metric::Int(2), Op::Ge, &Metric::Float(1.5)));
        assert!(!compare(&Metric::Str("1".into()), Op::Eq, &Metric::Int(1)));
        assert!(compare(&Metric::Str("1".into()), Op::Ne, &Metric::Int(1)));
        assert!(!compare(&Metric::Str("a".into()), Op::Lt, &Metric::Int(1)));
        assert!(compare(&Metric::Str("abc".into()), Op::Lt, &Metric::Str("abd".into())));
    }

    #[test]
    fn experience_keys() {
        assert_eq!(experience_key(Some("K1"), Some("C"), Some("O"), "e"), "case:K1");
        assert_eq!(experience_key(None, None, Some("O1"), "e"), "order:O1");
        assert_eq!(experience_key(Some(""), None, None, "e1"), "event:e1");
    }
}
