//! Read-only views of the model, registered as Rhai types.
//!
//! A rule runs on every event, so the case is not copied into a Rhai map
//! for each call: the script gets small handles (`Case`, `Event`,
//! `Promise`, `Order`, `Message`, `Customer`) that point at the caller's
//! data, and each property reads straight from it.
//!
//! # Why the pointers are sound
//!
//! A handle holds a raw pointer plus the *epoch* of the rule call that
//! created it. [`enter`] starts a call: it takes a fresh epoch and records
//! it in a thread-local, and the [`Frame`] guard it returns restores the
//! previous one when dropped. The caller creates the guard while it holds
//! the `&Case` / `&Event` borrows and drops it before they end. A handle
//! dereferences its pointer only after checking that its epoch is the live
//! one *on the current thread* ([`Borrowed::get`]), so a handle that a
//! script smuggles out of its call (in a return value, say) can only ever
//! produce an error, never a dangling read.

use std::cell::{Cell, RefCell};
use std::ptr::NonNull;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use rhai::{Array, Dynamic, Engine, EvalAltResult, Map};

/// A result a Rhai function can return.
pub(crate) type RhaiResultOf<T> = Result<T, Box<EvalAltResult>>;

use super::CustomerStats;
use super::convert::json_map_to_rhai;
use super::engine::Shared;
use crate::Timestamp;
use crate::case::{Author, Case, Channel, Message, Order};
use crate::config::{AgentDef, DirectoryDef, TeamDef};
use crate::event::Event;
use crate::promise::Promise;

static NEXT_EPOCH: AtomicU64 = AtomicU64::new(1);

thread_local! {
    /// The epoch of the rule call running on this thread (0: none).
    static EPOCH: Cell<u64> = const { Cell::new(0) };
    /// What helpers need during that call.
    static CONTEXT: RefCell<Option<CallContext>> = const { RefCell::new(None) };
}

/// Per-call data the helper functions read.
#[derive(Clone)]
pub(crate) struct CallContext {
    pub now: Timestamp,
    pub shared: Arc<Shared>,
}

/// A rule call in progress on this thread; ends when dropped.
pub(crate) struct Frame {
    epoch: u64,
    prev_epoch: u64,
    prev_context: Option<CallContext>,
    /// The frame is tied to its thread.
    _not_send: std::marker::PhantomData<*const ()>,
}

impl Frame {
    pub fn epoch(&self) -> u64 {
        self.epoch
    }
}

/// Start a rule call: handles made with the returned frame's epoch are
/// readable until the frame is dropped.
pub(crate) fn enter(now: Timestamp, shared: Arc<Shared>) -> Frame {
    let epoch = NEXT_EPOCH.fetch_add(1, Ordering::Relaxed);
    let prev_epoch = EPOCH.with(|e| e.replace(epoch));
    let prev_context = CONTEXT.with(|c| c.borrow_mut().replace(CallContext { now, shared }));
    Frame {
        epoch,
        prev_epoch,
        prev_context,
        _not_send: std::marker::PhantomData,
    }
}

impl Drop for Frame {
    fn drop(&mut self) {
        EPOCH.with(|e| e.set(self.prev_epoch));
        let prev = self.prev_context.take();
        CONTEXT.with(|c| *c.borrow_mut() = prev);
    }
}

/// The context of the running call, for helpers.
pub(crate) fn context() -> RhaiResultOf<CallContext> {
    CONTEXT
        .with(|c| c.borrow().clone())
        .ok_or_else(|| "this helper can only be used while a rule runs".into())
}

/// Run `f` on what the running call shares, without cloning it (the
/// variable resolver runs on every variable read); `None` outside a call.
pub(crate) fn with_shared<T>(f: impl FnOnce(&Shared) -> T) -> Option<T> {
    CONTEXT.with(|c| c.borrow().as_ref().map(|c| f(&c.shared)))
}

/// A read-only pointer into the caller's data, valid during one call.
pub struct Borrowed<T> {
    ptr: NonNull<T>,
    epoch: u64,
}

impl<T> Clone for Borrowed<T> {
    fn clone(&self) -> Self {
        *self
    }
}
impl<T> Copy for Borrowed<T> {}

