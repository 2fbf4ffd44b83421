//! The ops console: server-rendered pages in `casework serve`, on the same
//! port as the JSON API.
//!
//! Pages (all GET, nothing changes state on GET):
//! - `/` the queue of open cases, most pressing first, with filters;
//! - `/case/{id}` the unified view of one case;
//! - `/promises` every open promise at risk or broken;
//! - `/workflow` the workflow in force, drawn, with cases per state;
//! - `/try` "try a message": a form whose POST is a dry run
//!   ([`Engine::dry_run`]) that stores nothing;
//! - `/live` server-sent events naming the cases that changed;
//! - `/metrics` the Prometheus text format;
//! - `/assets/…` the stylesheet and the one script, served from the binary.
//!
//! Shape (Zammad's and Grafana's): [`views`] gathers data from the engine
//! and its store into plain structs; templates in `templates/` (one per
//! page, partials for the shared parts) render them through a minijinja
//! environment of the console's own whose HTML auto-escape is forced for
//! every template, whatever its name, apart from the e-mail templates ops
//! teams write. Customer text is hostile: it reaches the page only through
//! that escaping, inside `<bdi>` so direction overrides stay in their box,
//! and the filter `visible` shows invisible direction controls as
//! `[U+202E]`. The Content-Security-Policy allows scripts only from the
//! server itself, never inline.
//!
//! The pages read the case row only for its present (state, assignment,
//! open promises, SLA clocks, tasks, record); the timeline comes from
//! `Store::events`, decisions and settled promises from
//! `Store::decisions`, the outbox from `Store::case_actions`, the
//! queue from `Store::cases_in_states`.

pub mod auth;
pub mod graph;
pub mod i18n;
pub mod live;
pub mod metrics;
pub mod views;

use std::sync::Arc;

use casework_core::engine::Engine;
use minijinja::value::Serde;
use minijinja::{AutoEscape, Environment, context};

pub use auth::Guard;
pub use live::Hub;
pub use metrics::Metrics;

/// An answer from the console.
#[derive(Debug)]
pub struct Page {
    pub status: u16,
    pub content_type: &'static str,
    pub body: String,
    /// Extra headers (cookies, redirects).
    pub headers: Vec<(String, String)>,
}

/// What the browser may load: only what this server serves; no inline
/// script, no plugin, no framing.
pub const CSP: &str = "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; object-src 'none'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'";

const HTML: &str = "text/html; charset=utf-8";

const TEMPLATES: &[(&str, &str)] = &[
    ("base.html", include_str!("templates/base.html")),
    ("macros.html", include_str!("templates/macros.html")),
    ("queue.html", include_str!("templates/queue.html")),
    ("case.html", include_str!("templates/case.html")),
    ("promises.html", include_str!("templates/promises.html")),
    ("workflow.html", include_str!("templates/workflow.html")),
    ("workflow.svg", include_str!("templates/workflow.svg")),
    ("try.html", include_str!("templates/try.html")),
    ("login.html", include_str!("templates/login.html")),
    ("error.html", include_str!("templates/error.html")),
];

const ASSETS: &[(&str, &str, &str)] = &[
    (
        "console.css",
        "text/css; charset=utf-8",
        include_str!("assets/console.css"),
    ),
    (
        "console.js",
        "text/javascript; charset=utf-8",
        include_str!("assets/console.js"),
    ),
];

/// The console of one server.
pub struct Console {
    env: Environment<'static>,
    pub guard: Guard,
    pub hub: Arc<Hub>,
    pub metrics: Metrics,
}

/// The template environment: auto-escape forced to HTML for every
/// template (the SVG too: HTML's escaping is valid XML).
pub fn environment() -> Environment<'static> {
    let mut env = Environment::new();
    env.set_auto_escape_callback(|_| AutoEscape::Html);
    env.add_filter("visible", visible);
    // `{{ "Queue"|t(lang) }}`: the console's own words in the page's language.
    env.add_filter("t", |text: String, lang: Option<String>| {
        i18n::translate(&text, lang.as_deref().unwrap_or("en"))
    });
    for (name, source) in TEMPLATES {
        if let Err(e) = env.add_template(name, source) {
            // The templates are compiled into the binary and parsed by the
            // tests: this cannot happen in a released build.
            panic!("console template {name} does not parse: {e}");
        }
    }
    env
}

