//! All YAML parsing, in one place.
//!
//! Values are read with `serde_yaml` (the design names it; it is archived
//! upstream, so nothing else in the crate touches it and a replacement only
//! has to change this file). `serde_yaml` reports syntax errors and unknown
//! keys with a location, but gives no spans for values, so semantic errors
//! ("state `trage` does not exist") would have nowhere to point. A
//! [`LocationIndex`], built from `saphyr-parser` events, fills that gap: it
//! maps each path (`workflow.transitions[3].to`, `workflow.states.triage`)
//! to where its key and its value are written.
//!
//! ```
//! use casework_core::diagnostic::SourceFile;
//! use casework_core::yaml::LocationIndex;
//!
//! let file = SourceFile::new("w.yaml", "workflow:\n  transitions:\n    - to: triage\n");
//! let index = LocationIndex::build(&file);
//! let loc = index.value("workflow.transitions[0].to").unwrap();
//! assert_eq!(loc.to_string(), "w.yaml:3:11");
//! ```

use std::collections::HashMap;

use saphyr_parser::{Event, Parser, ScalarStyle, Span};
use serde::Deserialize;
use serde::de::DeserializeOwned;

use crate::diagnostic::{Diagnostic, SourceFile, SourceLocation};

/// A 1-based line and column.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Pos {
    line: usize,
    column: usize,
}

impl Pos {
    fn start_of(span: &Span) -> Pos {
        Pos {
            line: span.start.line(),
            column: span.start.col() + 1,
        }
    }
}

/// How a value is written, which decides how a position inside its text
/// maps back to the file.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
enum Style {
    #[default]
    Collection,
    Plain,
    Quoted,
    Literal,
    Folded,
}

#[derive(Clone, Debug, Default)]
struct Entry {
    file: usize,
    key: Option<Pos>,
    value: Option<Pos>,
    /// Where a scalar value ends (exclusive).
    end: Option<Pos>,
    style: Style,
}

/// Where each path of one or more YAML files is written.
///
/// Paths join mapping keys with `.` and sequence indexes with `[i]`:
/// `workflow.states.triage.timeout.to`, `workflow.transitions[3].from[1]`.
/// The empty path is the document root.
#[derive(Clone, Debug, Default)]
pub struct LocationIndex {
    files: Vec<SourceFile>,
    entries: HashMap<String, Entry>,
    /// Top-level keys in the order written, per file.
    top: Vec<Vec<String>>,
    /// Files whose YAML did not parse to the end: their index is partial.
    broken: Vec<bool>,
}

/// One open collection while walking the events.
enum Frame {
    Mapping {
        path: String,
        /// The key waiting for its value, if a key was just read.
        key: Option<String>,
    },
    Sequence {
        path: String,
        next: usize,
    },
}

fn join(path: &str, key: &str) -> String {
    if path.is_empty() {
        key.to_owned()
    } else {
        format!("{path}.{key}")
    }
}

impl LocationIndex {
    /// Index one file. A file with a syntax error is indexed up to the
    /// error (the error itself is reported by [`parse`]).
    pub fn build(file: &SourceFile) -> LocationIndex {
        let mut index = LocationIndex {
            files: vec![file.clone()],
            top: vec![Vec::new()],
            broken: vec![false],
            ..LocationIndex::default()
        };
        let mut stack: Vec<Frame> = Vec::new();
        let mut started = false;
        for item in Parser::new_from_str(&file.text) {
            let (event, span) = match item {
                Ok(ev) => ev,
                Err(_) => {
                    index.broken[0] = true;
                    break;
                }
            };
            let pos = Pos::start_of(&span);
            let end = Pos {
                line: span.end.line(),
                column: span.end.col() + 1,
            };
            match event {
                Event::DocumentStart(_) => {
                    // Only the first document is configuration.
                    if started {
                        break;
                    }
                    started = true;
                }
                Event::Scalar(text, style, ..) => {
                    let style = match style {
                        ScalarStyle::Plain => Style::Plain,
                        ScalarStyle::SingleQuoted | ScalarStyle::DoubleQuoted => Style::Quoted,
                        ScalarStyle::Literal => Style::Literal,
                        ScalarStyle::Folded => Style::Folded,
                    };
                    let depth = stack.len();
                    if let Some(Frame::Mapping { path, key }) = stack.last_mut()
                        && key.is_none()
                    {
                        if depth == 1 {
                            index.top[0].push(text.to_string());
                        }
                        let entry = index.entries.entry(join(path, &text)).or_default();
                        entry.key = Some(pos);
                        *key = Some(text.into_owned());
                        continue;
                    }
                    let path = index.value_here(&mut stack, pos, style);
                    if let Some(e) = index.entries.get_mut(&path) {
                        e.end = Some(end);
                    }
                }
                Event::Alias(_) => {
                    index.value_here(&mut stack, pos, Style::Plain);
                }
                Event::MappingStart(..) => {
                    let path = index.value_here(&mut stack, pos, Style::Collection);
                    stack.push(Frame::Mapping { path, key: None });
                }
                Event::SequenceStart(..) => {
                    let path = index.value_here(&mut stack, pos, Style::Collection);
                    stack.push(Frame::Sequence { path, next: 0 });
                }
                Event::MappingEnd | Event::SequenceEnd => {
                    stack.pop();
                }
                Event::DocumentEnd | Event::StreamEnd | Event::StreamStart | Event::Nothing => {}
            }
        }
        index
    }

