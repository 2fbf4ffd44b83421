//! What an action's parameters must be: each kind declares, per action,
//! the parameters it reads, what each holds and which it needs.
//!
//! The schema is checked twice. `check` holds the actions written in the
//! workflow to it (a typo such as `unitl`, a date that is not a date), at
//! their place in the YAML. The engine holds the actions the rules ask for
//! to it at run time: an action a plugin could not carry out is not put in
//! the outbox, where it would only fail later, far from its cause; the
//! rule that asked is named in an error decision and a person gets a task.
//!
//! ```
//! use casework_core::plugin::{ActionParams, ParamKind, ParamSpec};
//!
//! let hold = ActionParams::new([
//!     ParamSpec::required("order", ParamKind::Text),
//!     ParamSpec::required("until", ParamKind::Date),
//! ]);
//! let params = serde_json::json!({ "order": "O-77", "until": "Jan 5" });
//! let problems = hold.problems(params.as_object().unwrap());
//! assert_eq!(problems, ["`until` must be a date like 2027-01-05, not \"Jan 5\""]);
//! ```

use std::fmt;

use serde_json::{Map, Value};

/// What a parameter holds.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ParamKind {
    Text,
    /// A day, `2027-01-05`.
    Date,
    /// A moment, RFC 3339.
    Time,
    Number,
    Flag,
    List,
    /// Anything JSON.
    Any,
}

impl ParamKind {
    /// True when `value` is of this kind.
    pub fn accepts(self, value: &Value) -> bool {
        match self {
            ParamKind::Text => value.is_string(),
            ParamKind::Date => value
                .as_str()
                .is_some_and(|s| s.parse::<chrono::NaiveDate>().is_ok()),
            ParamKind::Time => value
                .as_str()
                .is_some_and(|s| chrono::DateTime::parse_from_rfc3339(s).is_ok()),
            ParamKind::Number => value.is_number(),
            ParamKind::Flag => value.is_boolean(),
            ParamKind::List => value.is_array(),
            ParamKind::Any => true,
        }
    }
}

impl fmt::Display for ParamKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            ParamKind::Text => "text",
            ParamKind::Date => "a date like 2027-01-05",
            ParamKind::Time => "a time like 2027-01-05T10:00:00+09:00",
            ParamKind::Number => "a number",
            ParamKind::Flag => "true or false",
            ParamKind::List => "a list",
            ParamKind::Any => "any value",
        })
    }
}

/// One parameter of an action.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ParamSpec {
    pub name: String,
    pub kind: ParamKind,
    pub required: bool,
}

impl ParamSpec {
    pub fn required(name: impl Into<String>, kind: ParamKind) -> Self {
        ParamSpec {
            name: name.into(),
            kind,
            required: true,
        }
    }

    pub fn optional(name: impl Into<String>, kind: ParamKind) -> Self {
        ParamSpec {
            name: name.into(),
            kind,
            required: false,
        }
    }
}

/// The parameters one action takes.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ActionParams {
    pub params: Vec<ParamSpec>,
    /// Parameters beyond those listed are welcome (an e-mail's template
    /// variables); otherwise they are mistakes.
    pub open: bool,
}

/// Set by the engine on every action it puts in the outbox.
const ENGINE_FILLED: &[&str] = &["case"];

impl ActionParams {
    pub fn new(params: impl IntoIterator<Item = ParamSpec>) -> Self {
        ActionParams {
            params: params.into_iter().collect(),
            open: false,
        }
    }

    /// Accept parameters beyond those listed.
    pub fn open(mut self) -> Self {
        self.open = true;
        self
    }

    /// Every problem with `params`, one sentence each: a required one
    /// missing, one of the wrong kind, one the action does not take.
    pub fn problems(&self, params: &Map<String, Value>) -> Vec<String> {
        let mut out = Vec::new();
        for spec in &self.params {
            match params.get(&spec.name) {
                None | Some(Value::Null) if spec.required => {
                    out.push(format!(
                        "`{}` is missing: it must be {}",
                        spec.name, spec.kind
                    ));
                }
                Some(v) if !v.is_null() && !spec.kind.accepts(v) => {
                    out.push(format!("`{}` must be {}, not {v}", spec.name, spec.kind));
                }
                _ => {}
            }
        }
        if !self.open {
            for key in params.keys() {
                if !ENGINE_FILLED.contains(&key.as_str())
                    && !self.params.iter().any(|p| &p.name == key)
                {
                    let takes: Vec<&str> = self.params.iter().map(|p| p.name.as_str()).collect();
                    out.push(format!(
                        "`{key}` is not a parameter of this action; it takes {}",
                        if takes.is_empty() {
                            "none".to_owned()
                        } else {
                            takes.join(", ")
                        }
                    ));
                }
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn problems(schema: &ActionParams, params: Value) -> Vec<String> {
        schema.problems(params.as_object().unwrap())
    }

    #[test]
    fn missing_wrong_and_unknown_parameters_are_each_named() {
        let schema = ActionParams::new([
            ParamSpec::required("order", ParamKind::Text),
            ParamSpec::optional("at", ParamKind::Time),
        ]);
        assert!(problems(&schema, json!({"order": "O-1", "case": "C-1"})).is_empty());
        assert_eq!(
            problems(&schema, json!({"at": "tomorrow", "odrer": "O-1"})),
            [
                "`order` is missing: it must be text",
                "`at` must be a time like 2027-01-05T10:00:00+09:00, not \"tomorrow\"",
                "`odrer` is not a parameter of this action; it takes order, at",
            ]
        );
        assert!(problems(&schema.clone().open(), json!({"order": "O-1", "x": 1})).is_empty());
    }
}
