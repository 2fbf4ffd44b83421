//! `casework serve`: events over HTTP, answered only once they are
//! durable.
//!
//! Routes (all answers are JSON):
//! - `POST /events`: one event (a JSON object) or a batch (a JSON array),
//!   in the format of `casework run`'s lines. The whole request is handled
//!   with ONE [`Engine::handle_batch`] (one transaction, one disk sync) and
//!   answered after it committed. The body is `{"events": [{id, status,
//!   case?, error?}]}` with status `accepted`, `duplicate` or `rejected`.
//!   One event: 202 accepted, 409 duplicate (the id is already stored),
//!   400 rejected. A batch: 202 when every event was accepted or a
//!   duplicate, otherwise 400 — and the body still lists each event: the
//!   accepted ones ARE stored (never lost, never to be resent), only the
//!   rejected ones need fixing. A plain 400 rather than 207 because most
//!   clients treat 2xx as "all done" and would drop the rejected events.
//! - `POST /webhooks/{plugin}`: the body goes to the plugin's
//!   [`Plugin::webhook`](crate::plugin::Plugin::webhook); the events it
//!   returns are handled as a batch of `POST /events`. 404 when no ready
//!   plugin has that name or it takes no webhooks; 400 when it refuses the
//!   payload. A plugin configured with a `webhook_signature` first has the
//!   signature of the raw body checked
//!   ([`WebhookVerifier`](crate::plugin::WebhookVerifier)): 401 when it is
//!   missing or wrong, 503 when the secret's environment variable is not
//!   set where the server runs; in both cases nothing is stored.
//! - `GET /health`: store path, events stored, outbox counts, timers
//!   waiting, the rule-set hash.
//! - `GET /cases/{id}`: the case's explanation (404 if unknown).
//! - The ops console's pages and `/metrics` ([`crate::console`]).
//!
//! Off loopback every route asks for the token ([`Guard`]) except a
//! webhook whose plugin checks its own signature (a carrier cannot send
//! our token); 401 without it.
//!
//! What is stored as rejected: events the engine refuses (unknown kind,
//! unknown case, missing fields), as `casework run` does. A body that is
//! not JSON, or a JSON value that is not an event at all (no `at`, no
//! `kind`), is answered 400 with the parse error and NOT stored: the
//! sender hears of it at once, and a server on a network should not let
//! anyone fill its database with garbage.
//!
//! Why a blocking server ([`tiny_http`]) and one engine behind a mutex:
//! the engine is single-writer by design (its indexes follow the store),
//! and every request ends in a SQLite commit, so async I/O would buy
//! nothing but a runtime. A few threads take requests and read their
//! bodies; they queue for the engine, and group commit comes from batches
//! in one request. A background thread fires timers
//! and runs the outbox, locking the engine to claim actions and to record
//! their outcomes but not while a plugin works.

use std::collections::BTreeMap;
use std::io::Read;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError, mpsc};
use std::time::Duration;

use casework_core::case::CaseId;
use casework_core::clock::Clock;
use casework_core::diagnostic::{Diagnostic, Diagnostics};
use casework_core::engine::{Engine, EngineError, Outcome, Pack};
use casework_core::event::{Event, EventError};
use casework_core::plugin::{Done, PluginError};
use casework_core::store::{OutboxEntry, Store, StoreError};
use serde_json::{Value, json};

use crate::cluster::{Acknowledged, SharedLeaseView};
use crate::console::{Console, Guard, Page};
use crate::outbox::{OutboxRunner, Recorded, RunnerReport};

/// The default limit on a request body: 1 MiB, a few thousand events.
pub const MAX_BODY: usize = 1 << 20;

/// An HTTP answer: status code and JSON body.
#[derive(Clone, Debug, PartialEq)]
pub struct Reply {
    pub status: u16,
    pub body: Value,
}

impl Reply {
    fn new(status: u16, body: Value) -> Reply {
        Reply { status, body }
    }

    fn error(status: u16, message: impl Into<String>) -> Reply {
        Reply::new(status, json!({ "error": message.into() }))
    }
}