    /// Record a value starting at `pos` in the innermost collection and
    /// return its path.
    fn value_here(&mut self, stack: &mut [Frame], pos: Pos, style: Style) -> String {
        let path = match stack.last_mut() {
            None => String::new(),
            Some(Frame::Mapping { path, key }) => match key.take() {
                Some(k) => join(path, &k),
                // A complex key (a mapping used as a key): not indexed.
                None => format!("{path}.?"),
            },
            Some(Frame::Sequence { path, next }) => {
                let p = format!("{path}[{next}]");
                *next += 1;
                p
            }
        };
        let entry = self.entries.entry(path.clone()).or_default();
        if entry.value.is_none() {
            entry.value = Some(pos);
            entry.style = style;
        }
        path
    }

    /// The top-level keys of file `file` (0 for an index built from one
    /// file), in the order written.
    pub fn top_level_keys(&self, file: usize) -> &[String] {
        self.top.get(file).map_or(&[], Vec::as_slice)
    }

    /// True when file `file` did not parse as YAML to its end.
    pub fn is_partial(&self, file: usize) -> bool {
        self.broken.get(file).copied().unwrap_or(false)
    }

    /// Add the entries of `other` (an index of one more file) whose path
    /// `keep` accepts. Entries already present win.
    pub fn merge(&mut self, other: LocationIndex, keep: impl Fn(&str) -> bool) {
        let offset = self.files.len();
        self.files.extend(other.files);
        self.top.extend(other.top);
        self.broken.extend(other.broken);
        for (path, mut entry) in other.entries {
            if keep(&path) && !self.entries.contains_key(&path) {
                entry.file += offset;
                self.entries.insert(path, entry);
            }
        }
    }

    fn loc(&self, file: usize, pos: Pos) -> SourceLocation {
        SourceLocation::new(self.files[file].path.clone(), pos.line, pos.column)
    }

    /// Where the key of `path` is written; for a sequence item (or the
    /// root), where the item starts.
    pub fn key(&self, path: &str) -> Option<SourceLocation> {
        let e = self.entries.get(path)?;
        e.key.or(e.value).map(|p| self.loc(e.file, p))
    }

    /// Where the value of `path` starts; falls back to its key (a key with
    /// an empty value).
    pub fn value(&self, path: &str) -> Option<SourceLocation> {
        let e = self.entries.get(path)?;
        e.value.or(e.key).map(|p| self.loc(e.file, p))
    }

    /// The key of `path` or, if it is not written (a default), of the
    /// nearest enclosing path that is.
    pub fn nearest(&self, path: &str) -> Option<SourceLocation> {
        let mut p = path;
        loop {
            if let Some(loc) = self.key(p) {
                return Some(loc);
            }
            let cut = p.rfind(['.', '['])?;
            p = &p[..cut];
        }
    }

    /// Map a position inside the text of the scalar at `path` (1-based
    /// `line` and `column` within the value, as a Rhai error reports it)
    /// to the file. Exact for `|` blocks and for one-line values; for
    /// values folded over several lines the folding is replayed (escapes
    /// in quoted values may shift the column). Falls back to the start of
    /// the value.
    pub fn within_value(&self, path: &str, line: usize, column: usize) -> Option<SourceLocation> {
        let e = self.entries.get(path)?;
        let start = e.value?;
        let (line, column) = (line.max(1), column.max(1));
        let pos = match (e.style, e.end) {
            (Style::Literal, _) => Pos {
                line: start.line + line - 1,
                column: start.column + column - 1,
            },
            (Style::Plain | Style::Quoted | Style::Folded, Some(end)) => {
                let chars = folded(&self.files[e.file], start, end, e.style == Style::Quoted);
                locate(&chars, line, column).unwrap_or(start)
            }
            _ => start,
        };
        Some(self.loc(e.file, pos))
    }

