//! Rule evaluation per event with the default pack, against the same
//! logic written in plain Rust, so the cost of scripting shows as a ratio.
//!
//! One "event" = `route` + `urgency` + `check_promise` on two promises
//! (the table story's delivery promise, at risk, and a call-back promise).
//!
//! ```text
//! cargo bench -p casework-core --bench rules -- --measurement-time 3
//! ```

use std::hint::black_box;
use std::sync::OnceLock;
use std::time::Duration;

use casework_core::Timestamp;
use casework_core::case::{Author, Case, CaseId, Channel, Message, Order, OrderId, StateId};
use casework_core::config::{DirectoryDef, RulesDef, TeamDef};
use casework_core::diagnostic::SourceFile;
use casework_core::event::{Event, EventId};
use casework_core::promise::{Promise, PromiseId, PromiseKind, PromiseSpec, PromiseStatus, Window};
use casework_core::rules::{
    Calendars, CustomerStats, KeywordSet, RuleInput, RuleSet, find_deadline, normalize,
};
use chrono::{Days, NaiveDate};
use criterion::{Criterion, Throughput, criterion_group, criterion_main};

const TEXT: &str = "注文の方法が分からなかったので、こちらから注文させてください。\
                    至急の納期を希望します。1/6に届けてください。";

fn ts(s: &str) -> Timestamp {
    chrono::DateTime::parse_from_rfc3339(s).unwrap()
}

fn day(s: &str) -> NaiveDate {
    s.parse().unwrap()
}

struct Fixture {
    case: Case,
    event: Event,
    stats: CustomerStats,
    now: Timestamp,
}

fn fixture() -> Fixture {
    let at = ts("2026-11-25T10:00:00+09:00");
    let mut case = Case::open(CaseId::from("C-1"), at, StateId::from("new"));
    case.customer.name = Some("Jo Tanaka".into());
    case.customer.email = Some("jo@example.com".into());
    case.contacts = 8;
    for i in 0..8 {
        case.messages.push(Message {
            at,
            author: Author::Customer,
            from: None,
            channel: Channel::WebForm,
            subject: None,
            text: TEXT.into(),
            message_id: None,
            event: EventId::from(format!("E-{i}")),
        });
    }
    let mut order = Order::new(OrderId::from("O-77"));
    order.planned_ship = Some(day("2026-12-11"));
    case.orders.push(order);
    let delivery = PromiseSpec {
        id: PromiseId::from("P-1"),
        kind: PromiseKind::DeliverOn,
        date: Some(day("2027-01-06")),
        window: Some(Window {
            from: day("2027-01-05"),
            to: day("2027-01-08"),
        }),
        by: None,
        order: Some(OrderId::from("O-77")),
        tz: None,
        text: None,
        revises: None,
    };
    let callback = PromiseSpec {
        id: PromiseId::from("P-2"),
        kind: PromiseKind::CallbackBy,
        date: None,
        window: None,
        by: Some(ts("2026-12-10T09:00:00+09:00")),
        order: None,
        tz: None,
        text: None,
        revises: None,
    };
    for spec in [delivery, callback] {
        case.promises
            .push(Promise::make(&spec, "jeniffer", at, None, chrono_tz::Asia::Tokyo).unwrap());
    }
    let event = Event::new("E-9", at, "customer.message", Some(CaseId::from("C-1")))
        .with("text", TEXT)
        .with("channel", "web_form");
    Fixture {
        case,
        event,
        stats: CustomerStats {
            contacts: 8,
            cases: 2,
            open_cases: 1,
            ..Default::default()
        },
        now: ts("2026-12-10T08:00:00+09:00"),
    }
}

fn directory() -> DirectoryDef {
    let mut dir = DirectoryDef {
        fallback: "support".into(),
        ..Default::default()
    };
    for team in ["support", "warehouse", "product", "billing", "sales"] {
        dir.teams.insert(team.into(), TeamDef::default());
    }
    dir
}