/// The server's state: the engine and the outbox runner, shared by the
/// request loop and the background thread.
pub struct App {
    engine: Mutex<Engine>,
    runner: OutboxRunner,
    store_path: String,
    max_body: usize,
    console: Console,
    /// Set for a worker sharing a PostgreSQL database: events go through
    /// the shared inbox ([`crate::cluster`]).
    shared: Option<Shared>,
}

/// What a worker sharing a PostgreSQL database holds besides the engine:
/// its view of its leases, and connections of their own for the request
/// threads (acknowledging into the inbox) and for the outbox (claiming and
/// completing), so that neither waits while the engine handles a batch.
struct Shared {
    view: SharedLeaseView,
    pack: Arc<Pack>,
    clock: Arc<dyn Clock>,
    requests: Mutex<Box<dyn Store>>,
    outbox: Mutex<Box<dyn Store>>,
}

/// What one background pass did.
#[derive(Debug, Default)]
pub struct Pass {
    pub timers: usize,
    /// The round of timers was full: more may be due at once.
    pub more_timers: bool,
    pub outbox: RunnerReport,
}

/// One event of a request, as parsed.
enum Item {
    Event(Event),
    /// Not an event: the id it seemed to have, and why.
    Bad(String, String),
}

/// One of a shared worker's connections. A panic while one was held
/// left no half-written state behind (the database rolled back), so the
/// connection is used again.
fn lock_store(store: &Mutex<Box<dyn Store>>) -> MutexGuard<'_, Box<dyn Store>> {
    store.lock().unwrap_or_else(PoisonError::into_inner)
}

impl App {
    /// `store_path` is only shown (in `/health`).
    pub fn new(engine: Engine, runner: OutboxRunner, store_path: impl Into<String>) -> App {
        App {
            engine: Mutex::new(engine),
            runner,
            store_path: store_path.into(),
            max_body: MAX_BODY,
            console: Console::new(Guard::open()),
            shared: None,
        }
    }

    /// A worker among several on one database: `POST /events` writes to
    /// the shared inbox and [`inbox_pass`](Self::inbox_pass) handles the
    /// inbox of the partitions this worker holds.
    ///
    /// `requests` and `outbox` are connections of this worker's own to
    /// the same database ([`PgStore::sibling`](casework_core::store::postgres::PgStore::sibling)).
    pub fn shared(
        mut self,
        view: SharedLeaseView,
        requests: Box<dyn Store>,
        outbox: Box<dyn Store>,
    ) -> App {
        let engine = self
            .engine
            .get_mut()
            .unwrap_or_else(PoisonError::into_inner);
        let (pack, clock) = (engine.shared_pack(), engine.shared_clock());
        self.shared = Some(Shared {
            view,
            pack,
            clock,
            requests: Mutex::new(requests),
            outbox: Mutex::new(outbox),
        });
        self
    }

    /// Who may call: [`Guard::token`] off loopback. Loopback needs none.
    pub fn guard(mut self, guard: Guard) -> App {
        self.console.guard = guard;
        self
    }

    /// The console (its metrics and live-update hub).
    pub fn console(&self) -> &Console {
        &self.console
    }

    /// Answer a console request (a page, an asset, `/metrics`) with the
    /// engine locked while its data is gathered.
    pub fn page(&self, method: &str, url: &str, headers: &[(String, String)], body: &[u8]) -> Page {
        match self.lock() {
            Ok(engine) => self.console.handle(&engine, method, url, headers, body),
            Err(reply) => self
                .console
                .error(reply.status, reply.body["error"].as_str().unwrap_or("")),
        }
    }

    /// Refuse bodies longer than `bytes` with 413.
    pub fn max_body(mut self, bytes: usize) -> App {
        self.max_body = bytes;
        self
    }

    pub fn body_limit(&self) -> usize {
        self.max_body
    }

