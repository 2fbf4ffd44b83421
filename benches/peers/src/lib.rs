//! The routing decision of casework's default pack (`rules/route.rhai`),
//! written three ways so their cost can be compared on equal terms:
//!
//! - in casework, the Rhai rule itself, called through [`RuleSet::route`];
//! - in GoRules' zen-engine, the JDM decision table `route.json` next to
//!   this crate (evaluated by the `routing` bench, where zen-engine is a
//!   dev-dependency, so this library does not depend on it);
//! - in plain Rust, [`plain_route`].
//!
//! The decision is the one `route.rhai` makes: read the customer's message
//! (this event's text, else the latest message on the case), find the
//! topic words of five groups in priority order (an order to take, billing,
//! sizing, shipping, a plain mention of an order) and send the case to the
//! team of the first group that matched, with its skill; with no topic
//! word, a case that already has a team stays there and a new one goes to
//! the fallback team; with no message at all, nothing changes.
//!
//! What the comparison leaves out: the *reason* text (the Rhai rule also
//! says which words matched and, for an order request, what the order still
//! lacks), which a decision table has no natural way to compute, and the
//! directory lookup (every team of the default pack exists, so it never
//! changes the verdict here). [`Verdict`] holds what all three produce.

use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use casework_core::Timestamp;
use casework_core::case::{Author, Case, CaseId, Channel, Message, StateId};
use casework_core::engine::Pack;
use casework_core::event::{Event, EventId};
use casework_core::rules::{CustomerStats, KeywordSet, RuleInput, RuleSet};

/// What a routing decision produced: `None` leaves the case where it is,
/// otherwise the team and, when a topic decided, the skill.
pub type Verdict = Option<(String, Option<String>)>;

/// The default pack's directory has this fallback team.
pub const FALLBACK: &str = "support";

/// Topic groups in the order `route.rhai` checks them: (group, team, skill).
pub const TOPICS: [(&str, &str, &str); 5] = [
    ("order_request", "sales", "orders"),
    ("billing", "billing", "payments"),
    ("sizing", "product", "sizing"),
    ("shipping", "warehouse", "shipping"),
    ("order", "sales", "orders"),
];