// SAFETY: the pointee is only read (shared `&T`, and `T: Sync`), and only
// on a thread where the handle's epoch is live, i.e. inside the frame that
// holds the borrow (see the module docs).
unsafe impl<T: Sync> Send for Borrowed<T> {}
unsafe impl<T: Sync> Sync for Borrowed<T> {}

impl<T> Borrowed<T> {
    pub(crate) fn new(value: &T, frame: &Frame) -> Self {
        Borrowed {
            ptr: NonNull::from(value),
            epoch: frame.epoch(),
        }
    }

    /// The value, if the call that made this handle is still running here.
    pub fn get(&self) -> RhaiResultOf<&T> {
        if EPOCH.with(Cell::get) != self.epoch {
            return Err("this value belongs to a rule call that has ended; \
                        rules cannot keep values between calls"
                .into());
        }
        // SAFETY: the epoch is live on this thread, so the frame that
        // borrowed the value is on the stack below us and the borrow holds.
        Ok(unsafe { self.ptr.as_ref() })
    }

    fn derive<U>(&self, f: impl FnOnce(&T) -> &U) -> RhaiResultOf<Borrowed<U>> {
        let value = f(self.get()?);
        Ok(Borrowed {
            ptr: NonNull::from(value),
            epoch: self.epoch,
        })
    }
}

/// The case, as `c` in rules (`case` is a reserved word in Rhai).
#[derive(Clone, Copy)]
pub struct CaseView {
    pub(crate) case: Borrowed<Case>,
    pub(crate) stats: Borrowed<CustomerStats>,
}

/// The case's customer, with counts across all their cases.
#[derive(Clone, Copy)]
pub struct CustomerView {
    case: Borrowed<Case>,
    stats: Borrowed<CustomerStats>,
}

pub type EventView = Borrowed<Event>;
pub type PromiseView = Borrowed<Promise>;
pub type OrderView = Borrowed<Order>;
pub type MessageView = Borrowed<Message>;

/// `settings`: the configuration's `rules.settings`, read-only. Read a
/// value as `settings.name` or `settings["name"]`; a missing one is `()`,
/// so `settings.name ?? 3` gives a default.
#[derive(Clone, Debug)]
pub struct SettingsView(pub(crate) Arc<Map>);

/// The teams, skills and agents of the configuration (`directory`).
#[derive(Clone)]
pub struct DirectoryView(pub(crate) Arc<DirectoryDef>);

/// One team of the directory.
#[derive(Clone)]
pub struct TeamView {
    dir: Arc<DirectoryDef>,
    team: usize,
}

/// One agent of the directory.
#[derive(Clone)]
pub struct AgentView {
    dir: Arc<DirectoryDef>,
    team: usize,
    agent: usize,
}

impl TeamView {
    fn def(&self) -> (&str, &TeamDef) {
        let (name, def) = self
            .dir
            .teams
            .get_index(self.team)
            .expect("index from the map");
        (name, def)
    }
}

impl AgentView {
    fn def(&self) -> (&str, &str, &AgentDef) {
        let (team, t) = self
            .dir
            .teams
            .get_index(self.team)
            .expect("index from the map");
        let (id, a) = t.agents.get_index(self.agent).expect("index from the map");
        (team, id, a)
    }
}

fn opt_str(value: Option<&str>) -> Dynamic {
    value.map_or(Dynamic::UNIT, |s| Dynamic::from(s.to_owned()))
}

fn opt<T: Clone + Send + Sync + 'static>(value: Option<T>) -> Dynamic {
    value.map_or(Dynamic::UNIT, Dynamic::from)
}

fn strings<'a>(items: impl IntoIterator<Item = &'a String>) -> Array {
    items
        .into_iter()
        .map(|s| Dynamic::from(s.clone()))
        .collect()
}

fn is_inbound(m: &Message) -> bool {
    m.author == Author::Customer
}

fn channel(s: &str) -> Option<Channel> {
    serde_json::from_value(serde_json::Value::String(s.to_owned())).ok()
}

fn find_team(dir: &Arc<DirectoryDef>, name: &str) -> Dynamic {
    dir.teams.get_index_of(name).map_or(Dynamic::UNIT, |team| {
        Dynamic::from(TeamView {
            dir: dir.clone(),
            team,
        })
    })
}

fn find_agent(dir: &Arc<DirectoryDef>, id: &str) -> Option<AgentView> {
    dir.teams.values().enumerate().find_map(|(team, t)| {
        t.agents.get_index_of(id).map(|agent| AgentView {
            dir: dir.clone(),
            team,
            agent,
        })
    })
}

