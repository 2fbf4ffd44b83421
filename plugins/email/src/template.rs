//! Message templates: compiled once when the plugin is built, rendered
//! per action.
//!
//! Templates are minijinja (Jinja2 syntax), written by ops teams. A
//! syntax error is found when the plugin starts, naming the template and
//! the part (subject or body). A variable the action did not pass is an
//! error at render time, naming the variable, rather than a silently
//! empty "Dear ," in a customer's inbox; `{% if var %}` still works for
//! optional values. Rendering is bounded (fuel and recursion limits), so
//! a runaway loop in a template cannot stall the outbox.

use std::collections::{BTreeMap, BTreeSet};

use minijinja::value::{Serde, Value};
use minijinja::{Environment, ErrorKind, UndefinedBehavior};

use crate::config::TemplateSpec;
use crate::error::ConfigError;

/// Instructions a render may run; generous for a letter, small enough to
/// stop `{% for i in range(10**9) %}` quickly.
const FUEL: u64 = 200_000;

/// The subject or the body of a template.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Part {
    Subject,
    Body,
}

impl Part {
    pub fn as_str(self) -> &'static str {
        match self {
            Part::Subject => "subject",
            Part::Body => "body",
        }
    }
}

/// A rendered template, before any header safety is applied.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Rendered {
    pub subject: String,
    pub body: String,
}

/// Why a render failed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum RenderError {
    Unknown { known: Vec<String> },
    Failed { part: Part, message: String },
}

/// The configured templates, compiled.
pub struct Templates {
    env: Environment<'static>,
    names: Vec<String>,
}

impl std::fmt::Debug for Templates {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Templates")
            .field("names", &self.names)
            .finish()
    }
}

fn key(name: &str, part: Part) -> String {
    format!("{name}.{}", part.as_str())
}

impl Templates {
    /// Compile every template; the first that does not compile is the
    /// error.
    pub fn new(specs: &BTreeMap<String, TemplateSpec>) -> Result<Templates, ConfigError> {
        let mut env = Environment::new();
        env.set_undefined_behavior(UndefinedBehavior::SemiStrict);
        env.set_fuel(Some(FUEL));
        env.set_recursion_limit(64);
        // Plain-text mail: nothing is HTML-escaped, whatever the name.
        env.set_auto_escape_callback(|_| minijinja::AutoEscape::None);
        // Block tags on their own lines leave no blank lines behind.
        if let Ok(syntax) = minijinja::syntax::SyntaxConfig::builder()
            .trim_blocks(true)
            .lstrip_blocks(true)
            .build()
        {
            env.set_syntax(syntax);
        }
        for (name, spec) in specs {
            for (part, source) in [(Part::Subject, &spec.subject), (Part::Body, &spec.body)] {
                env.add_template_owned(key(name, part), source.clone())
                    .map_err(|e| ConfigError::Template {
                        template: name.clone(),
                        part: part.as_str().to_owned(),
                        message: describe(&e),
                    })?;
            }
        }
        Ok(Templates {
            env,
            names: specs.keys().cloned().collect(),
        })
    }

    /// The template names, sorted.
    pub fn names(&self) -> &[String] {
        &self.names
    }

