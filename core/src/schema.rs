//! Contract 1's checks on one candidate touchpoint, in the contract's order: the specific reasons
//! first (`precheck`), then the wire model (`conforms`: exactly what the pydantic model
//! `schemas.touchpoint.Touchpoint` accepts, strict, extra fields forbidden).

use std::sync::LazyLock;

use regex::Regex;

use crate::json::{kind_of, Json, Object};

pub const CHANNELS: [&str; 12] =
    ["web", "app", "phone", "ivr", "chat", "wechat", "email", "sms", "store", "logistics", "survey", "social"];
/// Identity fields in the order that picks a touchpoint's first identifier (Contract 2).
pub const IDENTITY_FIELDS: [&str; 6] = ["customer_id", "anonymous_id", "device_id", "phone", "email", "wechat_openid"];
pub const CONTEXT_FIELDS: [&str; 6] = ["order_id", "case_id", "contact_id", "session_id", "agent_id", "store_id"];
pub const METRIC_FIELDS: [&str; 11] = [
    "wait_seconds",
    "transfers",
    "handled_by",
    "resolved",
    "csat",
    "nps",
    "ces",
    "rating",
    "sentiment",
    "amount",
    "currency",
];
const TOP_REQUIRED: [&str; 7] =
    ["event_id", "schema_version", "occurred_at", "source", "channel", "event_type", "identity"];
const TOP_OPTIONAL: [&str; 3] = ["context", "metrics", "attributes"];

// The model's patterns, compiled by the same engine pydantic-core uses (the `regex` crate).
// The model's patterns (exported to Python, where a test holds them equal to schemas.touchpoint's).
pub const RFC3339_PATTERN: &str = r"^\d{4}-\d{2}-\d{2}[Tt ]\d{2}:\d{2}:\d{2}(\.\d{1,9})?([Zz]|[+-]\d{2}:\d{2})$";
pub const EVENT_TYPE_PATTERN: &str = r"^[a-z][a-z0-9_]{1,63}$";
pub const CURRENCY_PATTERN: &str = r"^[A-Z]{3}$";
static RFC3339: LazyLock<Regex> = LazyLock::new(|| Regex::new(RFC3339_PATTERN).expect("pattern"));
static EVENT_TYPE: LazyLock<Regex> = LazyLock::new(|| Regex::new(EVENT_TYPE_PATTERN).expect("pattern"));
static CURRENCY: LazyLock<Regex> = LazyLock::new(|| Regex::new(CURRENCY_PATTERN).expect("pattern"));

/// Contract 1's reasons.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Reason {
    InvalidJson,
    NotAnObject,
    MissingIdentity,
    UnknownChannel,
    InvalidField,
    FutureTimestamp,
    TooLarge,
    UnsupportedSchemaVersion,
}

impl Reason {
    pub fn as_str(self) -> &'static str {
        match self {
            Reason::InvalidJson => "invalid_json",
            Reason::NotAnObject => "not_an_object",
            Reason::MissingIdentity => "missing_identity",
            Reason::UnknownChannel => "unknown_channel",
            Reason::InvalidField => "invalid_field",
            Reason::FutureTimestamp => "future_timestamp",
            Reason::TooLarge => "too_large",
            Reason::UnsupportedSchemaVersion => "unsupported_schema_version",
        }
    }
}

/// A value a detail quotes as Python's `repr` shows it.
#[derive(Debug, PartialEq)]
pub enum Shown {
    Str(String),
    Float(f64),
}

/// A refusal whose detail may need Python's `repr` of a value (`Repr`), or pydantic's wording (`Model`).
#[derive(Debug, PartialEq)]
pub enum Detail {
    Text(String),
    /// `format` with `{}` replaced by Python's repr of `value`.
    Repr {
        format: String,
        value: Shown,
    },
    /// The wire model refuses it: pydantic words the errors.
    Model,
}

pub type Refusal = (Reason, Detail);

fn text(reason: Reason, detail: impl Into<String>) -> Refusal {
    (reason, Detail::Text(detail.into()))
}

/// The specific reasons, before the wire model so they win over invalid_field. `is_junk` answers
/// `streams.domain.pii.is_junk` (native for ASCII, Python otherwise).
pub fn precheck<E>(
    event: &Json<'_>,
    is_junk: &mut dyn FnMut(&str) -> Result<bool, E>,
) -> Result<Result<(), Refusal>, E> {
    Ok(check(event, is_junk)?.map_or(Ok(()), Err))
}