    /// The file that holds `path`.
    pub fn file_of(&self, path: &str) -> Option<&SourceFile> {
        self.entries.get(path).map(|e| &self.files[e.file])
    }
}

/// The text of a scalar written between `start` and `end` (exclusive) as
/// YAML folds it (lines trimmed and joined by a space, a blank line kept
/// as a line break), each character with the place it was written. The
/// joining space takes the place just after the line it ends.
fn folded(file: &SourceFile, start: Pos, end: Pos, quoted: bool) -> Vec<(char, Pos)> {
    let q = usize::from(quoted);
    let mut out: Vec<(char, Pos)> = Vec::new();
    let mut pending_break = false;
    for l in start.line..=end.line {
        let Some(text) = file.line(l) else { break };
        let chars: Vec<char> = text.chars().collect();
        let from = if l == start.line {
            start.column - 1 + q
        } else {
            0
        };
        let to = if l == end.line {
            (end.column - 1).saturating_sub(q).min(chars.len())
        } else {
            chars.len()
        };
        if from >= to {
            if l != start.line && l != end.line {
                out.push(('\n', Pos { line: l, column: 1 }));
                pending_break = true;
            }
            continue;
        }
        let mut a = from;
        let mut b = to;
        if l != start.line {
            while a < b && chars[a].is_whitespace() {
                a += 1;
            }
        }
        while b > a && chars[b - 1].is_whitespace() && l != end.line {
            b -= 1;
        }
        if a == b {
            out.push(('\n', Pos { line: l, column: 1 }));
            pending_break = true;
            continue;
        }
        if l != start.line
            && !pending_break
            && let Some(&(_, p)) = out.last()
        {
            out.push((
                ' ',
                Pos {
                    line: p.line,
                    column: p.column + 1,
                },
            ));
        }
        pending_break = false;
        for (i, c) in chars[a..b].iter().enumerate() {
            out.push((
                *c,
                Pos {
                    line: l,
                    column: a + i + 1,
                },
            ));
        }
    }
    out
}

/// The place of the character at `line`/`column` (1-based) of a folded
/// text; one past the end maps just after the last character.
fn locate(chars: &[(char, Pos)], line: usize, column: usize) -> Option<Pos> {
    let (mut l, mut c) = (1, 1);
    let mut last = None;
    for &(ch, pos) in chars {
        if l == line && c == column {
            return Some(pos);
        }
        last = Some(pos);
        if ch == '\n' {
            if l == line {
                return Some(pos);
            }
            l += 1;
            c = 1;
        } else {
            c += 1;
        }
    }
    last.map(|p| Pos {
        line: p.line,
        column: p.column + 1,
    })
}

/// Parse `file` as `T`. Syntax errors, unknown keys and type errors come
/// back as one [`Diagnostic`] at serde_yaml's location (unknown keys point
/// at the key and list the expected ones).
pub fn parse<T: DeserializeOwned>(file: &SourceFile) -> Result<T, Diagnostic> {
    // serde_yaml deserializes as it scans, so a type error early in a file
    // would hide a syntax error after it. Scan the whole file first.
    if let Err(e) = serde_yaml::from_str::<serde_yaml::Value>(&file.text) {
        return Err(to_diagnostic(file, &e, true));
    }
    serde_yaml::from_str(&file.text).map_err(|e| to_diagnostic(file, &e, false))
}

/// The `include:` list of a file that failed to parse as a whole, so the
/// files it includes are still checked. Empty when even that fails.
pub fn includes_only(file: &SourceFile) -> Vec<String> {
    #[derive(Deserialize)]
    struct Includes {
        #[serde(default)]
        include: Vec<String>,
    }
    serde_yaml::from_str::<Includes>(&file.text)
        .map(|i| i.include)
        .unwrap_or_default()
}