    fn lock(&self) -> Result<MutexGuard<'_, Engine>, Reply> {
        // A panic while holding the lock may have left the engine's
        // indexes half updated: refuse rather than guess.
        self.engine.lock().map_err(|_| {
            Reply::error(
                500,
                "the server failed while handling an earlier request; restart it (the store is intact)",
            )
        })
    }

    /// Answer one request. `path` may carry a query string (ignored).
    pub fn handle(&self, method: &str, path: &str, body: &[u8]) -> Reply {
        self.handle_with_headers(method, path, &[], body)
    }

    /// Answer one request with its headers (name, value); names compare
    /// case-insensitively. Only webhooks read headers: their signature.
    pub fn handle_with_headers(
        &self,
        method: &str,
        path: &str,
        headers: &[(String, String)],
        body: &[u8],
    ) -> Reply {
        if body.len() > self.max_body {
            return too_large(self.max_body);
        }
        let path = path.split('?').next().unwrap_or(path);
        let segments: Vec<&str> = path.trim_matches('/').split('/').collect();
        if !self.console.guard.allows(headers) && !self.signed_webhook(method, &segments) {
            return Reply::error(
                401,
                "this server asks for its token: send `Authorization: Bearer TOKEN` (the value of the variable named by `serve --token-env`)",
            );
        }
        let result = match (method, segments.as_slice()) {
            ("POST", ["events"]) => self.post_events(body),
            ("POST", ["webhooks", name]) => self.webhook(&percent_decode(name), headers, body),
            ("GET", ["health"]) => self.health(),
            ("GET", ["cases", id]) => self.case(&percent_decode(id)),
            (_, ["events"] | ["webhooks", _]) => Err(Reply::error(405, "use POST")),
            (_, ["health"] | ["cases", _]) => Err(Reply::error(405, "use GET")),
            _ => Err(Reply::error(
                404,
                format!(
                    "no route {method} {path}; there are POST /events, POST /webhooks/{{plugin}}, GET /health and GET /cases/{{id}}"
                ),
            )),
        };
        result.unwrap_or_else(|r| r)
    }

    /// A webhook whose plugin verifies its own signature: it needs no
    /// token (the sender could not know it).
    fn signed_webhook(&self, method: &str, segments: &[&str]) -> bool {
        match (method, segments) {
            ("POST", ["webhooks", name]) => self
                .runner
                .plugins()
                .webhook_verifier(&percent_decode(name))
                .is_some(),
            _ => false,
        }
    }

    fn post_events(&self, body: &[u8]) -> Result<Reply, Reply> {
        let value: Value = serde_json::from_slice(body)
            .map_err(|e| Reply::error(400, format!("malformed JSON: {e}")))?;
        let (values, single) = match value {
            Value::Array(a) => (a, false),
            v @ Value::Object(_) => (vec![v], true),
            _ => {
                return Err(Reply::error(
                    400,
                    "the body must be one event (a JSON object) or a batch (a JSON array of events)",
                ));
            }
        };
        let items = values.into_iter().enumerate().map(parse_item).collect();
        self.accept(items, single)
    }

    fn webhook(
        &self,
        name: &str,
        headers: &[(String, String)],
        body: &[u8],
    ) -> Result<Reply, Reply> {
        let events = {
            // No lock: parsing a payload needs only the plugin.
            let plugins = self.runner.plugins();
            let Some(plugin) = plugins.get(name) else {
                let why = match plugins.unavailable().get(name) {
                    Some(u) => {
                        format!("plugin `{name}` (kind {}) cannot run: {}", u.kind, u.reason)
                    }
                    None => format!("no plugin named `{name}` is configured"),
                };
                return Err(Reply::error(404, why));
            };
            if let Some(verifier) = plugins.webhook_verifier(name) {
                let value = headers
                    .iter()
                    .find(|(h, _)| h.eq_ignore_ascii_case(verifier.header()))
                    .map(|(_, v)| v.as_str());
                // The engine's clock, for timestamped signatures; held
                // only to read it.
                let now = self.lock()?.now();
                if let Err(e) = verifier.verify(value, body, now) {
                    let status = if e.is_unavailable() { 503 } else { 401 };
                    return Err(Reply::error(
                        status,
                        format!("webhook for plugin `{name}` refused, nothing was stored: {e}"),
                    ));
                }
            }
            match plugin.webhook(body) {
                None => {
                    return Err(Reply::error(
                        404,
                        format!("plugin `{name}` takes no webhooks"),
                    ));
                }
                Some(Err(e)) => return Err(Reply::error(400, e.to_string())),
                Some(Ok(events)) => events,
            }
        };
        self.accept(events.into_iter().map(Item::Event).collect(), false)
    }

    /// Handle the events of one request in one transaction and say what
    /// became of each.
    fn accept(&self, items: Vec<Item>, single: bool) -> Result<Reply, Reply> {
        let events: Vec<Event> = items
            .iter()
            .filter_map(|i| match i {
                Item::Event(e) => Some(e.clone()),
                Item::Bad(..) => None,
            })
            .collect();
        let kinds: Vec<String> = events.iter().map(|e| e.kind.0.clone()).collect();
        let results = if events.is_empty() {
            Vec::new()
        } else if let Some(shared) = &self.shared {
            let now = shared.clock.now();
            let mut store = lock_store(&shared.requests);
            crate::cluster::acknowledge(&shared.pack, &mut **store, now, events)
                .map_err(|e| {
                    Reply::error(
                        503,
                        format!("{e}; none of these events were kept: send them again"),
                    )
                })?
                .into_iter()
                .map(|a| match a {
                    Acknowledged::Queued(case) => Ok(Outcome::Handled {
                        case,
                        decisions: Vec::new(),
                        actions: Vec::new(),
                    }),
                    Acknowledged::Duplicate => Ok(Outcome::Duplicate),
                    Acknowledged::Rejected(e) => Err(e),
                })
                .collect()
        } else {
            let mut engine = self.lock()?;
            let started = std::time::Instant::now();
            let results = engine.handle_batch(events).map_err(|e| {
                Reply::error(
                    503,
                    format!("{e}; none of these events were kept: send them again"),
                )
            })?;
            self.console.metrics.handled_in(started.elapsed());
            self.observe(&kinds, &results);
            results
        };
        let mut results = results.into_iter();
        let mut list = Vec::with_capacity(items.len());
        let (mut rejected, mut duplicate) = (0, 0);
        for item in &items {
            let entry = match item {
                Item::Bad(id, error) => {
                    rejected += 1;
                    json!({ "id": id, "status": "rejected", "error": error })
                }
                Item::Event(e) => match results.next() {
                    Some(Ok(Outcome::Handled { case, .. })) => {
                        json!({ "id": e.id.0, "status": "accepted", "case": case.0 })
                    }
                    Some(Ok(Outcome::Duplicate)) => {
                        duplicate += 1;
                        json!({ "id": e.id.0, "status": "duplicate" })
                    }
                    Some(Err(err)) => {
                        rejected += 1;
                        json!({ "id": e.id.0, "status": "rejected", "error": err.to_string() })
                    }
                    None => {
                        return Err(Reply::error(
                            500,
                            "the engine gave fewer results than events",
                        ));
                    }
                },
            };
            list.push(entry);
        }
        let status = match (single, rejected, duplicate) {
            (_, r, _) if r > 0 => 400,
            (true, _, d) if d > 0 => 409,
            _ => 202,
        };
        let mut body = json!({ "events": list });
        if single && status != 202 {
            // The one event's reason at the top too, where clients look.
            body["error"] = match list[0].get("error") {
                Some(e) => e.clone(),
                None => json!(format!(
                    "event {} is already stored",
                    list[0]["id"].as_str().unwrap_or("?")
                )),
            };
        }
        Ok(Reply::new(status, body))
    }

    /// Count what a batch did and tell the console's followers which
    /// cases changed.
    fn observe(&self, kinds: &[String], results: &[Result<Outcome, EventError>]) {
        let metrics = &self.console.metrics;
        let mut changed = Vec::new();
        for (kind, result) in kinds.iter().zip(results) {
            match result {
                Ok(Outcome::Handled {
                    case, decisions, ..
                }) => {
                    metrics.event(kind, "accepted");
                    metrics.decisions(decisions);
                    changed.push(case.0.clone());
                }
                Ok(Outcome::Duplicate) => metrics.event(kind, "duplicate"),
                Err(_) => metrics.event(kind, "rejected"),
            }
        }
        self.console.hub.changed(changed);
    }

    fn health(&self) -> Result<Reply, Reply> {
        let mut engine = self.lock()?;
        let cluster = match &self.shared {
            Some(shared) => {
                crate::cluster::health(&mut engine, &shared.view).map_err(store_error)?
            }
            None => Value::Null,
        };
        let store = engine.store();
        let events = store.event_count().map_err(store_error)?;
        let cases = store.case_count().map_err(store_error)?;
        let counts = store.outbox_counts().map_err(store_error)?;
        let rejected = store.rejected_count().map_err(store_error)?;
        let timers = store.timer_count().map_err(store_error)?;
        let unavailable: BTreeMap<&String, &str> = self
            .runner
            .plugins()
            .unavailable()
            .iter()
            .map(|(n, u)| (n, u.reason.as_str()))
            .collect();
        Ok(Reply::new(
            200,
            json!({
                "status": "ok",
                "store": self.store_path,
                "events": events,
                "rejected": rejected,
                "cases": cases,
                "outbox": counts,
                "timers": timers,
                "rules_hash": engine.rules().current().hash(),
                "plugins": { "ready": self.runner.plugins().ready(), "unavailable": unavailable },
                "cluster": cluster,
            }),
        ))
    }

    fn case(&self, id: &str) -> Result<Reply, Reply> {
        let engine = self.lock()?;
        match engine.explain(&CaseId(id.to_owned())) {
            Ok(explanation) => Ok(Reply::new(200, json!(explanation))),
            Err(EngineError::UnknownCase(_)) => {
                Err(Reply::error(404, format!("no case {id} in the store")))
            }
            Err(e) => Err(Reply::error(503, e.to_string())),
        }
    }

    /// Fire the timers due now, then one outbox pass. The engine is
    /// locked to claim and to record each outcome, not while a plugin
    /// works, so requests are not held up by a slow warehouse.
    /// Hot reload: read the rule files again and, if any changed, compile
    /// them and swap the new version in between two events (see
    /// [`crate::reload_rules`]); a file that does not compile is refused
    /// and the version in force keeps running.
    pub fn reload_rules(&self) -> Result<crate::Reload, Diagnostics> {
        let engine = self.lock().map_err(|r| {
            Diagnostics(vec![Diagnostic::error(
                "serve::failed",
                r.body["error"].as_str().unwrap_or("the server failed"),
            )])
        })?;
        crate::reload_rules(&engine)
    }

    /// The version of the rules in force.
    pub fn rules_version(&self) -> Option<String> {
        let engine = self.lock().ok()?;
        Some(engine.rules().current().hash().to_owned())
    }

    /// Timers (one round) and the outbox (one claim): what a background
    /// loop calls over and over.
    ///
    /// A worker on PostgreSQL fires its timers on the inbox thread
    /// instead ([`timer_pass`](Self::timer_pass)): they need the engine,
    /// which the inbox holds for a batch at a time, and the outbox must
    /// not wait for that.
    pub fn background_pass(&self) -> Result<Pass, String> {
        let mut pass = Pass::default();
        let mut changed = match self.shared {
            Some(_) => Vec::new(),
            None => self.fire_timers(&mut pass)?,
        };
        // The plugins work without the engine; their outcomes are
        // recorded together, in one transaction.
        let attempts: Vec<_> = (self.claim()?.into_iter())
            .map(|entry| {
                let result = self.runner.execute(&entry);
                (entry, result)
            })
            .collect();
        let names: Vec<(String, String)> = (attempts.iter())
            .map(|(e, _)| (e.action.plugin().to_owned(), e.action.case.0.clone()))
            .collect();
        let recorded = self.record(attempts, &mut pass.outbox)?;
        for ((plugin, case), r) in names.into_iter().zip(recorded) {
            self.console.metrics.action(&plugin, r.name());
            changed.push(case);
        }
        self.console.hub.changed(changed);
        Ok(pass)
    }

    /// Fire one round of due timers (a worker on PostgreSQL does this on
    /// its inbox thread, between batches).
    pub fn timer_pass(&self) -> Result<Pass, String> {
        let mut pass = Pass::default();
        let changed = self.fire_timers(&mut pass)?;
        self.console.hub.changed(changed);
        Ok(pass)
    }

    /// The engine for a background pass, whose errors are text.
    fn engine(&self) -> Result<MutexGuard<'_, Engine>, String> {
        self.lock().map_err(|r| r.body["error"].to_string())
    }

    /// One round of due timers (a backlog of overdue ones, after an
    /// outage, goes round by round, with requests served between): the
    /// cases they changed.
    fn fire_timers(&self, pass: &mut Pass) -> Result<Vec<String>, String> {
        let mut engine = self.engine()?;
        let now = engine.now();
        let round = engine.tick_round(now).map_err(|e| e.to_string())?;
        let metrics = &self.console.metrics;
        pass.timers = round.outcomes.len();
        pass.more_timers = round.more;
        metrics.timers_fired(round.outcomes.len());
        let mut changed = Vec::new();
        for outcome in &round.outcomes {
            if let Outcome::Handled {
                case, decisions, ..
            } = outcome
            {
                metrics.decisions(decisions);
                changed.push(case.0.clone());
            }
        }
        Ok(changed)
    }

    /// Due actions, leased to this worker: a worker on PostgreSQL claims
    /// on the outbox's own connection, without the engine.
    fn claim(&self) -> Result<Vec<OutboxEntry>, String> {
        let claimed = match &self.shared {
            Some(shared) => self.runner.claim_from(&mut **lock_store(&shared.outbox)),
            None => self.runner.claim(&mut *self.engine()?),
        };
        claimed.map_err(|e| e.to_string())
    }

    /// Record the pass's attempts. A worker on PostgreSQL completes them
    /// on the outbox's connection and takes the engine only for the
    /// plugins' events.
    fn record(
        &self,
        attempts: Vec<(OutboxEntry, Result<Done, PluginError>)>,
        report: &mut RunnerReport,
    ) -> Result<Vec<Recorded>, String> {
        let recorded = match &self.shared {
            Some(shared) => {
                let mut feed = |events| {
                    let mut engine = self.engine().map_err(StoreError::Backend)?;
                    engine.handle_batch(events)
                };
                (self.runner.settle(&mut feed, attempts, report)).and_then(|settled| {
                    let mut store = lock_store(&shared.outbox);
                    self.runner.complete(&mut **store, settled, report)
                })
            }
            None => (self.runner).record_all(&mut *self.engine()?, attempts, report),
        };
        recorded.map_err(|e| e.to_string())
    }

    /// Handle the inbox of the partitions this worker holds (one batch):
    /// how many events it took. A worker on PostgreSQL runs this on a
    /// thread of its own, as a worker on SQLite handles events on the
    /// request threads, so timers and the outbox go on beside it.
    pub fn inbox_pass(&self) -> Result<usize, String> {
        if self.shared.is_none() {
            return Ok(0);
        }
        let mut engine = self.engine()?;
        let started = std::time::Instant::now();
        let drained = crate::cluster::drain(&mut engine).map_err(|e| e.to_string())?;
        if let Some(fenced) = &drained.fenced {
            eprintln!("inbox: {fenced}");
            return Ok(0);
        }
        if drained.taken > 0 {
            self.console.metrics.handled_in(started.elapsed());
        }
        let (kinds, results): (Vec<String>, Vec<_>) = drained.results.into_iter().unzip();
        self.observe(&kinds, &results);
        Ok(drained.taken)
    }

    /// Answer requests from `server` on `threads` threads until `stop`
    /// is set (checked every 100 ms), then give the requests in progress
    /// up to `grace` to finish. Returns false if some did not (a client
    /// stalled in the middle of its body): their events were not handled,
    /// so exiting is safe.
    ///
    /// Several threads because tiny_http reads a request's body on the
    /// thread that took the request, with no timeout: one client that
    /// stalls mid-body holds its thread, not the server. The engine is
    /// locked only once a body is complete.
    pub fn serve(
        self: &Arc<Self>,
        server: Arc<tiny_http::Server>,
        stop: Arc<AtomicBool>,
        threads: usize,
        grace: Duration,
    ) -> std::io::Result<bool> {
        let (done, all_done) = mpsc::channel::<()>();
        for n in 0..threads.max(1) {
            let (app, server, stop, done) =
                (self.clone(), server.clone(), stop.clone(), done.clone());
            std::thread::Builder::new()
                .name(format!("http-{n}"))
                .spawn(move || {
                    // Dropped when the thread ends: that is the signal.
                    let _done = done;
                    while !stop.load(Ordering::SeqCst) {
                        match server.recv_timeout(Duration::from_millis(100)) {
                            Ok(Some(request)) => app.respond_until(request, stop.clone()),
                            Ok(None) => {}
                            Err(e) => {
                                tracing::warn!("cannot take a request: {e}");
                                std::thread::sleep(Duration::from_millis(100));
                            }
                        }
                    }
                })?;
        }
        drop(done);
        while !stop.load(Ordering::SeqCst) {
            std::thread::sleep(Duration::from_millis(100));
        }
        Ok(matches!(
            all_done.recv_timeout(grace),
            Err(mpsc::RecvTimeoutError::Disconnected)
        ))
    }

    /// Follow live updates: the event stream of `/live`, on a thread of
    /// its own (it stays open), at most [`crate::console::Hub::MAX_CLIENTS`].
    fn follow(
        self: &Arc<Self>,
        request: tiny_http::Request,
        headers: &[(String, String)],
        stop: Arc<AtomicBool>,
    ) {
        let refuse = |request: tiny_http::Request, status: u16, text: &str| {
            let response = tiny_http::Response::from_string(text).with_status_code(status);
            if let Err(e) = request.respond(response) {
                tracing::warn!("cannot send the answer: {e}");
            }
        };
        if !self.console.guard.allows(headers) {
            return refuse(request, 401, "sign in first\n");
        }
        let Some(follower) = self.console.hub.join() else {
            return refuse(
                request,
                503,
                "too many live pages open; the pages still work, reload them by hand\n",
            );
        };
        let spawned = std::thread::Builder::new()
            .name("live".into())
            .spawn(move || {
                let head = "HTTP/1.1 200 OK\r\nContent-Type: text/event-stream; charset=utf-8\r\nCache-Control: no-store\r\nX-Content-Type-Options: nosniff\r\nConnection: close\r\n\r\n";
                follower.stream(request.into_writer(), head, &stop);
            });
        if let Err(e) = spawned {
            tracing::warn!("cannot start a live-update thread: {e}");
        }
    }

    /// Read the body (within the limit), answer, and send the answer.
    pub fn respond(self: &Arc<Self>, request: tiny_http::Request) {
        self.respond_until(request, Arc::new(AtomicBool::new(false)));
    }

    fn respond_until(self: &Arc<Self>, mut request: tiny_http::Request, stop: Arc<AtomicBool>) {
        let url = request.url().to_owned();
        if Console::owns(&url) {
            let method = request.method().as_str().to_owned();
            let headers = headers_of(&request);
            if url.split('?').next() == Some("/live") {
                return self.follow(request, &headers, stop);
            }
            let mut body = Vec::new();
            let limit = self.max_body as u64;
            if let Err(e) = request.as_reader().take(limit).read_to_end(&mut body) {
                tracing::warn!("cannot read a console request: {e}");
            }
            let page = self.page(&method, &url, &headers, &body);
            return send_page(request, page);
        }
        let reply = if request.body_length().is_some_and(|n| n > self.max_body) {
            too_large(self.max_body)
        } else {
            let mut body = Vec::new();
            let limit = self.max_body as u64 + 1;
            match request.as_reader().take(limit).read_to_end(&mut body) {
                Err(e) => Reply::error(400, format!("cannot read the body: {e}")),
                Ok(_) if body.len() > self.max_body => too_large(self.max_body),
                Ok(_) => {
                    let method = request.method().as_str().to_owned();
                    let headers = headers_of(&request);
                    self.handle_with_headers(&method, &url, &headers, &body)
                }
            }
        };
        let text = serde_json::to_string(&reply.body).unwrap_or_else(|_| "{}".into());
        let mut response = tiny_http::Response::from_string(text).with_status_code(reply.status);
        if let Ok(h) = tiny_http::Header::from_bytes("Content-Type", "application/json") {
            response = response.with_header(h);
        }
        if let Err(e) = request.respond(response) {
            tracing::warn!("cannot send the answer: {e}");
        }
    }
}