fn pack() -> RuleSet {
    let root = concat!(env!("CARGO_MANIFEST_DIR"), "/../rules/");
    let files: Vec<SourceFile> = ["route.rhai", "urgency.rhai", "promise.rhai"]
        .iter()
        .map(|f| {
            let text = std::fs::read_to_string(format!("{root}{f}")).unwrap();
            SourceFile::new(format!("rules/{f}"), text)
        })
        .collect();
    let settings = serde_json::json!({
        "warehouse_lead_days_max": 21, "carrier_transit_days": 3,
        "regional_transit_days": 5, "appointment_days": 2,
        "callback_warn_hours": 2, "repeat_contact_threshold": 3,
    });
    let def = RulesDef {
        files: vec![],
        settings: settings.as_object().unwrap().clone(),
        limits: None,
    };
    RuleSet::compile(&files, &def, &[], &directory(), &Calendars::new()).unwrap()
}

// --- the default pack, by hand ---------------------------------------------

fn route_set() -> &'static KeywordSet {
    static SET: OnceLock<KeywordSet> = OnceLock::new();
    SET.get_or_init(|| {
        KeywordSet::new([
            (
                "order_request".to_owned(),
                vec![
                    "take this message as my order",
                    "take this as my order",
                    "accept this as my order",
                    "place an order",
                    "place the order",
                    "place my order",
                    "i want to order",
                    "i'd like to order",
                    "i would like to order",
                    "how to order",
                    "how do i order",
                    "注文させて",
                    "注文したい",
                    "注文します",
                    "注文をお願い",
                    "注文お願い",
                    "注文の方法",
                    "注文方法",
                    "購入したい",
                    "買いたい",
                ],
            ),
            (
                "billing".to_owned(),
                vec![
                    "payment",
                    "pay for",
                    "paid",
                    "refund",
                    "invoice",
                    "receipt",
                    "charged",
                    "charge",
                    "credit card",
                    "billing",
                    "bill",
                    "支払",
                    "払い",
                    "返金",
                    "請求",
                    "領収書",
                    "決済",
                    "振込",
                    "代金",
                ],
            ),
            (
                "sizing".to_owned(),
                vec![
                    "size",
                    "sizing",
                    "dimension",
                    "measurement",
                    "how big",
                    "how wide",
                    "how tall",
                    "width",
                    "height",
                    "will it fit",
                    "サイズ",
                    "寸法",
                    "大きさ",
                    "幅",
                    "高さ",
                    "奥行",
                ],
            ),
            (
                "shipping".to_owned(),
                vec![
                    "shipping",
                    "shipped",
                    "ships",
                    "ship it",
                    "ship date",
                    "delivery",
                    "deliver",
                    "delivered",
                    "arrive",
                    "arrival",
                    "tracking",
                    "where is my order",
                    "courier",
                    "carrier",
                    "配送",
                    "発送",
                    "配達",
                    "出荷",
                    "届",
                    "到着",
                    "納期",
                    "追跡",
                    "宅配",
                ],
            ),
            (
                "order".to_owned(),
                vec!["order", "purchase", "buy", "注文", "購入"],
            ),
        ])
        .unwrap()
    })
}

fn urgency_set() -> &'static KeywordSet {
    static SET: OnceLock<KeywordSet> = OnceLock::new();
    SET.get_or_init(|| {
        KeywordSet::new([
            (
                "urgent".to_owned(),
                vec![
                    "至急",
                    "大至急",
                    "急ぎ",
                    "急いで",
                    "今日中",
                    "本日中",
                    "早急",
                    "すぐに",
                    "urgent",
                    "urgently",
                    "asap",
                    "as soon as possible",
                    "right away",
                    "immediately",
                    "emergency",
                ],
            ),
            (
                "calm".to_owned(),
                vec![
                    "急ぎません",
                    "急ぎではありません",
                    "急ぎではない",
                    "急いでいません",
                    "いつでも",
                    "not urgent",
                    "no rush",
                    "no hurry",
                    "whenever",
                ],
            ),
        ])
        .unwrap()
    })
}

fn message_text<'a>(input: &'a RuleInput) -> &'a str {
    if let Some(e) = input.event
        && (e.kind.namespace() == "customer" || e.kind.as_str() == "email.received")
        && let Some(text) = e.text("text").filter(|t| !t.is_empty())
    {
        return text;
    }
    input
        .case
        .messages
        .iter()
        .rev()
        .find(|m| m.author == Author::Customer)
        .map_or("", |m| m.text.as_str())
}

