//! `casework mail [CONFIG.yaml] [--db PATH] (FILE... | --maildir DIR | -)`:
//! feed inbound e-mail (RFC 5322 messages) through the engine as
//! `email.received` events, durably, and say where each landed.
//!
//! Three sources, one path: message files; a Maildir (`new/`, and the
//! entries of `cur/` not flagged seen), each message marked seen only
//! *after* the commit; or one message on standard input, as an MTA pipe
//! delivers it (Postfix `mailbox_command`, procmail, `fetchmail --mda`).
//! A crash between the commit and the marking re-reads a message next
//! time; its event id comes from its Message-ID, so the engine drops the
//! second delivery as a duplicate.
//!
//! The exit status follows sysexits(3), so an MTA does the right thing:
//! 0 delivered (or already had), 65 (`EX_DATAERR`) a message that is not
//! e-mail or that the engine refused (the MTA bounces it), 75
//! (`EX_TEMPFAIL`) the configuration or the store could not be used (the
//! MTA keeps the message and retries).
//!
//! The received time is the wall clock at intake, in the pack's time
//! zone (the sender's `Date:` header is kept on the event as `date`); the
//! engine itself stays deterministic. Actions the messages request wait
//! in the outbox for `casework run` or `serve`, unless `--actions` runs
//! them here, as `run` does.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use casework::case::{Author, Case};
use casework::clock::Clock;
use casework::engine::Outcome;
use casework::event::Event;
use casework::store::{Link, Store};
use casework_email::inbound::{self, InboundEmail, InboundError};

use super::run::{OutboxArgs, ShopClock, case_line, open};
use super::workers::Sharing;
use super::{ClusterArgs, ConfigArg, DbArg};

/// sysexits(3): the input data was incorrect (the MTA bounces).
const EX_DATAERR: u8 = 65;
/// sysexits(3): temporary failure (the MTA defers and retries).
const EX_TEMPFAIL: u8 = 75;

#[derive(Debug, clap::Args)]
#[command(after_help = "\
Examples:
  casework mail reply.eml --db casework.db
  casework mail --maildir ~/Maildir --db casework.db      # e.g. from cron
  casework mail --maildir ~/Maildir --print | casework run --events -

As an MTA's delivery command (one message on stdin; exit 75 makes the MTA retry):
  Postfix main.cf:  mailbox_command = /usr/local/bin/casework mail --db /var/lib/casework/casework.db -
  procmail:         :0 w
                    | casework mail --db /var/lib/casework/casework.db -")]
pub struct Args {
    /// The configuration file (taken as such when the first argument ends
    /// in `.yaml` or `.yml`), then the message files (RFC 5322, `.eml`);
    /// `-` reads one message from standard input.
    #[arg(value_name = "[CONFIG.yaml] FILE|-")]
    pub inputs: Vec<PathBuf>,
    /// Read a Maildir: every message in `new/` and the unseen ones in
    /// `cur/`; each is marked seen (moved to `cur/`, flag `S`) once its
    /// event is committed.
    #[arg(long, value_name = "DIR")]
    pub maildir: Option<PathBuf>,
    #[command(flatten)]
    pub db: DbArg,
    #[command(flatten)]
    pub cluster: ClusterArgs,
    /// Write the `email.received` events as JSON Lines on standard output
    /// (the `casework run --events` format) instead of handling them; the
    /// store is not touched and Maildir messages are not marked seen.
    #[arg(long)]
    pub print: bool,
    /// After the commit, execute the actions the messages requested
    /// through the configured plugins, as `casework run` does (one pass;
    /// retries wait for the next `run`). Without it they wait in the
    /// outbox for `casework run` or `serve`.
    #[arg(long, conflicts_with = "print")]
    pub actions: bool,
    #[command(flatten)]
    pub outbox: OutboxArgs,
}

/// Where the messages come from.
enum Source {
    Stdin,
    Files(Vec<PathBuf>),
    Maildir(PathBuf),
}