fn headers_of(request: &tiny_http::Request) -> Vec<(String, String)> {
    request
        .headers()
        .iter()
        .map(|h| {
            (
                h.field.as_str().as_str().to_owned(),
                h.value.as_str().to_owned(),
            )
        })
        .collect()
}

/// Send a console page with the headers every page carries: the CSP, no
/// sniffing, no referrer, no caching of customer data.
fn send_page(request: tiny_http::Request, page: Page) {
    let mut response = tiny_http::Response::from_string(page.body).with_status_code(page.status);
    let mut headers: Vec<(String, String)> = vec![
        ("Content-Type".into(), page.content_type.into()),
        ("Content-Security-Policy".into(), crate::console::CSP.into()),
        ("X-Content-Type-Options".into(), "nosniff".into()),
        ("Referrer-Policy".into(), "no-referrer".into()),
        ("X-Frame-Options".into(), "DENY".into()),
    ];
    if !page.headers.iter().any(|(h, _)| h == "Cache-Control") {
        headers.push(("Cache-Control".into(), "no-store".into()));
    }
    headers.extend(page.headers);
    for (name, value) in headers {
        if let Ok(h) = tiny_http::Header::from_bytes(name.as_bytes(), value.as_bytes()) {
            response = response.with_header(h);
        }
    }
    if let Err(e) = request.respond(response) {
        tracing::warn!("cannot send the answer: {e}");
    }
}