fn check<E>(event: &Json<'_>, is_junk: &mut dyn FnMut(&str) -> Result<bool, E>) -> Result<Option<Refusal>, E> {
    let Json::Object(map) = event else {
        return Ok(Some(text(Reason::NotAnObject, format!("a touchpoint is a JSON object, got {}", kind_of(event)))));
    };
    if map.contains_key("events") && !map.contains_key("event_id") {
        return Ok(Some(text(Reason::InvalidField, "events: a batch element is one touchpoint; batches do not nest")));
    }
    match map.get("schema_version") {
        Some(v @ Json::Bool(_)) => {
            let detail = format!("schema_version: must be the integer 1, got {}", kind_of(v));
            return Ok(Some(text(Reason::InvalidField, detail)));
        }
        Some(Json::Float(f)) => {
            let format = "schema_version: must be the integer 1, got {}".to_string();
            return Ok(Some((Reason::InvalidField, Detail::Repr { format, value: Shown::Float(*f) })));
        }
        Some(Json::Int(1)) => {}
        Some(Json::Int(i)) => {
            let detail = format!("schema_version {i}; this pipeline reads 1");
            return Ok(Some(text(Reason::UnsupportedSchemaVersion, detail)));
        }
        Some(Json::UInt(u)) => {
            let detail = format!("schema_version {u}; this pipeline reads 1");
            return Ok(Some(text(Reason::UnsupportedSchemaVersion, detail)));
        }
        _ => {}
    }
    if let Some(Json::Str(channel)) = map.get("channel") {
        if !CHANNELS.contains(&channel.as_ref()) {
            let format = format!("channel {{}} is not one of {}", CHANNELS.join(", "));
            let value = Shown::Str(crate::text::py_prefix(channel, 40).to_string());
            return Ok(Some((Reason::UnknownChannel, Detail::Repr { format, value })));
        }
    }
    match map.get("identity") {
        None | Some(Json::Null) => return Ok(Some(missing_identity())),
        Some(Json::Object(identity)) if identity.is_empty() => return Ok(Some(missing_identity())),
        Some(Json::Object(identity)) => {
            for field in IDENTITY_FIELDS {
                let usable = match identity.get(field) {
                    None | Some(Json::Null) => false,
                    Some(Json::Str(s)) => !is_junk(s)?,
                    Some(_) => true,
                };
                if usable {
                    return Ok(None);
                }
            }
            let detail = "identity: no usable identifier (empty or placeholder values such as null, 0, -1)";
            return Ok(Some(text(Reason::MissingIdentity, detail)));
        }
        Some(_) => {}
    }
    Ok(None)
}

fn missing_identity() -> Refusal {
    text(Reason::MissingIdentity, "identity: at least one identifier is required")
}

fn string_within(v: &Json<'_>, min: usize, max: usize) -> bool {
    matches!(v, Json::Str(s) if (min..=max).contains(&crate::text::py_len(s)))
}

fn optional_string(v: &Json<'_>, max: usize) -> bool {
    v.is_null() || string_within(v, 0, max)
}

/// A strict integer (not a boolean, not a double) within `lo..=hi`.
fn int_within(v: &Json<'_>, lo: i64, hi: i64) -> bool {
    matches!(v, Json::Int(i) if (lo..=hi).contains(i))
}

/// A strict number (an integer or a double, not a boolean) within `lo..=hi`.
fn number_within(v: &Json<'_>, lo: f64, hi: f64) -> bool {
    match v {
        Json::Float(f) => *f >= lo && *f <= hi,
        // Integers compare exactly: the bounds are whole numbers well inside i64.
        Json::Int(i) => *i as i128 >= lo as i128 && *i as i128 <= hi as i128,
        _ => false,
    }
}

fn fields_known(map: &Object<'_>, known: &[&str]) -> bool {
    map.keys().all(|k| known.contains(&k))
}

fn identity_conforms(v: &Json<'_>) -> bool {
    let Json::Object(map) = v else { return false };
    fields_known(map, &IDENTITY_FIELDS)
        && map.iter().all(|(k, v)| match k {
            "phone" => optional_string(v, 64),
            "email" => optional_string(v, 254),
            _ => optional_string(v, 128),
        })
}

fn context_conforms(v: &Json<'_>) -> bool {
    let Json::Object(map) = v else { return false };
    fields_known(map, &CONTEXT_FIELDS) && map.values().all(|v| optional_string(v, 128))
}