/// Direction and invisible formatting controls (U+202A–U+202E,
/// U+2066–U+2069, U+200E/F, U+061C) written out as `[U+202E]`, so a
/// message that tries to reorder what the agent reads shows the trick.
/// The result is still escaped by the template engine.
fn visible(text: String) -> String {
    text.chars()
        .map(|c| match c {
            '\u{202A}'..='\u{202E}'
            | '\u{2066}'..='\u{2069}'
            | '\u{200E}'
            | '\u{200F}'
            | '\u{061C}' => format!("[U+{:04X}]", c as u32),
            c => c.to_string(),
        })
        .collect()
}

/// Render the workflow as a standalone SVG file (`casework graph --format
/// svg`, docs/workflow.svg).
pub fn workflow_svg(
    workflow: &casework_core::workflow::Workflow,
    counts: &std::collections::BTreeMap<String, usize>,
) -> Result<String, minijinja::Error> {
    let drawing = graph::layout(workflow, counts);
    environment().get_template("workflow.svg")?.render(
        context! { d => Serde(drawing), standalone => true, show_counts => !counts.is_empty() },
    )
}

impl Console {
    pub fn new(guard: Guard) -> Console {
        Console {
            env: environment(),
            guard,
            hub: Arc::new(Hub::default()),
            metrics: Metrics::new(),
        }
    }

    /// Whether `path` (without its query) is the console's rather than
    /// the JSON API's.
    pub fn owns(path: &str) -> bool {
        let path = path.split('?').next().unwrap_or(path);
        path == "/"
            || path == "/metrics"
            || path == "/promises"
            || path == "/workflow"
            || path == "/try"
            || path == "/login"
            || path == "/live"
            || path.starts_with("/case/")
            || path.starts_with("/assets/")
    }

    /// Answer a console request (everything but `/live`, which streams).
    pub fn handle(
        &self,
        engine: &Engine,
        method: &str,
        url: &str,
        headers: &[(String, String)],
        body: &[u8],
    ) -> Page {
        let (path, query) = url.split_once('?').unwrap_or((url, ""));
        let query = parse_form(query);
        let lang = i18n::Lang::choose(&query, headers).code();
        if let Some(name) = path.strip_prefix("/assets/") {
            return match ASSETS.iter().find(|(n, _, _)| *n == name) {
                Some((_, content_type, text)) => Page {
                    status: 200,
                    content_type,
                    body: (*text).to_owned(),
                    headers: vec![("Cache-Control".into(), "max-age=300".into())],
                },
                None => self.error(404, &format!("no asset {name}")),
            };
        }
        if path == "/login" {
            return self.login(method, headers, body, lang);
        }
        if !self.guard.allows(headers) {
            if path == "/metrics" {
                return Page {
                    status: 401,
                    content_type: "text/plain; charset=utf-8",
                    body: "send the token as `Authorization: Bearer TOKEN`\n".into(),
                    headers: vec![("WWW-Authenticate".into(), "Bearer".into())],
                };
            }
            return Page {
                status: 303,
                content_type: HTML,
                body: String::new(),
                headers: vec![("Location".into(), "/login".into())],
            };
        }
        let result = match (method, path) {
            ("GET", "/") => self.render(lang, "queue.html", views::queue(engine, &query)),
            ("GET", "/promises") => self.render(lang, "promises.html", views::promises(engine)),
            ("GET", "/workflow") => self.render(lang, "workflow.html", views::workflow(engine)),
            ("GET", "/try") => self.render(lang, "try.html", views::try_form(engine, None)),
            ("POST", "/try") => {
                let form = parse_form(&String::from_utf8_lossy(body));
                let csrf = form
                    .iter()
                    .find(|(k, _)| k == "csrf")
                    .map(|(_, v)| v.as_str());
                if !self.guard.csrf_ok(csrf) {
                    return self.error(
                        403,
                        "this form is stale or came from another site (its CSRF token does not match); reload the page and send it again",
                    );
                }
                self.render(lang, "try.html", views::try_form(engine, Some(&form)))
            }
            ("GET", "/metrics") => {
                return Page {
                    status: 200,
                    content_type: metrics::CONTENT_TYPE,
                    body: self
                        .metrics
                        .render(&views::snapshot(engine, self.hub.clients())),
                    headers: Vec::new(),
                };
            }
            ("GET", p) if p.starts_with("/case/") => {
                let id = crate::serve::percent_decode(&p["/case/".len()..]);
                match views::case(engine, &id) {
                    Ok(Some(view)) => self.render(lang, "case.html", Ok(view)),
                    Ok(None) => return self.error(404, &format!("no case {id} in the store")),
                    Err(e) => Err(e),
                }
            }
            (_, "/try") => return self.error(405, "use GET or POST"),
            (_, "/live") => {
                return self.error(
                    400,
                    "/live is a stream a running `casework serve` sends to the pages; open a page instead",
                );
            }
            _ => return self.error(405, "use GET"),
        };
        result.unwrap_or_else(|e| self.error(503, &e))
    }

