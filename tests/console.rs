//! The ops console through `App` (no browser: tests/browser drives a real
//! one): `/metrics` read back by a Prometheus text-format parser with its
//! counters moving as events arrive, the token and CSRF guards, hostile
//! text escaped, "try a message" storing nothing, `serve` refusing to
//! listen off loopback without a token, and the workflow drawing.

use casework::console::{Guard, Page};
use casework::engine::{Engine, Pack};
use casework::outbox::OutboxRunner;
use casework::plugins::Plugins;
use casework::serve::App;
use prometheus_parse::{Sample, Scrape, Value};

use crate::util::casework;

fn app_with(guard: Guard) -> App {
    let (pack, rules) = Pack::compile(casework::load_config(None).unwrap()).unwrap();
    let engine = Engine::builder(pack, rules).build().unwrap();
    App::new(
        engine,
        OutboxRunner::new(Plugins::default(), "test"),
        "memory",
    )
    .guard(guard)
}

fn get(app: &App, url: &str) -> Page {
    app.page("GET", url, &[], b"")
}

fn message(id: &str, case: &str, text: &str) -> Vec<u8> {
    serde_json::json!({
        "id": id, "at": "2026-11-25T10:00:00+09:00", "kind": "customer.message",
        "case": case, "channel": "web_form", "text": text,
        "customer": { "name": "Jo Tanaka", "email": "jo@example.com" },
    })
    .to_string()
    .into_bytes()
}

fn scrape(app: &App) -> Scrape {
    let page = get(app, "/metrics");
    assert_eq!(page.status, 200, "{}", page.body);
    assert!(page.content_type.starts_with("text/plain; version=0.0.4"));
    Scrape::parse(page.body.lines().map(|l| Ok(l.to_owned())))
        .expect("Prometheus can parse /metrics")
}

/// The value of the sample `name` whose labels include `labels`.
fn value(scrape: &Scrape, name: &str, labels: &[(&str, &str)]) -> Option<f64> {
    scrape
        .samples
        .iter()
        .find(|s: &&Sample| {
            s.metric == name && labels.iter().all(|(k, v)| s.labels.get(k) == Some(*v))
        })
        .map(|s| match &s.value {
            Value::Counter(v) | Value::Gauge(v) | Value::Untyped(v) => *v,
            Value::Histogram(buckets) => buckets.last().map_or(0.0, |b| b.count),
            Value::Summary(_) => f64::NAN,
        })
}

#[test]
fn metrics_parse_as_prometheus_text_and_counters_move_as_events_arrive() {
    let app = app_with(Guard::open());
    let before = scrape(&app);
    assert_eq!(
        value(&before, "casework_events_total", &[("outcome", "accepted")]),
        None,
        "no event yet"
    );
    assert_eq!(value(&before, "casework_outbox_pending", &[]), Some(0.0));
    assert_eq!(
        value(&before, "casework_open_promises", &[("status", "at_risk")]),
        Some(0.0)
    );

    assert_eq!(
        app.handle(
            "POST",
            "/events",
            &message("m1", "C-1", "請求書が届きません")
        )
        .status,
        202
    );
    let one = scrape(&app);
    let accepted = [("kind", "customer.message"), ("outcome", "accepted")];
    assert_eq!(value(&one, "casework_events_total", &accepted), Some(1.0));
    assert_eq!(
        value(&one, "casework_decisions_total", &[("kind", "route")]),
        Some(1.0)
    );
    assert_eq!(
        value(&one, "casework_event_handling_seconds", &[]),
        Some(1.0),
        "one observation"
    );
    assert_eq!(
        value(&one, "casework_cases", &[("state", "triage")]),
        Some(1.0)
    );
    assert!(
        one.docs.contains_key("casework_events_total"),
        "HELP lines are written"
    );

    // A second event, a duplicate, and a refused one.
    assert_eq!(
        app.handle(
            "POST",
            "/events",
            &message("m2", "C-2", "Where is my parcel?")
        )
        .status,
        202
    );
    assert_eq!(
        app.handle(
            "POST",
            "/events",
            &message("m2", "C-2", "Where is my parcel?")
        )
        .status,
        409
    );
    let unknown = br#"{"id":"x","at":"2026-11-25T10:00:00+09:00","kind":"nope.kind","case":"C-1"}"#;
    assert_eq!(app.handle("POST", "/events", unknown).status, 400);
    let two = scrape(&app);
    assert_eq!(value(&two, "casework_events_total", &accepted), Some(2.0));
    assert_eq!(
        value(
            &two,
            "casework_events_total",
            &[("kind", "customer.message"), ("outcome", "duplicate")]
        ),
        Some(1.0)
    );
    assert_eq!(
        value(
            &two,
            "casework_events_total",
            &[("kind", "nope.kind"), ("outcome", "rejected")]
        ),
        Some(1.0)
    );
    assert_eq!(
        value(&two, "casework_decisions_total", &[("kind", "route")]),
        Some(2.0)
    );
    assert_eq!(
        value(&two, "casework_cases", &[("state", "triage")]),
        Some(2.0)
    );
    // A promise, then news that puts it at risk: the gauge follows.
    let promise = br#"{"id":"p1","at":"2026-11-25T10:00:00+09:00","kind":"agent.promise","case":"C-1","agent":"emi",
        "promise":{"id":"P-1","kind":"deliver_on","date":"2030-01-06","order":"O-1"}}"#;
    assert_eq!(app.handle("POST", "/events", promise).status, 202);
    let pending = scrape(&app);
    assert_eq!(
        value(&pending, "casework_open_promises", &[("status", "pending")]),
        Some(1.0)
    );
    let planned = br#"{"id":"w1","at":"2026-11-25T10:00:00+09:00","kind":"warehouse.planned","order":"O-1","ship_date":"2026-11-26"}"#;
    assert_eq!(app.handle("POST", "/events", planned).status, 202);
    let risky = scrape(&app);
    assert_eq!(
        value(&risky, "casework_open_promises", &[("status", "at_risk")]),
        Some(1.0)
    );
    assert_eq!(
        value(&risky, "casework_open_promises", &[("status", "pending")]),
        Some(0.0)
    );
    assert_eq!(
        value(
            &risky,
            "casework_promise_changes_total",
            &[("status", "at_risk")]
        ),
        Some(1.0)
    );
    // The default pack asks plugins for work: the backlog is counted, and
    // its age read from the oldest pending action.
    assert!(value(&two, "casework_outbox_pending", &[]).unwrap() >= 1.0);
    assert!(value(&two, "casework_outbox_oldest_pending_age_seconds", &[]).unwrap() > 0.0);
}