type R<T> = RhaiResultOf<T>;

/// Register the view types and their properties.
pub(crate) fn register(engine: &mut Engine) {
    register_case(engine);
    register_customer(engine);
    register_event(engine);
    register_promise(engine);
    register_order(engine);
    register_message(engine);
    register_directory(engine);
    register_settings(engine);
}

fn register_settings(engine: &mut Engine) {
    engine.register_type_with_name::<SettingsView>("Settings");
    // Property access (`settings.x`) falls back to this indexer; there is
    // no setter, so a rule cannot change a setting.
    engine
        .register_indexer_get(|s: &mut SettingsView, key: &str| {
            s.0.get(key).cloned().unwrap_or(Dynamic::UNIT)
        })
        .register_fn("get", |s: &mut SettingsView, key: &str| {
            s.0.get(key).cloned().unwrap_or(Dynamic::UNIT)
        })
        .register_fn("contains", |s: &mut SettingsView, key: &str| {
            s.0.contains_key(key)
        })
        .register_fn("keys", |s: &mut SettingsView| -> Array {
            s.0.keys().map(|k| Dynamic::from(k.to_string())).collect()
        })
        .register_fn("to_map", |s: &mut SettingsView| (*s.0).clone())
        .register_fn("to_string", |s: &mut SettingsView| {
            format!("{:?}", s.0.keys().collect::<Vec<_>>())
        });
}