/// One message read: where from, and the message or why it is unusable.
struct Item {
    /// The file (or `stdin`), as shown.
    shown: String,
    /// The Maildir file, to mark seen after the commit.
    maildir_file: Option<PathBuf>,
    mail: Result<InboundEmail, InboundError>,
}

pub fn run(args: Args) -> ExitCode {
    let (config, source) = match split_inputs(&args) {
        Ok(x) => x,
        Err(message) => {
            eprintln!("error: {message}");
            return ExitCode::from(2);
        }
    };
    let items = read(&source);
    if args.print {
        return print(&config, &items);
    }
    deliver(&args, &config, &source, items)
}

/// The configuration (a first argument ending in `.yaml`/`.yml`) and the
/// message source.
fn split_inputs(args: &Args) -> Result<(ConfigArg, Source), String> {
    let mut inputs = args.inputs.clone();
    let is_yaml = |p: &Path| {
        p.extension()
            .is_some_and(|e| e.eq_ignore_ascii_case("yaml") || e.eq_ignore_ascii_case("yml"))
    };
    let config = match inputs.first() {
        Some(first) if is_yaml(first) => Some(inputs.remove(0)),
        _ => None,
    };
    let config = ConfigArg { config };
    let stdin = inputs.iter().any(|p| p.as_os_str() == "-");
    let source = match (&args.maildir, inputs.is_empty()) {
        (Some(dir), true) => Source::Maildir(dir.clone()),
        (Some(_), false) => {
            return Err("give message files (or `-`) or `--maildir DIR`, not both".to_owned());
        }
        (None, true) => {
            return Err(
                "no messages: give message files, `-` for one message on standard input, or `--maildir DIR`"
                    .to_owned(),
            );
        }
        (None, false) if stdin && inputs.len() > 1 => {
            return Err(
                "`-` reads one message from standard input; give it alone, without files"
                    .to_owned(),
            );
        }
        (None, false) if stdin => Source::Stdin,
        (None, false) => Source::Files(inputs),
    };
    Ok((config, source))
}

/// Read and parse every message; problems are kept per message, so one
/// bad file does not hide the others.
fn read(source: &Source) -> Vec<Item> {
    match source {
        Source::Stdin => vec![Item {
            shown: "stdin".to_owned(),
            maildir_file: None,
            mail: inbound::read_from(std::io::stdin().lock()),
        }],
        Source::Files(files) => files
            .iter()
            .map(|path| Item {
                shown: path.display().to_string(),
                maildir_file: None,
                mail: std::fs::File::open(path)
                    .map_err(|e| InboundError::Io {
                        what: "the file".to_owned(),
                        message: e.to_string(),
                    })
                    .and_then(inbound::read_from),
            })
            .collect(),
        Source::Maildir(dir) => inbound::read_maildir_unseen(dir)
            .into_iter()
            .map(|r| match r {
                Ok((path, mail)) => Item {
                    shown: path.display().to_string(),
                    maildir_file: Some(path),
                    mail: Ok(mail),
                },
                Err(InboundError::File { path, source }) => Item {
                    shown: path,
                    maildir_file: None,
                    mail: Err(*source),
                },
                Err(e) => Item {
                    shown: dir.display().to_string(),
                    maildir_file: None,
                    mail: Err(e),
                },
            })
            .collect(),
    }
}

/// What to do about a message that could not be read.
fn unreadable_hint(item: &Item, source: &Source) -> &'static str {
    match (&item.mail, source) {
        (Err(InboundError::NotMaildir { .. }), _) => "",
        (_, Source::Maildir(_)) => {
            "; left where it is (not marked seen): look at it, then move it out of the Maildir"
        }
        (_, Source::Stdin) => "; refused (exit 65: the MTA bounces it)",
        (_, Source::Files(_)) => "; not handled: is it an RFC 5322 message (.eml)?",
    }
}