/// The topic words of `route.rhai`, group by group, as written there.
pub const WORDS: [&[&str]; 5] = [
    &[
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
    &[
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
    &[
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
    &[
        "shipping",
        "shipped",
        "ships",
        "ship it",
        "ship date",
        "delivery",
        "deliver",
        "delivered",
        "arrive",
        "arriving",
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
    &["order", "purchase", "buy", "注文", "購入"],
];

fn topic_set() -> &'static KeywordSet {
    static SET: OnceLock<KeywordSet> = OnceLock::new();
    SET.get_or_init(|| {
        KeywordSet::new(
            TOPICS
                .iter()
                .zip(WORDS)
                .map(|((group, _, _), words)| ((*group).to_owned(), words.iter().copied())),
        )
        .expect("the topic words compile")
    })
}

/// The words to read, as `route.rhai`'s `message_text` picks them: this
/// event's text when a customer wrote it (or it is an e-mail), else the
/// latest message the customer sent on the case.
pub fn message_text<'a>(case: &'a Case, event: Option<&'a Event>) -> &'a str {
    if let Some(e) = event
        && (e.kind.namespace() == "customer" || e.kind.as_str() == "email.received")
        && let Some(text) = e.text("text").filter(|t| !t.is_empty())
    {
        return text;
    }
    case.messages
        .iter()
        .rev()
        .find(|m| m.author == Author::Customer)
        .map_or("", |m| m.text.as_str())
}

/// The routing decision in plain Rust: one Aho-Corasick pass over the
/// normalised text (the same [`KeywordSet`] the Rhai helpers use), then
/// the first group that matched.
pub fn plain_route(case: &Case, event: Option<&Event>) -> Verdict {
    let text = message_text(case, event);
    if text.is_empty() {
        return None;
    }
    let hits = topic_set().find(text);
    for ((_, team, skill), (_, words)) in TOPICS.iter().zip(&hits) {
        if !words.is_empty() {
            return Some(((*team).to_owned(), Some((*skill).to_owned())));
        }
    }
    if case.assignment.team.is_some() {
        return None;
    }
    Some((FALLBACK.to_owned(), None))
}

/// The Rhai rule's verdict, reduced to what the three implementations share.
pub fn rhai_route(rules: &RuleSet, input: &RuleInput) -> Verdict {
    rules
        .route(input)
        .expect("route.rhai runs")
        .map(|r| (r.team, r.skill))
}

/// The default pack (`rules/casework.yaml` in this repository), compiled.
pub fn default_pack() -> (Pack, RuleSet) {
    let path = repo_root().join("rules/casework.yaml");
    let loaded = casework_core::config::load(&path).expect("the default pack loads");
    Pack::compile(loaded).expect("the default pack compiles")
}

/// The repository this crate lives in.
pub fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// One input of the bench: a case and the event that asks for a route.
pub struct Input {
    pub case: Case,
    pub event: Event,
    pub stats: CustomerStats,
    pub now: Timestamp,
}

impl Input {
    /// The view a rule call gets.
    pub fn rule_input(&self) -> RuleInput<'_> {
        RuleInput {
            case: &self.case,
            event: Some(&self.event),
            now: self.now,
            customer: &self.stats,
        }
    }
}

/// Messages customers send: each topic in English and Japanese, full- and
/// half-width spellings, phrases that overlap across topics ("where is my
/// order" is shipping, not ordering), nothing to match, and no text at all.
pub const TEXTS: &[&str] = &[
    "Where is my parcel? The delivery is late.",
    "Where is my order? It should have arrived by now.",
    "サイズが合わないので交換できますか？",
    "ｻｲｽﾞが合いません",
    "I was charged twice, please refund the second payment.",
    "ＲＥＦＵＮＤ PLEASE",
    "請求書の金額が間違っています。",
    "注文の方法が分からなかったので、こちらから注文させてください。至急の納期を希望します。",
    "I couldn't work out how to order, so please take this message as my order. I need it urgently.",
    "I'd like to order two oak chairs, ship to 150-0001.",
    "Can you tell me when the table ships? We need it by Friday.",
    "Will it fit through a 70 cm door? How wide is the box?",
    "The jacket is too small, can I change the size?",
    "My order number is O-77.",
    "I want to buy a second bench.",
    "追跡番号を教えてください。",
    "商品が届きません。",
    "領収書を発行してください。",
    "購入したいのですが在庫はありますか？",
    "Thank you so much, all good now!",
    "Hello?",
    "お世話になっております。",
    "The courier left a note; can you redeliver on Saturday?",
    "Please send an invoice for my company.",
    "What are the dimensions of the sofa?",
    "URGENT: CREDIT CARD CHARGED BUT NO CONFIRMATION",
    "Can I place an order by phone?",
    "The height of the desk is wrong and I want a refund.",
    "",
];

/// The bench's inputs: every text, on a new case and on a case the
/// support team already has (which decides where an unmatched message
/// goes), as a `customer.message`.
pub fn inputs() -> Vec<Input> {
    let at: Timestamp = "2026-11-25T10:00:00+09:00".parse().expect("a time");
    let mut out = Vec::new();
    for (i, text) in TEXTS.iter().enumerate() {
        for team in [None, Some("support")] {
            let id = CaseId::from(format!("C-{i}").as_str());
            let mut case = Case::open(id.clone(), at, StateId::from("new"));
            case.customer.name = Some("Jo Tanaka".into());
            case.customer.email = Some("jo@example.com".into());
            case.assignment.team = team.map(str::to_owned);
            if team.is_some() {
                // An earlier message, so a case with history is read too.
                case.messages.push(Message {
                    at,
                    author: Author::Customer,
                    from: None,
                    channel: Channel::Email,
                    subject: None,
                    text: "Hello, a question about my order.".into(),
                    message_id: None,
                    event: EventId::from("E-0"),
                });
                case.contacts = 1;
            }
            let event = Event::new(format!("E-{i}"), at, "customer.message", Some(id))
                .with("text", *text)
                .with("channel", "email");
            out.push(Input {
                case,
                event,
                stats: CustomerStats::default(),
                now: at,
            });
        }
    }
    out
}
