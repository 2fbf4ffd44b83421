//! `casework mail`: inbound e-mail through the real binary, from a file,
//! a Maildir and standard input (as an MTA pipe delivers it), into the
//! SQLite store, threaded onto the case it answers.

use std::path::{Path, PathBuf};

use casework::case::{Author, Case, CaseId};
use casework::store::{SqliteStore, Store};

use crate::util::{Run, casework, casework_stdin, scratch};

/// The customer's first message: it opens a case.
const CUSTOMER: &str = "From: Jo Tanaka <jo@example.com>\r\n\
To: support@example.com\r\n\
Subject: Shuffleboard table\r\n\
Message-ID: <first@mail.example.com>\r\n\
Date: Thu, 10 Dec 2026 08:00:00 +0900\r\n\
\r\n\
We are only at the rental house from January 5 to 8.\r\n";

/// A reply from the warehouse (a team address in the directory), threaded
/// by In-Reply-To / References only: no case tag in the subject.
fn warehouse_reply(id: &str, in_reply_to: &str, references: &str, text: &str) -> String {
    format!(
        "From: Warehouse <warehouse@example.com>\r\n\
To: support@example.com\r\n\
Subject: Re: Shuffleboard table\r\n\
Message-ID: <{id}>\r\n\
In-Reply-To: {in_reply_to}\r\n\
References: {references}\r\n\
Date: Thu, 10 Dec 2026 09:00:00 +0900\r\n\
\r\n\
{text}\r\n"
    )
}

struct Setup {
    dir: PathBuf,
    db: String,
    maildir: PathBuf,
}

fn setup(name: &str) -> Setup {
    let dir = scratch(name);
    let maildir = dir.join("Maildir");
    for sub in ["new", "cur", "tmp"] {
        std::fs::create_dir_all(maildir.join(sub)).unwrap();
    }
    Setup {
        db: dir.join("mail.db").display().to_string(),
        dir,
        maildir,
    }
}

impl Setup {
    fn mail(&self, args: &[&str]) -> Run {
        let mut all = vec!["mail", "--db", &self.db];
        all.extend_from_slice(args);
        casework(all)
    }

    fn deliver(&self, name: &str, raw: &str) -> PathBuf {
        let path = self.maildir.join("new").join(name);
        std::fs::write(&path, raw).unwrap();
        path
    }

    fn case(&self, id: &CaseId) -> Case {
        SqliteStore::open(Path::new(&self.db))
            .unwrap()
            .load(id)
            .unwrap()
            .unwrap_or_else(|| panic!("{id} is stored"))
    }

    /// The customer's message as a file: opens the case.
    fn open_case(&self) -> CaseId {
        let file = self.dir.join("first.eml");
        std::fs::write(&file, CUSTOMER).unwrap();
        let run = self.mail(&[file.to_str().unwrap()]);
        assert_eq!(run.code, 0, "{}", run.output());
        assert!(run.stdout.contains("opened new case"), "{}", run.output());
        let store = SqliteStore::open(Path::new(&self.db)).unwrap();
        let ids = store.case_ids().unwrap();
        assert_eq!(ids.len(), 1, "{ids:?}");
        assert!(
            run.stdout.contains(ids[0].as_str()),
            "the line names the case: {}",
            run.output()
        );
        ids[0].clone()
    }
}

/// The messages on `case` that came from e-mail `message_id`.
fn messages_with<'a>(case: &'a Case, message_id: &str) -> Vec<&'a casework::case::Message> {
    case.messages
        .iter()
        .filter(|m| m.message_id.as_deref() == Some(message_id))
        .collect()
}