#[test]
fn off_loopback_every_route_asks_for_the_token() {
    let app = app_with(Guard::token("a-long-test-token-0123456789"));
    let bearer = [(
        "Authorization".to_owned(),
        "Bearer a-long-test-token-0123456789".to_owned(),
    )];
    let wrong = [(
        "Authorization".to_owned(),
        "Bearer a-long-test-token-012345678".to_owned(),
    )];
    let body = message("m1", "C-1", "hello");
    assert_eq!(app.handle("POST", "/events", &body).status, 401);
    assert_eq!(
        app.handle_with_headers("POST", "/events", &wrong, &body)
            .status,
        401
    );
    assert_eq!(
        app.handle_with_headers("POST", "/events", &bearer, &body)
            .status,
        202
    );
    assert_eq!(app.handle("GET", "/health", b"").status, 401);

    let page = get(&app, "/");
    assert_eq!(page.status, 303);
    assert!(
        page.headers
            .contains(&("Location".to_owned(), "/login".to_owned()))
    );
    assert_eq!(get(&app, "/metrics").status, 401);
    assert_eq!(app.page("GET", "/metrics", &bearer, b"").status, 200);
    assert_eq!(
        get(&app, "/assets/console.css").status,
        200,
        "the sign-in page needs its style"
    );

    // Sign in: the form carries the CSRF token; the cookie then opens the pages.
    let login = get(&app, "/login");
    let csrf = app.console().guard.csrf().to_owned();
    assert!(login.body.contains(&csrf));
    let refused = app.page("POST", "/login", &[], b"token=a-long-test-token-0123456789");
    assert_eq!(refused.status, 403, "no CSRF token");
    let form = format!("csrf={csrf}&token=wrong");
    assert_eq!(app.page("POST", "/login", &[], form.as_bytes()).status, 401);
    let form = format!("csrf={csrf}&token=a-long-test-token-0123456789");
    let signed = app.page("POST", "/login", &[], form.as_bytes());
    assert_eq!(signed.status, 303);
    let cookie = signed
        .headers
        .iter()
        .find(|(h, _)| h == "Set-Cookie")
        .map(|(_, v)| v.clone())
        .unwrap();
    assert!(
        cookie.contains("HttpOnly") && cookie.contains("SameSite=Strict"),
        "{cookie}"
    );
    let jar = [(
        "Cookie".to_owned(),
        cookie.split(';').next().unwrap().to_owned(),
    )];
    assert_eq!(app.page("GET", "/", &jar, b"").status, 200);
    assert_eq!(app.page("GET", "/case/C-1", &jar, b"").status, 200);
}

#[test]
fn hostile_customer_text_is_escaped_on_every_page() {
    let app = app_with(Guard::open());
    let hostile = "<script>alert(1)</script> \"><img src=x onerror=alert(2)> javascript:alert(3) \u{202E}cod.exe";
    assert_eq!(
        app.handle("POST", "/events", &message("h1", "C-6", hostile))
            .status,
        202
    );
    for url in ["/", "/case/C-6", "/?q=C-6", "/promises", "/workflow"] {
        let page = get(&app, url);
        assert_eq!(page.status, 200, "{url}: {}", page.body);
        assert!(!page.body.contains("<script>alert"), "{url}");
        assert!(!page.body.contains("<img"), "{url}");
        assert!(
            !page.body.contains('\u{202E}'),
            "{url}: the override is written out"
        );
        assert!(!page.body.contains("href=\"javascript:"), "{url}");
    }
    let case = get(&app, "/case/C-6").body;
    assert!(
        case.contains("&lt;script&gt;alert(1)&lt;&#x2f;script&gt;"),
        "shown as text"
    );
    assert!(case.contains("[U+202E]cod.exe"));
}

