//! Labeled example messages, as ops teams write them.
//!
//! Two formats, chosen by the file's extension:
//!
//! - **JSON Lines** (`.jsonl`): one `{"text": "...", "label": "..."}` per
//!   line; empty lines and lines starting with `#` or `//` are skipped.
//! - **YAML** (`.yaml`, `.yml`): either a list of `{ text, label }` maps,
//!   or a map from each label to its list of texts (the easier one to
//!   write by hand):
//!
//! ```yaml
//! billing:
//!   - Can I get my money back?
//!   - 返金はいつになりますか
//! ```
//!
//! Every example keeps where it is written, so `check` and `eval` point at
//! the line.

use serde::Deserialize;

use crate::diagnostic::{Diagnostic, Diagnostics, SourceFile, SourceLocation};
use crate::yaml::{self, LocationIndex};

/// One labeled message.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Example {
    pub text: String,
    pub label: String,
    /// Where its label is written.
    pub location: SourceLocation,
}

/// Read the examples of one file. Every malformed entry is reported; the
/// well-formed ones are returned beside the diagnostics.
pub fn parse(file: &SourceFile) -> (Vec<Example>, Diagnostics) {
    let lower = file.path.to_lowercase();
    if lower.ends_with(".jsonl") || lower.ends_with(".ndjson") {
        parse_jsonl(file)
    } else if lower.ends_with(".yaml") || lower.ends_with(".yml") {
        parse_yaml(file)
    } else {
        let mut diags = Diagnostics::default();
        diags.push(
            Diagnostic::error(
                "classify::example-format",
                format!(
                    "{}: example files are JSON Lines (.jsonl) or YAML (.yaml)",
                    file.path
                ),
            )
            .at(Some(SourceLocation::new(&file.path, 1, 1)))
            .hint("rename the file with the extension of its format"),
        );
        (Vec::new(), diags)
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Entry {
    text: String,
    label: String,
}

fn parse_jsonl(file: &SourceFile) -> (Vec<Example>, Diagnostics) {
    let mut out = Vec::new();
    let mut diags = Diagnostics::default();
    for (i, line) in file.text.lines().enumerate() {
        let t = line.trim();
        if t.is_empty() || t.starts_with('#') || t.starts_with("//") {
            continue;
        }
        let lineno = i + 1;
        match serde_json::from_str::<Entry>(t) {
            Ok(e) => {
                let column = line
                    .find("\"label\"")
                    .map_or(1, |b| line[..b].chars().count() + 1);
                let location = SourceLocation::new(&file.path, lineno, column);
                if let Some(d) = check_entry(&e, &location) {
                    diags.push(d);
                } else {
                    out.push(Example {
                        text: e.text,
                        label: e.label,
                        location,
                    });
                }
            }
            Err(err) => {
                let lead = line.len() - line.trim_start().len();
                let column = line[..lead].chars().count() + err.column().max(1);
                diags.push(
                    Diagnostic::error(
                        "classify::bad-example",
                        format!("not an example: {err}"),
                    )
                    .at(Some(SourceLocation::new(&file.path, lineno, column)))
                    .hint(
                        "write one JSON object per line: {\"text\": \"the message\", \"label\": \"billing\"}",
                    ),
                );
            }
        }
    }
    (out, diags)
}

/// An entry that parsed but cannot teach anything.
fn check_entry(e: &Entry, location: &SourceLocation) -> Option<Diagnostic> {
    if e.text.trim().is_empty() {
        return Some(
            Diagnostic::error("classify::bad-example", "the example's text is empty")
                .at(Some(location.clone()))
                .hint("write the message as a customer would, or remove the entry"),
        );
    }
    if e.label.trim().is_empty() {
        return Some(
            Diagnostic::error("classify::bad-example", "the example has no label")
                .at(Some(location.clone()))
                .hint("give it one of the classifier's `labels`"),
        );
    }
    None
}

fn parse_yaml(file: &SourceFile) -> (Vec<Example>, Diagnostics) {
    use serde_json::Value;
    let mut diags = Diagnostics::default();
    let value = match yaml::parse::<Value>(file) {
        Ok(v) => v,
        Err(d) => {
            diags.push(d);
            return (Vec::new(), diags);
        }
    };
    let index = LocationIndex::build(file);
    let whole = SourceLocation::new(&file.path, 1, 1);
    let at = |path: &str| index.value(path).unwrap_or_else(|| whole.clone());
    let mut out = Vec::new();
    let mut push = |e: Entry, location: SourceLocation, diags: &mut Diagnostics| {
        if let Some(d) = check_entry(&e, &location) {
            diags.push(d);
        } else {
            out.push(Example {
                text: e.text,
                label: e.label,
                location,
            });
        }
    };
    let not_text = |path: &str, found: &Value| {
        let what = match found {
            Value::Object(_) => {
                "a map (a plain line with `: ` in it reads as a key and a value in YAML)".to_owned()
            }
            other => format!("`{other}`"),
        };
        Diagnostic::error(
            "classify::bad-example",
            format!("this example is {what}, not a text"),
        )
        .at(Some(at(path)))
        .hint("put the message in quotes (\"...\") or write it as a block with `|`")
    };
    match value {
        Value::Array(items) => {
            for (i, item) in items.into_iter().enumerate() {
                let path = format!("[{i}]");
                let entry = match &item {
                    Value::Object(m) => match (m.get("text"), m.get("label"), m.len()) {
                        (Some(Value::String(t)), Some(Value::String(l)), 2) => Some(Entry {
                            text: t.clone(),
                            label: l.clone(),
                        }),
                        _ => None,
                    },
                    _ => None,
                };
                match entry {
                    Some(e) => push(e, at(&format!("{path}.label")), &mut diags),
                    None => diags.push(
                        Diagnostic::error(
                            "classify::bad-example",
                            "a list item of an example file is `{ text, label }`, both texts",
                        )
                        .at(Some(at(&path)))
                        .hint("write `- { text: \"the message\", label: billing }`"),
                    ),
                }
            }
        }
        Value::Object(groups) => {
            for (label, texts) in groups {
                let Value::Array(texts) = texts else {
                    diags.push(
                        Diagnostic::error(
                            "classify::bad-example",
                            format!("`{label}:` must be followed by a list of messages"),
                        )
                        .at(Some(at(&label)))
                        .hint("write each message on its own `- ` line under the label"),
                    );
                    continue;
                };
                for (i, text) in texts.into_iter().enumerate() {
                    let path = format!("{label}[{i}]");
                    match text {
                        Value::String(text) => push(
                            Entry {
                                text,
                                label: label.clone(),
                            },
                            at(&path),
                            &mut diags,
                        ),
                        other => diags.push(not_text(&path, &other)),
                    }
                }
            }
        }
        _ => diags.push(
            Diagnostic::error(
                "classify::bad-example",
                "the examples are neither a list of { text, label } nor a map from each label to its texts",
            )
            .at(Some(whole.clone()))
            .hint("write `billing:` followed by a list of messages, one per `- ` line"),
        ),
    }
    (out, diags)
}

/// A message with what it should come out as, for `casework eval --on`:
/// `{"text": "...", "topic": "billing", "tone": "calm", "team": "billing",
/// "urgency": "high"}`. Each key but `text` names a classifier (its
/// expected label) or `team` / `urgency` (what the route and urgency
/// rules should decide).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LabeledMessage {
    pub text: String,
    pub expect: std::collections::BTreeMap<String, String>,
    /// Where the message is written.
    pub location: SourceLocation,
}

impl LabeledMessage {
    /// This message as an example of `key` (a classifier's name), when
    /// the file says what it should be.
    pub fn example(&self, key: &str) -> Option<Example> {
        self.expect.get(key).map(|label| Example {
            text: self.text.clone(),
            label: label.clone(),
            location: self.location.clone(),
        })
    }
}

/// Read a labeled file: JSON Lines, or YAML (a list of maps), by
/// extension as [`parse`].
pub fn parse_labeled(file: &SourceFile) -> (Vec<LabeledMessage>, Diagnostics) {
    type Record = serde_json::Map<String, serde_json::Value>;
    let mut diags = Diagnostics::default();
    let mut records: Vec<(Record, SourceLocation)> = Vec::new();
    let lower = file.path.to_lowercase();
    let bad = |at: SourceLocation, message: String| {
        Diagnostic::error("classify::bad-example", message)
            .at(Some(at))
            .hint("write {\"text\": \"the message\", \"topic\": \"billing\", \"team\": \"billing\"}: `text` and what it should come out as")
    };
    if lower.ends_with(".yaml") || lower.ends_with(".yml") {
        match yaml::parse::<Vec<Record>>(file) {
            Ok(list) => {
                let index = LocationIndex::build(file);
                for (i, r) in list.into_iter().enumerate() {
                    let at = index
                        .value(&format!("[{i}].text"))
                        .or_else(|| index.value(&format!("[{i}]")))
                        .unwrap_or_else(|| SourceLocation::new(&file.path, 1, 1));
                    records.push((r, at));
                }
            }
            Err(d) => diags.push(d),
        }
    } else {
        for (i, line) in file.text.lines().enumerate() {
            let t = line.trim();
            if t.is_empty() || t.starts_with('#') || t.starts_with("//") {
                continue;
            }
            let at = SourceLocation::new(&file.path, i + 1, 1);
            match serde_json::from_str::<Record>(t) {
                Ok(r) => records.push((r, at)),
                Err(e) => diags.push(bad(at, format!("not a labeled message: {e}"))),
            }
        }
    }
    let mut out = Vec::new();
    for (record, at) in records {
        let mut text = None;
        let mut expect = std::collections::BTreeMap::new();
        let mut problem = None;
        for (k, v) in record {
            match (k.as_str(), v) {
                ("text", serde_json::Value::String(s)) => text = Some(s),
                (_, serde_json::Value::String(s)) => {
                    expect.insert(k, s);
                }
                (_, other) => problem = Some(format!("`{k}` must be text, found {other}")),
            }
        }
        match (text, problem) {
            (_, Some(p)) => diags.push(bad(at, p)),
            (None, None) => diags.push(bad(at, "the message has no `text`".to_owned())),
            (Some(text), None) => out.push(LabeledMessage {
                text,
                expect,
                location: at,
            }),
        }
    }
    (out, diags)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_lines_are_located_at_their_label() {
        let file = SourceFile::new(
            "ex/topic.jsonl",
            "# billing\n{\"text\": \"money back?\", \"label\": \"billing\"}\n\n{\"text\": \"x\"\n",
        );
        let (examples, diags) = parse(&file);
        assert_eq!(examples.len(), 1);
        assert_eq!(examples[0].location.to_string(), "ex/topic.jsonl:2:25");
        let d: Vec<_> = diags.iter().collect();
        assert_eq!(d.len(), 1);
        assert_eq!(d[0].code, "classify::bad-example");
        assert_eq!(d[0].location.as_ref().unwrap().line, 4);
    }

    #[test]
    fn yaml_lists_and_maps_by_label_both_read() {
        let list = SourceFile::new(
            "t.yaml",
            "- { text: \"where is it\", label: shipping }\n- text: 返金\n  label: billing\n",
        );
        let (examples, diags) = parse(&list);
        assert!(diags.is_empty(), "{diags}");
        assert_eq!(examples[1].label, "billing");
        assert_eq!(examples[1].location.to_string(), "t.yaml:3:10");

        let map = SourceFile::new(
            "t.yml",
            "billing:\n  - money back\n  - 返金\nshipping: [late]\n",
        );
        let (examples, diags) = parse(&map);
        assert!(diags.is_empty(), "{diags}");
        assert_eq!(examples.len(), 3);
        assert_eq!(examples[1].location.to_string(), "t.yml:3:5");
        assert_eq!(examples[2].label, "shipping");
    }

    #[test]
    fn labeled_files_carry_every_expectation() {
        let file = SourceFile::new(
            "held.jsonl",
            "{\"text\": \"refund?\", \"topic\": \"billing\", \"team\": \"billing\"}\n{\"topic\": \"x\"}\n",
        );
        let (messages, diags) = parse_labeled(&file);
        assert_eq!(messages.len(), 1);
        assert_eq!(messages[0].example("topic").unwrap().label, "billing");
        assert_eq!(messages[0].expect["team"], "billing");
        assert!(messages[0].example("tone").is_none());
        assert_eq!(
            diags.iter().next().unwrap().location.as_ref().unwrap().line,
            2
        );
    }

    #[test]
    fn empty_texts_and_unknown_formats_are_refused() {
        let (_, diags) = parse(&SourceFile::new("a.yaml", "billing: [\"  \"]\n"));
        assert_eq!(diags.iter().next().unwrap().code, "classify::bad-example");
        let (_, diags) = parse(&SourceFile::new("a.csv", "text,label\n"));
        assert_eq!(
            diags.iter().next().unwrap().code,
            "classify::example-format"
        );
    }
}