    /// Render template `name` with `ctx` (a JSON object of variables).
    pub fn render(&self, name: &str, ctx: &serde_json::Value) -> Result<Rendered, RenderError> {
        if !self.names.iter().any(|n| n == name) {
            return Err(RenderError::Unknown {
                known: self.names.clone(),
            });
        }
        let value = Value::from(Serde(ctx));
        let one = |part: Part| -> Result<String, RenderError> {
            let fail = |message: String| RenderError::Failed { part, message };
            let tmpl = self
                .env
                .get_template(&key(name, part))
                .map_err(|e| fail(describe(&e)))?;
            tmpl.render(&value).map_err(|e| {
                if e.kind() == ErrorKind::UndefinedError {
                    let passed: BTreeSet<&str> = ctx
                        .as_object()
                        .map(|m| m.keys().map(String::as_str).collect())
                        .unwrap_or_default();
                    let missing: Vec<String> = tmpl
                        .undeclared_variables(false)
                        .into_iter()
                        .filter(|v| !passed.contains(v.as_str()))
                        .filter(|v| self.env.globals().all(|(g, _)| g != v))
                        .collect::<BTreeSet<_>>()
                        .into_iter()
                        .map(|v| format!("`{v}`"))
                        .collect();
                    if !missing.is_empty() {
                        let line = e.line().map(|l| format!(" (line {l})")).unwrap_or_default();
                        return fail(format!(
                            "it uses {}, which the action does not pass{line}; add it to the action's params, or guard it with {{% if ... %}}",
                            missing.join(", ")
                        ));
                    }
                }
                fail(describe(&e))
            })
        };
        Ok(Rendered {
            subject: one(Part::Subject)?,
            body: one(Part::Body)?,
        })
    }
}

/// One line: the error and where in the template it is.
fn describe(e: &minijinja::Error) -> String {
    let mut s = match e.detail() {
        Some(d) => format!("{}: {d}", e.kind()),
        None => e.kind().to_string(),
    };
    if let Some(line) = e.line() {
        s.push_str(&format!(" (line {line})"));
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn templates(subject: &str, body: &str) -> Result<Templates, ConfigError> {
        let mut m = BTreeMap::new();
        m.insert(
            "t".to_owned(),
            TemplateSpec {
                subject: subject.to_owned(),
                body: body.to_owned(),
            },
        );
        Templates::new(&m)
    }

    #[test]
    fn renders_variables_and_optional_blocks() {
        let t = templates(
            "Order {{ order }}",
            "Dear {{ name }},\n{% if note %}\nNote: {{ note }}\n{% endif %}\nBye",
        )
        .unwrap();
        let r = t
            .render("t", &json!({"order": "O-77", "name": "Jo <Tanaka>"}))
            .unwrap();
        assert_eq!(r.subject, "Order O-77");
        // No HTML escaping, no blank line left by the block tags.
        assert_eq!(r.body, "Dear Jo <Tanaka>,\nBye");
    }

    #[test]
    fn syntax_error_names_template_and_part() {
        let e = templates("ok", "Dear {{ name ").unwrap_err();
        match &e {
            ConfigError::Template { template, part, .. } => {
                assert_eq!(template, "t");
                assert_eq!(part, "body");
            }
            other => panic!("{other:?}"),
        }
        assert!(e.to_string().contains("templates.t.body"), "{e}");
    }

    #[test]
    fn missing_variable_is_named() {
        let t = templates("Order {{ order }}", "Dear {{ name }}").unwrap();
        let e = t.render("t", &json!({"name": "Jo"})).unwrap_err();
        match e {
            RenderError::Failed { part, message } => {
                assert_eq!(part, Part::Subject);
                assert!(
                    message.contains("uses `order`, which the action does not pass"),
                    "{message}"
                );
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn unknown_template_lists_known() {
        let t = templates("a", "b").unwrap();
        assert_eq!(
            t.render("nope", &json!({})),
            Err(RenderError::Unknown {
                known: vec!["t".to_owned()]
            })
        );
    }

    #[test]
    fn runaway_template_is_stopped() {
        // Each range is allowed; together they are 10^8 steps.
        let t = templates(
            "x",
            "{% for i in range(10000) %}{% for j in range(10000) %}.{% endfor %}{% endfor %}",
        )
        .unwrap();
        let e = t.render("t", &json!({})).unwrap_err();
        if let RenderError::Failed { message, .. } = &e {
            assert!(message.contains("fuel"), "{message}");
        }
        assert!(
            matches!(
                e,
                RenderError::Failed {
                    part: Part::Body,
                    ..
                }
            ),
            "{e:?}"
        );
    }
}