fn to_diagnostic(file: &SourceFile, e: &serde_yaml::Error, syntax: bool) -> Diagnostic {
    let full = e.to_string();
    // serde_yaml appends " at line L column C"; the location is shown apart.
    let message = e
        .location()
        .and_then(|l| full.strip_suffix(&format!(" at line {} column {}", l.line(), l.column())))
        .unwrap_or(&full)
        .to_owned();
    let location = e
        .location()
        .map(|l| SourceLocation::new(file.path.clone(), l.line(), l.column()));
    let (code, hint) = if syntax {
        (
            "yaml::syntax",
            "fix the YAML here: check the indentation, close brackets and quotes, \
             and quote values that contain `: ` or ` #`"
                .to_owned(),
        )
    } else if message.contains("unknown field") {
        ("yaml::unknown-key", unknown_key_hint(&message))
    } else if let Some(field) = backticked(&message)
        .first()
        .filter(|_| message.contains("missing field"))
    {
        (
            "yaml::missing-key",
            format!("add `{field}:` here; it is required"),
        )
    } else {
        (
            "yaml::invalid",
            "change the value to the type expected here (see the schema in the README)".to_owned(),
        )
    };
    Diagnostic::error(code, message).at(location).hint(hint)
}

/// The words in `backticks` in a serde message.
fn backticked(message: &str) -> Vec<&str> {
    message.split('`').skip(1).step_by(2).collect()
}

fn unknown_key_hint(message: &str) -> String {
    let words = backticked(message);
    let Some((unknown, expected)) = words.split_first() else {
        return "remove the key or fix its spelling".to_owned();
    };
    if expected.is_empty() {
        return format!("remove `{unknown}`: nothing may be set here");
    }
    match crate::diagnostic::did_you_mean(unknown, expected.iter().copied()) {
        Some(s) => format!("did you mean `{s}`? Otherwise remove `{unknown}`"),
        None => format!("remove `{unknown}` or use one of the expected keys"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn index(text: &str) -> LocationIndex {
        LocationIndex::build(&SourceFile::new("f.yaml", text))
    }

    #[test]
    fn indexes_keys_values_and_items() {
        let idx = index(
            "workflow:\n  states:\n    new: { initial: true }\n  transitions:\n    - from: [a, b]\n      to: c\n",
        );
        assert_eq!(
            idx.key("workflow.states.new").unwrap().to_string(),
            "f.yaml:3:5"
        );
        assert_eq!(
            idx.value("workflow.states.new.initial")
                .unwrap()
                .to_string(),
            "f.yaml:3:21"
        );
        assert_eq!(
            idx.key("workflow.transitions[0]").unwrap().to_string(),
            "f.yaml:5:7"
        );
        assert_eq!(
            idx.value("workflow.transitions[0].from[1]")
                .unwrap()
                .to_string(),
            "f.yaml:5:17"
        );
        assert_eq!(
            idx.value("workflow.transitions[0].to").unwrap().to_string(),
            "f.yaml:6:11"
        );
        assert_eq!(idx.top_level_keys(0), ["workflow"]);
        assert_eq!(
            idx.nearest("workflow.transitions[0].guard")
                .unwrap()
                .to_string(),
            "f.yaml:5:7"
        );
    }

    #[test]
    fn maps_positions_inside_scalars() {
        let idx = index("a: 'x > 1 &&'\nb: |\n  x > 1\n  && (\nc: x >\n   1 )\n");
        assert_eq!(
            idx.within_value("a", 1, 7).unwrap().to_string(),
            "f.yaml:1:11"
        );
        assert_eq!(
            idx.within_value("b", 2, 4).unwrap().to_string(),
            "f.yaml:4:6"
        );
        // A plain scalar over two lines folds into one line: `x > 1 )`.
        assert_eq!(
            idx.within_value("c", 1, 7).unwrap().to_string(),
            "f.yaml:6:6"
        );
    }

    #[test]
    fn syntax_errors_keep_their_location_and_mark_the_index_partial() {
        let file = SourceFile::new("f.yaml", "a: [1, 2\nb: 3\n");
        let err = parse::<serde_yaml::Value>(&file).unwrap_err();
        assert_eq!(err.code, "yaml::syntax");
        assert!(err.location.is_some());
        assert!(LocationIndex::build(&file).is_partial(0));
    }

    #[test]
    fn unknown_keys_suggest_the_closest_expected_key() {
        #[derive(Deserialize, Debug)]
        #[serde(deny_unknown_fields)]
        #[allow(dead_code)]
        struct S {
            initial: Option<bool>,
            terminal: Option<bool>,
        }
        let file = SourceFile::new("f.yaml", "initial: true\ntermnal: true\n");
        let err = parse::<S>(&file).unwrap_err();
        assert_eq!(err.code, "yaml::unknown-key");
        assert_eq!(err.location.unwrap().to_string(), "f.yaml:2:1");
        assert!(err.message.contains("expected"), "{}", err.message);
        assert!(err.hint.unwrap().contains("`terminal`"));
    }
}