fn too_large(limit: usize) -> Reply {
    Reply::error(
        413,
        format!("the body is larger than {limit} bytes; send the events in smaller batches"),
    )
}

fn store_error(e: StoreError) -> Reply {
    Reply::error(503, e.to_string())
}

/// A JSON value of a request as an event, or why it is not one.
fn parse_item((n, value): (usize, Value)) -> Item {
    let id = value
        .get("id")
        .and_then(Value::as_str)
        .map_or_else(|| format!("#{n}"), str::to_owned);
    match serde_json::from_value::<Event>(value) {
        Ok(e) => Item::Event(e),
        Err(e) => {
            let error = EventError::Syntax {
                event: id.as_str().into(),
                message: e.to_string(),
            };
            Item::Bad(id, error.to_string())
        }
    }
}

/// Decode `%XX` escapes of a path segment (case ids may hold any text).
pub(crate) fn percent_decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let hex = |b: u8| (b as char).to_digit(16);
        if bytes[i] == b'%'
            && i + 2 < bytes.len()
            && let (Some(h), Some(l)) = (hex(bytes[i + 1]), hex(bytes[i + 2]))
        {
            out.push((h * 16 + l) as u8);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

#[cfg(test)]
mod tests {
    use super::percent_decode;

    #[test]
    fn path_segments_are_percent_decoded() {
        assert_eq!(percent_decode("C-1"), "C-1");
        assert_eq!(percent_decode("C%2F1%20x"), "C/1 x");
        assert_eq!(percent_decode("bad%2"), "bad%2");
        assert_eq!(percent_decode("%zz"), "%zz");
    }
}