fn register_case(engine: &mut Engine) {
    engine.register_type_with_name::<CaseView>("Case");
    engine
        .register_get("id", |c: &mut CaseView| -> R<String> {
            Ok(c.case.get()?.id.0.clone())
        })
        .register_get("state", |c: &mut CaseView| -> R<String> {
            Ok(c.case.get()?.state.0.clone())
        })
        .register_get("team", |c: &mut CaseView| -> R<Dynamic> {
            Ok(opt_str(c.case.get()?.assignment.team.as_deref()))
        })
        .register_get("skill", |c: &mut CaseView| -> R<Dynamic> {
            Ok(opt_str(c.case.get()?.assignment.skill.as_deref()))
        })
        .register_get("agent", |c: &mut CaseView| -> R<Dynamic> {
            Ok(opt_str(c.case.get()?.assignment.agent.as_deref()))
        })
        .register_get("hops", |c: &mut CaseView| -> R<i64> {
            Ok(i64::from(c.case.get()?.assignment.hops))
        })
        .register_get("urgency", |c: &mut CaseView| -> R<String> {
            Ok(c.case.get()?.urgency.level.as_str().to_owned())
        })
        .register_get("urgency_score", |c: &mut CaseView| -> R<i64> {
            Ok(c.case.get()?.urgency.score)
        })
        .register_get("tags", |c: &mut CaseView| -> R<Array> {
            Ok(strings(&c.case.get()?.tags))
        })
        .register_fn("has_tag", |c: &mut CaseView, tag: &str| -> R<bool> {
            Ok(c.case.get()?.tags.contains(tag))
        })
        .register_get("fields", |c: &mut CaseView| -> R<Map> {
            let case = c.case.get()?;
            Ok(case
                .fields
                .iter()
                .map(|(k, v)| (k.as_str().into(), super::convert::json_to_dynamic(v)))
                .collect())
        })
        .register_fn("field", |c: &mut CaseView, name: &str| -> R<Dynamic> {
            Ok(c.case
                .get()?
                .fields
                .get(name)
                .map_or(Dynamic::UNIT, super::convert::json_to_dynamic))
        })
        .register_get("contacts", |c: &mut CaseView| -> R<i64> {
            Ok(i64::from(c.case.get()?.contacts))
        })
        .register_get("contacts_since_reply", |c: &mut CaseView| -> R<i64> {
            Ok(i64::from(c.case.get()?.contacts_since_reply))
        })
        .register_get("customer", |c: &mut CaseView| -> R<CustomerView> {
            c.case.get()?;
            Ok(CustomerView {
                case: c.case,
                stats: c.stats,
            })
        })
        .register_get("opened_at", |c: &mut CaseView| -> R<Timestamp> {
            Ok(c.case.get()?.opened_at)
        })
        .register_get("updated_at", |c: &mut CaseView| -> R<Timestamp> {
            Ok(c.case.get()?.updated_at)
        })
        .register_get("messages", |c: &mut CaseView| -> R<Array> {
            let case = c.case.get()?;
            (0..case.messages.len())
                .map(|i| c.case.derive(|k| &k.messages[i]).map(Dynamic::from))
                .collect()
        })
        .register_get("message_count", |c: &mut CaseView| -> R<i64> {
            Ok(i64::from(c.case.get()?.message_count))
        })
        .register_get("inbound_count", |c: &mut CaseView| -> R<i64> {
            Ok(i64::from(c.case.get()?.inbound_count))
        })
        .register_get("latest_inbound", |c: &mut CaseView| -> R<Dynamic> {
            let case = c.case.get()?;
            match case.messages.iter().rposition(is_inbound) {
                Some(i) => Ok(Dynamic::from(c.case.derive(|k| &k.messages[i])?)),
                None => Ok(Dynamic::UNIT),
            }
        })
        .register_get("latest_text", |c: &mut CaseView| -> R<String> {
            let case = c.case.get()?;
            Ok(case
                .messages
                .iter()
                .rev()
                .find(|m| is_inbound(m))
                .map(|m| m.text.clone())
                .unwrap_or_default())
        })
        .register_fn(
            "agent_called_since",
            |c: &mut CaseView, since: Timestamp| -> R<bool> {
                Ok(c.case.get()?.last_call_at.is_some_and(|at| at >= since))
            },
        )
        .register_fn(
            "agent_replied_since",
            |c: &mut CaseView, since: Timestamp| -> R<bool> {
                Ok(c.case.get()?.last_reply_at.is_some_and(|at| at >= since))
            },
        )
        .register_get("orders", |c: &mut CaseView| -> R<Array> {
            let case = c.case.get()?;
            (0..case.orders.len())
                .map(|i| c.case.derive(|k| &k.orders[i]).map(Dynamic::from))
                .collect()
        })
        .register_fn("order", |c: &mut CaseView, id: &str| -> R<Dynamic> {
            let case = c.case.get()?;
            match case.orders.iter().position(|o| o.id.as_str() == id) {
                Some(i) => Ok(Dynamic::from(c.case.derive(|k| &k.orders[i])?)),
                None => Ok(Dynamic::UNIT),
            }
        })
        .register_get("promises", |c: &mut CaseView| -> R<Array> {
            let case = c.case.get()?;
            (0..case.promises.len())
                .map(|i| c.case.derive(|k| &k.promises[i]).map(Dynamic::from))
                .collect()
        })
        .register_get("open_promises", |c: &mut CaseView| -> R<Array> {
            let case = c.case.get()?;
            (0..case.promises.len())
                .filter(|i| case.promises[*i].status.is_open())
                .map(|i| c.case.derive(|k| &k.promises[i]).map(Dynamic::from))
                .collect()
        })
        .register_fn("promise", |c: &mut CaseView, id: &str| -> R<Dynamic> {
            let case = c.case.get()?;
            match case.promises.iter().position(|p| p.id.as_str() == id) {
                Some(i) => Ok(Dynamic::from(c.case.derive(|k| &k.promises[i])?)),
                None => Ok(Dynamic::UNIT),
            }
        })
        .register_fn("to_string", |c: &mut CaseView| -> R<String> {
            Ok(format!("case {}", c.case.get()?.id))
        })
        .register_fn("to_debug", |c: &mut CaseView| -> R<String> {
            Ok(format!("case {}", c.case.get()?.id))
        });
}