/// `--print`: the events as JSON Lines, nothing stored.
fn print(config: &ConfigArg, items: &[Item]) -> ExitCode {
    let tz = match config.load() {
        Ok(loaded) => loaded.def.timezone.unwrap_or(chrono_tz::UTC),
        Err(_) => return ExitCode::from(EX_TEMPFAIL),
    };
    let now = ShopClock(tz).now();
    let stdout = std::io::stdout();
    let mut out = stdout.lock();
    let mut bad = false;
    for item in items {
        match &item.mail {
            Ok(mail) => {
                let event = mail.to_event(now);
                match serde_json::to_string(&event) {
                    Ok(line) => {
                        if writeln!(out, "{line}").is_err() {
                            // The reader went away (a closed pipe).
                            return ExitCode::from(EX_TEMPFAIL);
                        }
                    }
                    Err(e) => {
                        eprintln!("{}: cannot write the event: {e}", item.shown);
                        bad = true;
                    }
                }
            }
            Err(e) => {
                eprintln!("{}: {e}", item.shown);
                bad = true;
            }
        }
    }
    let _ = out.flush();
    if bad {
        ExitCode::from(EX_DATAERR)
    } else {
        ExitCode::SUCCESS
    }
}

/// Handle the messages durably, mark Maildir messages seen, say where
/// each landed.
fn deliver(args: &Args, config: &ConfigArg, source: &Source, items: Vec<Item>) -> ExitCode {
    let tempfail = |message: String| {
        eprintln!("error: {message}");
        if matches!(source, Source::Stdin) {
            eprintln!("the message was not delivered; exit 75 tells the MTA to keep it and retry");
        }
        ExitCode::from(EX_TEMPFAIL)
    };
    let unreadable: Vec<&Item> = items.iter().filter(|i| i.mail.is_err()).collect();
    for item in &unreadable {
        if let Err(e) = &item.mail {
            eprintln!("{}: {e}{}", item.shown, unreadable_hint(item, source));
        }
    }
    if unreadable.len() == items.len() {
        // Nothing to store: the store is not even opened.
        eprintln!("{} message(s), none readable; nothing stored", items.len());
        return ExitCode::from(EX_DATAERR);
    }
    let bad = unreadable.len();
    let opened = match open(config, &args.db, &args.cluster, Sharing::Alone) {
        Ok(Ok(o)) => o,
        Ok(Err(_)) => {
            return tempfail(format!(
                "the configuration {} is not valid (see above); fix it and feed the mail again",
                config.shown()
            ));
        }
        Err(e) => {
            return tempfail(e);
        }
    };
    let mut engine = opened.engine;
    let now = engine.now();

    let handled: Vec<(&Item, &InboundEmail)> = items
        .iter()
        .filter_map(|i| i.mail.as_ref().ok().map(|m| (i, m)))
        .collect();
    let events: Vec<Event> = handled.iter().map(|(_, m)| m.to_event(now)).collect();

    // One transaction for every message read: on disk before any is
    // marked seen.
    let results = match engine.handle_batch(events.clone()) {
        Ok(r) => r,
        Err(e) => {
            return tempfail(format!(
                "{e}; nothing was stored and no message was marked seen: feed them again"
            ));
        }
    };

    let (mut accepted, mut duplicate, mut rejected) = (0usize, 0usize, 0usize);
    let mut cases = std::collections::BTreeSet::new();
    for (((item, mail), event), result) in handled.iter().zip(&events).zip(results) {
        match result {
            Ok(Outcome::Handled { case, .. }) => {
                accepted += 1;
                let line = match engine.case(&case) {
                    Ok(Some(c)) => landed(mail, event, &c, engine.store()),
                    _ => format!("landed on {case}"),
                };
                out!("{}: {line}", item.shown);
                cases.insert(case);
            }
            Ok(Outcome::Duplicate) => {
                duplicate += 1;
                out!(
                    "{}: already received as event {}; nothing changed",
                    item.shown,
                    event.id
                );
            }
            Err(e) => {
                rejected += 1;
                eprintln!(
                    "{}: rejected: {e} (recorded as rejected in the store)",
                    item.shown
                );
            }
        }
        // Committed (accepted, duplicate or recorded as rejected): only
        // now may the Maildir forget it.
        if let Some(file) = &item.maildir_file
            && let Err(e) = inbound::mark_seen(file)
        {
            eprintln!(
                "{}: handled, but cannot mark it seen ({e}); the next run reads it again and drops it as a duplicate",
                item.shown
            );
        }
    }

    let mut ran = None;
    if args.actions {
        let mut report = casework::outbox::RunnerReport::default();
        let runner = args
            .outbox
            .runner(opened.plugins, opened.clock.clone(), "mail");
        // Until a pass finds nothing due; what failed waits for its retry.
        for _ in 0..64 {
            match runner.run_once(&mut engine) {
                Ok(pass) => {
                    for f in &pass.failures {
                        eprintln!("outbox: {f}");
                    }
                    let idle = pass.attempts == 0;
                    report.add(pass);
                    if idle {
                        break;
                    }
                }
                Err(e) => {
                    eprintln!("outbox: {e}; the actions stay in the outbox for `casework run`");
                    break;
                }
            }
        }
        ran = Some(report);
    }

    out!();
    out!(
        "{} message(s) into {} ({}): {accepted} accepted, {duplicate} duplicate, {rejected} rejected, {bad} unreadable",
        items.len(),
        opened.db,
        if opened.fresh { "new" } else { "existing" },
    );
    let mut waiting = 0;
    for id in &cases {
        if let Ok(Some(case)) = engine.case(id) {
            out!("{}", case_line(&case));
        }
        waiting += engine
            .store()
            .case_actions(id)
            .map(|o| {
                o.iter()
                    .filter(|e| e.status == casework::store::ActionStatus::Pending)
                    .count()
            })
            .unwrap_or(0);
    }
    if let Some(o) = &ran {
        out!(
            "actions run: {} attempts, {} done, {} retried, {} given up",
            o.attempts,
            o.done,
            o.retried,
            o.gave_up
        );
    }
    if waiting > 0 {
        out!(
            "{waiting} action(s) wait in the outbox: `casework run` or `casework serve` executes them (or pass --actions)"
        );
    }
    if bad > 0 || rejected > 0 {
        ExitCode::from(EX_DATAERR)
    } else {
        ExitCode::SUCCESS
    }
}