#[test]
fn mail_from_a_file_maildir_and_stdin_lands_on_the_customers_case() {
    let s = setup("mail-thread");
    let opened = s.open_case();
    let case = s.case(&opened);
    assert_eq!(case.messages.len(), 1);
    assert_eq!(case.messages[0].author, Author::Customer);

    // The warehouse answers; the message is delivered to the Maildir.
    let file = s.deliver(
        "1765324800.M1P1.mx",
        &warehouse_reply(
            "wh-1@wms.example.com",
            "<first@mail.example.com>",
            "<first@mail.example.com>",
            "The table is held until January 4th.",
        ),
    );
    let run = s.mail(&["--maildir", s.maildir.to_str().unwrap()]);
    assert_eq!(run.code, 0, "{}", run.output());
    assert!(
        run.stdout.contains(&format!(
            "added to case {opened} (by In-Reply-To <first@mail.example.com>); from warehouse@example.com (colleague)"
        )),
        "{}",
        run.output()
    );
    assert!(
        run.stdout.contains("casework run"),
        "says who executes the actions: {}",
        run.output()
    );
    // Marked seen after the commit: moved to cur/ with the S flag.
    assert!(!file.exists());
    assert!(s.maildir.join("cur/1765324800.M1P1.mx:2,S").exists());

    // A second reply through the MTA pipe, threaded by References only
    // (its In-Reply-To names a message casework never saw).
    let reply = warehouse_reply(
        "wh-2@wms.example.com",
        "<unknown@elsewhere.example>",
        "<first@mail.example.com> <wh-1@wms.example.com>",
        "It ships on January 4th.",
    );
    let run = casework_stdin(["mail", "--db", &s.db, "-"], reply.as_bytes());
    assert_eq!(run.code, 0, "{}", run.output());
    assert!(
        run.stdout.contains(&format!(
            "stdin: added to case {opened} (by References <wh-1@wms.example.com>)"
        )),
        "{}",
        run.output()
    );

    let case = s.case(&opened);
    let store = SqliteStore::open(Path::new(&s.db)).unwrap();
    assert_eq!(
        store.case_ids().unwrap(),
        vec![opened.clone()],
        "no new case"
    );
    for id in ["<wh-1@wms.example.com>", "<wh-2@wms.example.com>"] {
        let found = messages_with(&case, id);
        assert_eq!(found.len(), 1, "{id} once on the case");
        assert_eq!(found[0].author, Author::Colleague, "{id}");
        assert_eq!(found[0].from.as_deref(), Some("warehouse@example.com"));
    }
    let events = store.events(&opened).unwrap();
    let kinds: Vec<&str> = events.iter().map(|a| a.event.kind.as_str()).collect();
    assert_eq!(
        kinds,
        ["email.received", "email.received", "email.received"],
        "{kinds:?}"
    );
    assert_eq!(
        events[1].event.id.0, "email:wh-1@wms.example.com",
        "the event id comes from the Message-ID"
    );
    assert_eq!(
        case.contacts, 1,
        "colleagues' replies are not customer contacts"
    );
}

#[test]
fn a_maildir_message_fed_again_after_a_crash_is_not_duplicated() {
    let s = setup("mail-crash");
    let opened = s.open_case();
    let reply = warehouse_reply(
        "wh-1@wms.example.com",
        "<first@mail.example.com>",
        "<first@mail.example.com>",
        "Held.",
    );
    s.deliver("1765324800.M1P1.mx", &reply);
    let run = s.mail(&["--maildir", s.maildir.to_str().unwrap()]);
    assert_eq!(run.code, 0, "{}", run.output());

    // The crash: the commit happened, marking the message seen did not.
    // Put it back in new/, as it was.
    std::fs::rename(
        s.maildir.join("cur/1765324800.M1P1.mx:2,S"),
        s.maildir.join("new/1765324800.M1P1.mx"),
    )
    .unwrap();
    let again = s.mail(&["--maildir", s.maildir.to_str().unwrap()]);
    assert_eq!(again.code, 0, "{}", again.output());
    assert!(
        again
            .stdout
            .contains("already received as event email:wh-1@wms.example.com; nothing changed"),
        "{}",
        again.output()
    );
    assert!(
        again.stdout.contains("0 accepted, 1 duplicate"),
        "{}",
        again.output()
    );
    // And now it is marked seen.
    assert!(s.maildir.join("cur/1765324800.M1P1.mx:2,S").exists());
    assert!(!s.maildir.join("new/1765324800.M1P1.mx").exists());

    let case = s.case(&opened);
    assert_eq!(messages_with(&case, "<wh-1@wms.example.com>").len(), 1);
    let store = SqliteStore::open(Path::new(&s.db)).unwrap();
    assert_eq!(store.events(&opened).unwrap().len(), 2);

    // The same message through the pipe as well: still once.
    let run = casework_stdin(["mail", "--db", &s.db, "-"], reply.as_bytes());
    assert_eq!(
        run.code,
        0,
        "a duplicate is delivered, not bounced: {}",
        run.output()
    );
    assert_eq!(store.events(&opened).unwrap().len(), 2);
}