fn register_customer(engine: &mut Engine) {
    engine.register_type_with_name::<CustomerView>("Customer");
    engine
        .register_get("id", |c: &mut CustomerView| -> R<Dynamic> {
            Ok(opt_str(c.case.get()?.customer.id.as_deref()))
        })
        .register_get("name", |c: &mut CustomerView| -> R<Dynamic> {
            Ok(opt_str(c.case.get()?.customer.name.as_deref()))
        })
        .register_get("email", |c: &mut CustomerView| -> R<Dynamic> {
            Ok(opt_str(c.case.get()?.customer.email.as_deref()))
        })
        .register_get("phone", |c: &mut CustomerView| -> R<Dynamic> {
            Ok(opt_str(c.case.get()?.customer.phone.as_deref()))
        })
        .register_get("preferred_channel", |c: &mut CustomerView| -> R<Dynamic> {
            Ok(opt_str(
                c.case
                    .get()?
                    .customer
                    .preferred_channel
                    .map(Channel::as_str),
            ))
        })
        .register_get("contacts", |c: &mut CustomerView| -> R<i64> {
            Ok(i64::from(c.stats.get()?.contacts))
        })
        .register_fn("contacts_by", |c: &mut CustomerView, ch: &str| -> R<i64> {
            let stats = c.stats.get()?;
            Ok(channel(ch)
                .and_then(|ch| stats.by_channel.get(&ch))
                .map_or(0, |n| i64::from(*n)))
        })
        .register_get("cases", |c: &mut CustomerView| -> R<i64> {
            Ok(i64::from(c.stats.get()?.cases))
        })
        .register_get("open_cases", |c: &mut CustomerView| -> R<i64> {
            Ok(i64::from(c.stats.get()?.open_cases))
        })
        .register_fn("to_string", |c: &mut CustomerView| -> R<String> {
            let customer = &c.case.get()?.customer;
            Ok(customer
                .name
                .clone()
                .or_else(|| customer.key())
                .unwrap_or_else(|| "unknown customer".into()))
        });
}

fn register_event(engine: &mut Engine) {
    engine.register_type_with_name::<EventView>("Event");
    engine
        .register_get("id", |e: &mut EventView| -> R<String> {
            Ok(e.get()?.id.0.clone())
        })
        .register_get("kind", |e: &mut EventView| -> R<String> {
            Ok(e.get()?.kind.0.clone())
        })
        .register_get("namespace", |e: &mut EventView| -> R<String> {
            Ok(e.get()?.kind.namespace().to_owned())
        })
        .register_get("at", |e: &mut EventView| -> R<Timestamp> {
            Ok(e.get()?.at)
        })
        .register_get("text", |e: &mut EventView| -> R<String> {
            Ok(e.get()?.text("text").unwrap_or_default().to_owned())
        })
        .register_get("subject", |e: &mut EventView| -> R<Dynamic> {
            Ok(opt_str(e.get()?.text("subject")))
        })
        .register_get("channel", |e: &mut EventView| -> R<Dynamic> {
            Ok(opt_str(e.get()?.text("channel")))
        })
        .register_get("agent", |e: &mut EventView| -> R<Dynamic> {
            Ok(opt_str(e.get()?.text("agent")))
        })
        .register_get("case", |e: &mut EventView| -> R<Dynamic> {
            Ok(opt_str(e.get()?.case.as_ref().map(|c| c.as_str())))
        })
        .register_get("order", |e: &mut EventView| -> R<Dynamic> {
            Ok(opt_str(e.get()?.order.as_ref().map(|o| o.as_str())))
        })
        .register_get("tracking", |e: &mut EventView| -> R<Dynamic> {
            Ok(opt_str(e.get()?.tracking.as_deref()))
        })
        .register_get("fields", |e: &mut EventView| -> R<Map> {
            Ok(json_map_to_rhai(&e.get()?.data))
        })
        .register_fn("field", |e: &mut EventView, name: &str| -> R<Dynamic> {
            Ok(e.get()?
                .data
                .get(name)
                .map_or(Dynamic::UNIT, super::convert::json_to_dynamic))
        })
        .register_fn("to_string", |e: &mut EventView| -> R<String> {
            Ok(e.get()?.to_string())
        });
}