/// Where a handled message landed and how it was threaded.
fn landed(mail: &InboundEmail, event: &Event, case: &Case, store: &dyn Store) -> String {
    let new = case.id == casework::engine::opening_case_id(&event.id);
    let how = if let Some(tag) = mail.case_tag() {
        format!("by the subject tag [{tag}]")
    } else if new {
        "no thread or case tag matched".to_owned()
    } else {
        let known = |id: &String| {
            mail.message_id.as_deref() != Some(id.as_str())
                && store
                    .linked_case(&Link::MessageId(id))
                    .is_ok_and(|c| c.as_ref() == Some(&case.id))
        };
        if let Some(id) = mail.in_reply_to.iter().find(|id| known(id)) {
            format!("by In-Reply-To {id}")
        } else if let Some(id) = mail.references.iter().rev().find(|id| known(id)) {
            format!("by References {id}")
        } else {
            "by its thread".to_owned()
        }
    };
    let author = case
        .messages
        .iter()
        .find(|m| m.event == event.id)
        .map(|m| match m.author {
            Author::Customer => "customer",
            Author::Agent => "agent",
            Author::Colleague => "colleague",
            Author::System => "system",
        });
    let from = mail.from.as_deref().unwrap_or("an unknown sender");
    format!(
        "{} {} ({how}); from {from}{}",
        if new {
            "opened new case"
        } else {
            "added to case"
        },
        case.id,
        author.map(|a| format!(" ({a})")).unwrap_or_default(),
    )
}