    fn render<T: serde::Serialize>(
        &self,
        lang: &str,
        name: &str,
        view: Result<T, String>,
    ) -> Result<Page, String> {
        let view = view?;
        let body = self
            .env
            .get_template(name)
            .and_then(|t| {
                t.render(context! { v => Serde(&view), csrf => self.guard.csrf(), login => self.guard.requires_token(), lang => lang })
            })
            .map_err(|e| format!("the console cannot draw {name}: {e}"))?;
        Ok(Page {
            status: 200,
            content_type: HTML,
            body,
            headers: Vec::new(),
        })
    }

    /// An error page (still escaped, still under the CSP).
    pub fn error(&self, status: u16, message: &str) -> Page {
        let body = self
            .env
            .get_template("error.html")
            .and_then(|t| t.render(context! { status => status, message => message, csrf => self.guard.csrf(), login => false }))
            .unwrap_or_else(|_| format!("error {status}"));
        Page {
            status,
            content_type: HTML,
            body,
            headers: Vec::new(),
        }
    }

    /// The sign-in form (only needed off loopback): POST the token, get
    /// it back as an HttpOnly, SameSite=Strict cookie.
    fn login(&self, method: &str, headers: &[(String, String)], body: &[u8], lang: &str) -> Page {
        let form = |message: &str, status: u16| {
            let body = self
                .env
                .get_template("login.html")
                .and_then(|t| {
                    t.render(
                        context! { message => message, csrf => self.guard.csrf(), login => true, lang => lang },
                    )
                })
                .unwrap_or_default();
            Page {
                status,
                content_type: HTML,
                body,
                headers: Vec::new(),
            }
        };
        match method {
            "GET" => form("", 200),
            "POST" => {
                let fields = parse_form(&String::from_utf8_lossy(body));
                let get = |k: &str| fields.iter().find(|(n, _)| n == k).map(|(_, v)| v.as_str());
                if !self.guard.csrf_ok(get("csrf")) {
                    return form("The form was stale; try again.", 403);
                }
                let token = get("token").unwrap_or_default();
                if !self.guard.accepts(Some(token)) {
                    return form("That is not the token.", 401);
                }
                let secure = headers
                    .iter()
                    .any(|(h, v)| h.eq_ignore_ascii_case("X-Forwarded-Proto") && v == "https");
                let cookie = format!(
                    "{}={token}; Path=/; HttpOnly; SameSite=Strict{}",
                    auth::COOKIE,
                    if secure { "; Secure" } else { "" }
                );
                Page {
                    status: 303,
                    content_type: HTML,
                    body: String::new(),
                    headers: vec![
                        ("Set-Cookie".into(), cookie),
                        ("Location".into(), "/".into()),
                    ],
                }
            }
            _ => self.error(405, "use GET or POST"),
        }
    }
}

/// `a=1&b=x+y` (a query string or a form body) as decoded pairs.
pub fn parse_form(text: &str) -> Vec<(String, String)> {
    text.split('&')
        .filter(|p| !p.is_empty())
        .map(|p| {
            let (k, v) = p.split_once('=').unwrap_or((p, ""));
            let d = |s: &str| crate::serve::percent_decode(&s.replace('+', " "));
            (d(k), d(v))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_template_parses_and_escapes_html_whatever_its_name() {
        let env = environment();
        for (name, _) in TEMPLATES {
            env.get_template(name).unwrap();
        }
        let t = env
            .template_from_str("{{ x }}")
            .unwrap()
            .render(context! { x => "<script>\"&" })
            .unwrap();
        assert_eq!(t, "&lt;script&gt;&quot;&amp;");
    }

    #[test]
    fn direction_controls_are_shown() {
        assert_eq!(visible("a\u{202E}b".into()), "a[U+202E]b");
        assert_eq!(visible("注文 ok".into()), "注文 ok");
    }

    #[test]
    fn forms_are_decoded() {
        assert_eq!(
            parse_form("a=1&text=%E6%B3%A8+x&empty"),
            [
                ("a".to_owned(), "1".to_owned()),
                ("text".to_owned(), "注 x".to_owned()),
                ("empty".to_owned(), String::new())
            ]
        );
    }
}