fn rust_route(input: &RuleInput, dir: &DirectoryDef) -> Option<(String, String)> {
    let text = message_text(input);
    if text.is_empty() {
        return None;
    }
    let hits = route_set().find(text);
    for (group, team, skill) in [
        (0, "sales", "orders"),
        (1, "billing", "payments"),
        (2, "product", "sizing"),
        (3, "warehouse", "shipping"),
        (4, "sales", "orders"),
    ] {
        let words = &hits[group].1;
        if !words.is_empty() {
            let matched = words.join(", ");
            if !dir.teams.contains_key(team) {
                return Some((dir.fallback.clone(), format!("{skill}: matched {matched}")));
            }
            return Some((team.to_owned(), format!("{skill}: matched {matched}")));
        }
    }
    if input.case.assignment.team.is_some() {
        return None;
    }
    Some((dir.fallback.clone(), "no topic words matched".into()))
}

fn rust_urgency(input: &RuleInput) -> (&'static str, i64, Vec<String>) {
    let text = message_text(input);
    let mut score = 0;
    let mut reasons = Vec::new();
    let hits = urgency_set().find(text);
    if !hits[0].1.is_empty() {
        score += 50;
        reasons.push(format!("the customer says {}", hits[0].1.join(", ")));
    }
    if !hits[1].1.is_empty() {
        score -= 20;
        reasons.push(format!(
            "the customer says {} (no hurry)",
            hits[1].1.join(", ")
        ));
    }
    if let Some(d) = find_deadline(&normalize(text)) {
        score += 25;
        reasons.push(format!("the message names a deadline: {d}"));
    }
    let threshold = 3;
    let contacts = i64::from(input.customer.contacts.max(input.case.contacts));
    if contacts >= threshold {
        score += 10 * (contacts - threshold + 1);
        reasons.push(format!("the customer has contacted us {contacts} times"));
    }
    for p in input.case.promises.iter().filter(|p| p.status.is_open()) {
        if let Some(due) = p.due_at() {
            let left = (due - input.now).num_hours();
            if left < 0 {
                score += 50;
                reasons.push(format!("promise {} is overdue", p.id));
            } else if left <= 48 {
                score += 25;
                reasons.push(format!("promise {} is due in {left} hours", p.id));
            }
        }
        if p.status == PromiseStatus::AtRisk {
            score += 15;
        }
    }
    let level = if score >= 50 {
        "urgent"
    } else if score >= 25 {
        "high"
    } else if score < 0 {
        "low"
    } else {
        "normal"
    };
    (level, score, reasons)
}