#[test]
fn garbage_on_stdin_exits_65_and_stores_nothing() {
    let s = setup("mail-garbage");
    let run = casework_stdin(
        ["mail", "--db", &s.db, "-"],
        b"\x00\x01\x02 this is not a message\n",
    );
    assert_eq!(run.code, 65, "EX_DATAERR: {}", run.output());
    assert!(
        run.stderr.contains("stdin: not an e-mail message"),
        "{}",
        run.output()
    );
    assert!(
        run.stderr.contains("the MTA bounces it"),
        "{}",
        run.output()
    );
    assert!(!Path::new(&s.db).exists(), "nothing stored, no store made");

    // An empty pipe is no message either.
    let run = casework_stdin(["mail", "--db", &s.db, "-"], b"");
    assert_eq!(run.code, 65, "{}", run.output());
    assert!(run.stderr.contains("empty"), "{}", run.output());
}

#[test]
fn a_store_that_cannot_be_opened_exits_75_so_the_mta_retries() {
    let s = setup("mail-tempfail");
    let db = s.dir.join("no/such/dir/mail.db");
    let run = casework_stdin(
        ["mail", "--db", db.to_str().unwrap(), "-"],
        CUSTOMER.as_bytes(),
    );
    assert_eq!(run.code, 75, "EX_TEMPFAIL: {}", run.output());
    assert!(
        run.stderr.contains("no/such/dir/mail.db"),
        "{}",
        run.output()
    );
    assert!(run.stderr.contains("retry"), "{}", run.output());
}

#[test]
fn print_writes_run_events_lines_and_leaves_the_maildir_alone() {
    let s = setup("mail-print");
    s.deliver("1765324800.M1P1.mx", CUSTOMER);
    let run = s.mail(&["--maildir", s.maildir.to_str().unwrap(), "--print"]);
    assert_eq!(run.code, 0, "{}", run.output());
    let lines: Vec<&str> = run.stdout.lines().collect();
    assert_eq!(lines.len(), 1, "{}", run.output());
    let event = casework::event::Event::from_json(lines[0]).unwrap();
    assert_eq!(event.kind.as_str(), "email.received");
    assert_eq!(event.id.0, "email:first@mail.example.com");
    assert_eq!(event.text("from"), Some("jo@example.com"));
    assert!(
        s.maildir.join("new/1765324800.M1P1.mx").exists(),
        "not marked seen"
    );
    assert!(!Path::new(&s.db).exists(), "the store is not touched");

    // The line feeds `casework run --events -` as it is.
    let events = s.dir.join("mail.jsonl");
    std::fs::write(&events, &run.stdout).unwrap();
    let fed = casework(["run", "--events", events.to_str().unwrap(), "--db", &s.db]);
    assert_eq!(fed.code, 0, "{}", fed.output());
    assert!(fed.stdout.contains("1 accepted"), "{}", fed.output());
}

#[test]
fn usage_mistakes_say_what_to_give() {
    let s = setup("mail-usage");
    let run = s.mail(&[]);
    assert_eq!(run.code, 2, "{}", run.output());
    assert!(run.stderr.contains("--maildir DIR"), "{}", run.output());
    let run = s.mail(&["-", "x.eml"]);
    assert_eq!(run.code, 2, "{}", run.output());
    assert!(run.stderr.contains("give it alone"), "{}", run.output());
    let run = s.mail(&["--maildir", s.dir.to_str().unwrap()]);
    assert_eq!(run.code, 65, "{}", run.output());
    assert!(run.stderr.contains("is not a Maildir"), "{}", run.output());
}

#[test]
fn with_actions_the_new_case_notice_is_written_beside_the_store() {
    let s = setup("mail-actions");
    // A sizing question: the product team, whose channel is e-mail.
    let file = s.dir.join("size.eml");
    std::fs::write(
        &file,
        "From: Jo <jo@example.com>\r\nSubject: Bench size\r\nMessage-ID: <size-1@mail.example.com>\r\n\r\nWhat size is the bench? Which dimensions?\r\n",
    )
    .unwrap();
    let run = s.mail(&[file.to_str().unwrap(), "--actions"]);
    assert_eq!(run.code, 0, "{}", run.output());
    assert!(run.stdout.contains("team product"), "{}", run.output());
    assert!(run.stdout.contains("1 done"), "{}", run.output());
    assert!(
        !run.stdout.contains("wait in the outbox"),
        "{}",
        run.output()
    );
    let notices: Vec<PathBuf> = std::fs::read_dir(s.dir.join("outbox-mail"))
        .unwrap()
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "eml"))
        .collect();
    assert_eq!(notices.len(), 1, "{notices:?}");
    let text = std::fs::read_to_string(&notices[0]).unwrap();
    assert!(text.contains("To: product@example.com"), "{text}");
}