fn metrics_conform(v: &Json<'_>) -> bool {
    let Json::Object(map) = v else { return false };
    fields_known(map, &METRIC_FIELDS)
        && map.iter().all(|(k, v)| {
            v.is_null()
                || match k {
                    "wait_seconds" => number_within(v, 0.0, 31_536_000.0),
                    "transfers" => int_within(v, 0, 1000),
                    "handled_by" => matches!(v, Json::Str(s) if matches!(s.as_ref(), "human" | "bot" | "none")),
                    "resolved" => matches!(v, Json::Bool(_)),
                    "csat" | "rating" => int_within(v, 1, 5),
                    "nps" => int_within(v, 0, 10),
                    "ces" => int_within(v, 1, 7),
                    "sentiment" => number_within(v, -1.0, 1.0),
                    "amount" => number_within(v, -1e12, 1e12),
                    "currency" => matches!(v, Json::Str(s) if CURRENCY.is_match(s)),
                    _ => false,
                }
        })
}

fn attributes_conform(v: &Json<'_>) -> bool {
    let Json::Object(map) = v else { return false };
    map.len() <= 32 && map.iter().all(|(k, v)| (1..=64).contains(&crate::text::py_len(k)) && string_within(v, 0, 4096))
}

/// Whether the pydantic model `Touchpoint` accepts the event (strict, extra fields forbidden).
pub fn conforms(event: &Json<'_>) -> bool {
    let Json::Object(map) = event else { return false };
    if !TOP_REQUIRED.iter().all(|k| map.contains_key(k))
        || !map.keys().all(|k| TOP_REQUIRED.contains(&k) || TOP_OPTIONAL.contains(&k))
    {
        return false;
    }
    map.iter().all(|(k, v)| match k {
        "event_id" | "source" => string_within(v, 1, 128),
        "schema_version" => matches!(v, Json::Int(1)),
        "occurred_at" => matches!(v, Json::Str(s) if RFC3339.is_match(s)),
        "channel" => matches!(v, Json::Str(s) if CHANNELS.contains(&s.as_ref())),
        "event_type" => matches!(v, Json::Str(s) if EVENT_TYPE.is_match(s)),
        "identity" => identity_conforms(v),
        "context" => context_conforms(v),
        "metrics" => metrics_conform(v),
        "attributes" => attributes_conform(v),
        _ => false,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::json::parse;

    const VALID: &str = r#"{"event_id": "e1", "schema_version": 1, "occurred_at": "2024-01-01T00:00:00Z",
        "source": "web", "channel": "web", "event_type": "page_view", "identity": {"anonymous_id": "a1"}"#;

    fn with(extra: &str) -> String {
        format!("{VALID}{extra}}}")
    }

    #[test]
    fn the_model_accepts_a_minimal_touchpoint() {
        assert!(conforms(&parse(with("").as_bytes()).unwrap()));
        let fine = with(r#", "metrics": {"wait_seconds": 3, "amount": -1e12, "csat": null}"#);
        assert!(conforms(&parse(fine.as_bytes()).unwrap()));
    }

    #[test]
    fn the_model_refuses_wrong_types_and_extras() {
        for bad in [
            r#", "schema_version": true"#,
            r#", "event_id": """#,
            r#", "occurred_at": "2024-01-01""#,
            r#", "event_type": "Page""#,
            r#", "identity": {"nick": "x"}"#,
            r#", "metrics": {"csat": 5.0}"#,
            r#", "metrics": {"csat": true}"#,
            r#", "metrics": {"sentiment": 1.5}"#,
            r#", "metrics": {"amount": 18446744073709551615}"#,
            r#", "context": null"#,
            r#", "extra": 1"#,
        ] {
            assert!(!conforms(&parse(with(bad).as_bytes()).unwrap()), "{bad}");
        }
    }

    #[test]
    fn specific_reasons_come_first() {
        let mut no_junk = |_: &str| Ok::<bool, ()>(false);
        let reason = |extra: &str, junk: &mut dyn FnMut(&str) -> Result<bool, ()>| {
            precheck(&parse(with(extra).as_bytes()).unwrap(), junk).unwrap().unwrap_err().0
        };
        assert_eq!(
            reason(r#", "schema_version": 2, "channel": "fax""#, &mut no_junk),
            Reason::UnsupportedSchemaVersion
        );
        assert_eq!(reason(r#", "channel": "fax""#, &mut no_junk), Reason::UnknownChannel);
        assert_eq!(
            reason(r#", "identity": {"phone": "null"}"#, &mut |s: &str| Ok(s == "null")),
            Reason::MissingIdentity
        );
        assert_eq!(precheck(&parse(b"[1]").unwrap(), &mut no_junk).unwrap().unwrap_err().0, Reason::NotAnObject);
    }
}