#[test]
fn the_console_speaks_japanese_to_a_browser_that_prefers_it() {
    let app = app_with(Guard::open());
    assert_eq!(
        app.handle("POST", "/events", &message("m1", "C-1", "hello"))
            .status,
        202
    );
    let ja = [(
        "Accept-Language".to_owned(),
        "ja-JP,ja;q=0.9,en;q=0.8".to_owned(),
    )];
    for (url, word) in [
        ("/", "キュー"),
        ("/case/C-1", "引き継ぎ記録"),
        ("/try", "メッセージを試す"),
        ("/workflow", "件"),
    ] {
        let page = app.page("GET", url, &ja, b"");
        assert_eq!(page.status, 200, "{url}");
        assert!(page.body.contains("<html lang=\"ja\">"), "{url}");
        assert!(page.body.contains(word), "{url} lacks {word}");
    }
    let en = get(&app, "/case/C-1");
    assert!(en.body.contains("Handoff record") && en.body.contains("<html lang=\"en\">"));
    assert!(
        app.page("GET", "/?lang=en", &ja, b"")
            .body
            .contains(">Queue <")
    );
}

#[test]
fn try_a_message_answers_from_the_rules_in_force_and_stores_nothing() {
    let app = app_with(Guard::open());
    assert_eq!(get(&app, "/try").status, 200);
    let health = |app: &App| app.handle("GET", "/health", b"").body;
    let before = health(&app);
    let csrf = app.console().guard.csrf().to_owned();
    let form = format!(
        "csrf={csrf}&kind=customer.message&text=%E8%AB%8B%E6%B1%82%E6%9B%B8%E3%81%AE%E9%87%91%E9%A1%8D%E3%81%8C%E9%81%95%E3%81%84%E3%81%BE%E3%81%99"
    );
    let page = app.page("POST", "/try", &[], form.as_bytes());
    assert_eq!(page.status, 200, "{}", page.body);
    assert!(
        page.body.contains("id=\"route-team\">billing"),
        "{}",
        page.body
    );
    assert!(page.body.contains("route.rhai:"), "the rule line is shown");
    assert_eq!(health(&app), before, "nothing stored, nothing queued");
    // A stale form is refused.
    let stale = app.page("POST", "/try", &[], b"csrf=0000&text=hello");
    assert_eq!(stale.status, 403);
    // A case that does not exist is named, not invented.
    let form = format!("csrf={csrf}&text=hi&kind=agent.note");
    assert!(
        app.page("POST", "/try", &[], form.as_bytes())
            .body
            .contains("not a message kind")
    );
}

#[test]
fn serve_refuses_to_listen_off_loopback_without_a_token() {
    let run = casework([
        "serve",
        "--listen",
        "0.0.0.0:0",
        "--db",
        "/nonexistent/never-opened.db",
    ]);
    assert_eq!(run.code, 1, "{}", run.output());
    assert!(run.stderr.contains("--token-env VAR"), "{}", run.output());
    assert!(run.stderr.contains("--insecure"), "{}", run.output());
    let run = casework([
        "serve",
        "--listen",
        "0.0.0.0:0",
        "--db",
        "/nonexistent/never-opened.db",
        "--token-env",
        "CASEWORK_TEST_TOKEN_THAT_IS_NOT_SET",
    ]);
    assert_eq!(run.code, 1, "{}", run.output());
    assert!(run.stderr.contains("is not set"), "{}", run.output());
}

#[test]
fn the_workflow_drawing_merges_parallel_arrows_and_summarises_wide_moves() {
    let run = casework(["graph", "--format", "svg"]);
    assert_eq!(run.code, 0, "{}", run.output());
    let svg = &run.stdout;
    let edges = svg.matches("<g class=\"edge").count();
    let dot_edges = casework(["graph"]).stdout.matches(" -> ").count();
    assert!(
        edges * 2 < dot_edges,
        "{edges} arrows drawn for {dot_edges} in the DOT"
    );
    // One arrow per pair: no (from, to) twice.
    let mut pairs: Vec<&str> = svg
        .split("<g class=\"edge")
        .skip(1)
        .filter_map(|g| g.split("<title>").nth(1)?.split(':').next())
        .collect();
    let n = pairs.len();
    pairs.sort();
    pairs.dedup();
    assert_eq!(pairs.len(), n, "{pairs:?}");
    assert!(svg.contains("from any open state: on promise.at_risk → promise_at_risk"));
    // The spine: the usual path drawn straight.
    for pair in ["new → triage", "triage → resolved", "resolved → closed"] {
        let edge = svg
            .split("<g class=\"edge")
            .find(|g| g.contains(&format!("<title>{pair}:")))
            .unwrap_or_else(|| panic!("{pair} drawn"));
        assert!(edge.starts_with(" spine"), "{pair} is on the spine");
    }
    let committed = std::fs::read_to_string("docs/workflow.svg").unwrap();
    assert_eq!(
        committed, *svg,
        "docs/workflow.svg is not the default workflow any more: run scripts/draw"
    );
}