fn rust_check(p: &Promise, input: &RuleInput) -> (PromiseStatus, String, Vec<serde_json::Value>) {
    use serde_json::json;
    let now = input.now;
    if !p.kind.is_delivery() {
        let called =
            input.case.messages.iter().any(|m| {
                m.author == Author::Agent && m.channel == Channel::Phone && m.at >= p.made_at
            });
        if called {
            return (PromiseStatus::Kept, "called".into(), vec![]);
        }
        let Some(due) = p.due_at() else {
            return (PromiseStatus::Pending, "no time".into(), vec![]);
        };
        if now >= due {
            return (
                PromiseStatus::Broken,
                format!("nobody called by {due}"),
                vec![],
            );
        }
        let left = (due - now).num_minutes();
        if left <= 120 {
            let reason = format!("the call-back is due at {due} (in {left} minutes)");
            let notify =
                json!({"action": "team.notify", "params": {"agent": p.made_by, "text": reason}});
            return (PromiseStatus::AtRisk, reason, vec![notify]);
        }
        return (
            PromiseStatus::Pending,
            format!("call back due at {due}"),
            vec![],
        );
    }
    let w = p.delivery_window().unwrap();
    let Some(order) = p.order.as_ref().and_then(|o| input.case.order(o.as_str())) else {
        return (PromiseStatus::Pending, "no order".into(), vec![]);
    };
    if let Some(at) = order.delivered_at {
        let d = at.with_timezone(&p.tz).date_naive();
        let st = if w.contains(d) {
            PromiseStatus::Kept
        } else {
            PromiseStatus::Broken
        };
        return (st, format!("delivered on {d}"), vec![]);
    }
    if p.due_at().is_some_and(|due| now >= due) {
        return (
            PromiseStatus::Broken,
            format!("not delivered by {}", w.to),
            vec![],
        );
    }
    let transit = Days::new(3);
    let mut risks = Vec::new();
    let mut actions = Vec::new();
    let ship = order
        .shipped_on
        .or_else(|| match (order.planned_ship, order.held_until) {
            (Some(s), Some(h)) => Some(s.max(h)),
            (s, h) => s.or(h),
        });
    if order.shipped_on.is_none()
        && let Some(ship) = ship
    {
        let arrives = ship + transit;
        let latest = w.to - transit;
        if arrives < w.from {
            let why = format!("ships {ship}, arrives about {arrives}, before {}", w.from);
            actions.push(json!({"action": "warehouse.hold", "params": {"order": order.id, "until": latest.to_string()}}));
            actions.push(
                json!({"action": "team.notify", "params": {"agent": p.made_by, "text": why}}),
            );
            risks.push(why);
        } else if arrives > w.to {
            risks.push(format!("arrives about {arrives}, after {}", w.to));
        }
    }
    if let Some(eta) = order.carrier_eta
        && !w.contains(eta)
    {
        risks.push(format!("the carrier expects {eta}"));
    }
    if order.backordered {
        risks.push("backordered".into());
    }
    if let Some(problem) = &order.problem {
        risks.push(format!("problem: {problem}"));
    }
    if order.shipped_on.is_none() && ship.is_none() {
        let made = p.made_at.with_timezone(&p.tz).date_naive();
        let worst = made + Days::new(28);
        if worst > w.to {
            risks.push(format!("can take until {worst}"));
        }
    }
    if risks.is_empty() {
        return (PromiseStatus::Pending, "on track".into(), vec![]);
    }
    (PromiseStatus::AtRisk, risks.join("; "), actions)
}

fn bench(c: &mut Criterion) {
    let set = pack();
    let dir = directory();
    let f = fixture();
    let input = RuleInput {
        case: &f.case,
        event: Some(&f.event),
        now: f.now,
        customer: &f.stats,
    };

    // Both sides must agree before their speed is worth comparing.
    let route = set.route(&input).unwrap().unwrap();
    assert_eq!(
        Some(route.team.clone()),
        rust_route(&input, &dir).map(|r| r.0)
    );
    let urgency = set.urgency(&input).unwrap().unwrap();
    let (level, score, _) = rust_urgency(&input);
    assert_eq!((urgency.level.as_str(), urgency.score), (level, score));
    for p in &f.case.promises {
        let check = set.check_promise(p, &input).unwrap().unwrap();
        let (status, _, actions) = rust_check(p, &input);
        assert_eq!(
            (check.status, check.actions.len()),
            (status, actions.len()),
            "{}",
            p.id
        );
    }

    let mut group = c.benchmark_group("rules_per_event");
    group.throughput(Throughput::Elements(1));
    group.bench_function("rhai_default_pack", |b| {
        b.iter(|| {
            let input = black_box(&input);
            let r = set.route(input).unwrap();
            let u = set.urgency(input).unwrap();
            let p1 = set.check_promise(&f.case.promises[0], input).unwrap();
            let p2 = set.check_promise(&f.case.promises[1], input).unwrap();
            black_box((r, u, p1, p2))
        })
    });
    group.bench_function("plain_rust", |b| {
        b.iter(|| {
            let input = black_box(&input);
            let r = rust_route(input, &dir);
            let u = rust_urgency(input);
            let p1 = rust_check(&f.case.promises[0], input);
            let p2 = rust_check(&f.case.promises[1], input);
            black_box((r, u, p1, p2))
        })
    });
    group.finish();
}

criterion_group! {
    name = benches;
    config = Criterion::default()
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(3))
        .sample_size(30);
    targets = bench
}
criterion_main!(benches);