fn register_promise(engine: &mut Engine) {
    engine.register_type_with_name::<PromiseView>("Promise");
    engine
        .register_get("id", |p: &mut PromiseView| -> R<String> {
            Ok(p.get()?.id.0.clone())
        })
        .register_get("kind", |p: &mut PromiseView| -> R<String> {
            Ok(p.get()?.kind.as_str().to_owned())
        })
        .register_get("date", |p: &mut PromiseView| -> R<Dynamic> {
            Ok(opt(p.get()?.date))
        })
        .register_get("window_from", |p: &mut PromiseView| -> R<Dynamic> {
            Ok(opt(p.get()?.delivery_window().map(|w| w.from)))
        })
        .register_get("window_to", |p: &mut PromiseView| -> R<Dynamic> {
            Ok(opt(p.get()?.delivery_window().map(|w| w.to)))
        })
        .register_get("by", |p: &mut PromiseView| -> R<Dynamic> {
            Ok(opt(p.get()?.by))
        })
        .register_get("due_at", |p: &mut PromiseView| -> R<Dynamic> {
            Ok(opt(p.get()?.due_at()))
        })
        .register_get("order", |p: &mut PromiseView| -> R<Dynamic> {
            Ok(opt_str(p.get()?.order.as_ref().map(|o| o.as_str())))
        })
        .register_get("status", |p: &mut PromiseView| -> R<String> {
            Ok(p.get()?.status.as_str().to_owned())
        })
        .register_get("reason", |p: &mut PromiseView| -> R<String> {
            Ok(p.get()?.reason.clone())
        })
        .register_get("made_at", |p: &mut PromiseView| -> R<Timestamp> {
            Ok(p.get()?.made_at)
        })
        .register_get("made_by", |p: &mut PromiseView| -> R<String> {
            Ok(p.get()?.made_by.clone())
        })
        .register_get("channel", |p: &mut PromiseView| -> R<Dynamic> {
            Ok(opt_str(p.get()?.channel.map(Channel::as_str)))
        })
        .register_get("tz", |p: &mut PromiseView| -> R<String> {
            Ok(p.get()?.tz.name().to_owned())
        })
        .register_get("text", |p: &mut PromiseView| -> R<Dynamic> {
            Ok(opt_str(p.get()?.text.as_deref()))
        })
        .register_get("is_open", |p: &mut PromiseView| -> R<bool> {
            Ok(p.get()?.status.is_open())
        })
        .register_get("is_delivery", |p: &mut PromiseView| -> R<bool> {
            Ok(p.get()?.kind.is_delivery())
        })
        .register_fn("to_string", |p: &mut PromiseView| -> R<String> {
            let p = p.get()?;
            Ok(format!("promise {} ({})", p.id, p.kind))
        });
}

fn register_order(engine: &mut Engine) {
    engine.register_type_with_name::<OrderView>("Order");
    engine
        .register_get("id", |o: &mut OrderView| -> R<String> {
            Ok(o.get()?.id.0.clone())
        })
        .register_get("tracking", |o: &mut OrderView| -> R<Dynamic> {
            Ok(opt_str(o.get()?.tracking.as_deref()))
        })
        .register_get("planned_ship", |o: &mut OrderView| -> R<Dynamic> {
            Ok(opt(o.get()?.planned_ship))
        })
        .register_get("shipped_on", |o: &mut OrderView| -> R<Dynamic> {
            Ok(opt(o.get()?.shipped_on))
        })
        .register_get("carrier_eta", |o: &mut OrderView| -> R<Dynamic> {
            Ok(opt(o.get()?.carrier_eta))
        })
        .register_get("delivered_at", |o: &mut OrderView| -> R<Dynamic> {
            Ok(opt(o.get()?.delivered_at))
        })
        .register_get("held_until", |o: &mut OrderView| -> R<Dynamic> {
            Ok(opt(o.get()?.held_until))
        })
        .register_get("backordered", |o: &mut OrderView| -> R<bool> {
            Ok(o.get()?.backordered)
        })
        .register_get("problem", |o: &mut OrderView| -> R<Dynamic> {
            Ok(opt_str(o.get()?.problem.as_deref()))
        })
        .register_fn("to_string", |o: &mut OrderView| -> R<String> {
            Ok(format!("order {}", o.get()?.id))
        });
}

fn register_message(engine: &mut Engine) {
    engine.register_type_with_name::<MessageView>("Message");
    engine
        .register_get("at", |m: &mut MessageView| -> R<Timestamp> {
            Ok(m.get()?.at)
        })
        .register_get("author", |m: &mut MessageView| -> R<String> {
            let author = match m.get()?.author {
                Author::Customer => "customer",
                Author::Agent => "agent",
                Author::Colleague => "colleague",
                Author::System => "system",
            };
            Ok(author.to_owned())
        })
        .register_get("from", |m: &mut MessageView| -> R<Dynamic> {
            Ok(opt_str(m.get()?.from.as_deref()))
        })
        .register_get("channel", |m: &mut MessageView| -> R<String> {
            Ok(m.get()?.channel.as_str().to_owned())
        })
        .register_get("subject", |m: &mut MessageView| -> R<Dynamic> {
            Ok(opt_str(m.get()?.subject.as_deref()))
        })
        .register_get("text", |m: &mut MessageView| -> R<String> {
            Ok(m.get()?.text.clone())
        })
        .register_get("is_inbound", |m: &mut MessageView| -> R<bool> {
            Ok(is_inbound(m.get()?))
        })
        .register_fn("to_string", |m: &mut MessageView| -> R<String> {
            Ok(m.get()?.text.clone())
        });
}

fn register_directory(engine: &mut Engine) {
    engine.register_type_with_name::<DirectoryView>("Directory");
    engine
        .register_get("fallback", |d: &mut DirectoryView| d.0.fallback.clone())
        .register_get("teams", |d: &mut DirectoryView| strings(d.0.teams.keys()))
        .register_fn("has_team", |d: &mut DirectoryView, name: &str| {
            d.0.teams.contains_key(name)
        })
        .register_fn("team", |d: &mut DirectoryView, name: &str| {
            find_team(&d.0, name)
        })
        .register_fn("team_for_skill", |d: &mut DirectoryView, skill: &str| {
            opt_str(
                d.0.teams
                    .iter()
                    .find(|(_, t)| t.skills.iter().any(|s| s == skill))
                    .map(|(name, _)| name.as_str()),
            )
        })
        .register_fn("agents_with_skill", |d: &mut DirectoryView, skill: &str| {
            let names = d.0.teams.values().flat_map(|t| {
                t.agents
                    .iter()
                    .filter(|(_, a)| a.skills.iter().any(|s| s == skill))
                    .map(|(id, _)| id)
            });
            strings(names)
        })
        .register_fn("agent", |d: &mut DirectoryView, id: &str| {
            find_agent(&d.0, id).map_or(Dynamic::UNIT, Dynamic::from)
        })
        .register_fn("team_of", |d: &mut DirectoryView, id: &str| {
            find_agent(&d.0, id).map_or(Dynamic::UNIT, |a| Dynamic::from(a.def().0.to_owned()))
        })
        .register_fn("to_string", |_: &mut DirectoryView| "directory".to_owned());

    engine.register_type_with_name::<TeamView>("Team");
    engine
        .register_get("name", |t: &mut TeamView| t.def().0.to_owned())
        .register_get("skills", |t: &mut TeamView| strings(&t.def().1.skills))
        .register_fn("has_skill", |t: &mut TeamView, skill: &str| {
            t.def().1.skills.iter().any(|s| s == skill)
        })
        .register_get("agents", |t: &mut TeamView| {
            strings(t.def().1.agents.keys())
        })
        .register_get("channel", |t: &mut TeamView| {
            opt_str(t.def().1.channel.map(Channel::as_str))
        })
        .register_get("email", |t: &mut TeamView| {
            opt_str(t.def().1.email.as_deref())
        })
        .register_get("phone", |t: &mut TeamView| {
            opt_str(t.def().1.phone.as_deref())
        })
        .register_get("supervisor", |t: &mut TeamView| {
            opt_str(t.def().1.supervisor.as_deref())
        })
        .register_get("calendar", |t: &mut TeamView| {
            opt_str(t.def().1.calendar.as_deref())
        })
        .register_fn("to_string", |t: &mut TeamView| t.def().0.to_owned());

    engine.register_type_with_name::<AgentView>("Agent");
    engine
        .register_get("id", |a: &mut AgentView| a.def().1.to_owned())
        .register_get("name", |a: &mut AgentView| {
            let (_, id, def) = a.def();
            def.name.clone().unwrap_or_else(|| id.to_owned())
        })
        .register_get("team", |a: &mut AgentView| a.def().0.to_owned())
        .register_get("skills", |a: &mut AgentView| strings(&a.def().2.skills))
        .register_get("channel", |a: &mut AgentView| {
            opt_str(a.def().2.channel.map(Channel::as_str))
        })
        .register_get("email", |a: &mut AgentView| {
            opt_str(a.def().2.email.as_deref())
        })
        .register_get("phone", |a: &mut AgentView| {
            opt_str(a.def().2.phone.as_deref())
        })
        .register_fn("to_string", |a: &mut AgentView| a.def().1.to_owned());
}

/// Make an error a rule can raise from a helper.
pub(crate) fn script_error(message: impl Into<String>) -> Box<EvalAltResult> {
    let message: String = message.into();
    message.into()
}
