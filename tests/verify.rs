//! `casework verify`: the real binary on a store that `casework run` made
//! from `examples/events/shop.jsonl` (cases C-100 to C-103), untouched,
//! with a case row changed behind the engine's back, and with a pack
//! version whose stored files no longer load.

use std::path::{Path, PathBuf};

use crate::util::{Run, casework, scratch};

/// A store made by `casework run` from the shop example, in its own
/// directory.
fn shop_store(name: &str) -> PathBuf {
    let db = scratch(name).join("shop.db");
    let run = casework([
        "run",
        "--events",
        "examples/events/shop.jsonl",
        "--db",
        &db.display().to_string(),
    ]);
    assert_eq!(run.code, 0, "{}", run.output());
    db
}

fn verify(db: &Path, more: &[&str]) -> Run {
    let db = db.display().to_string();
    let mut args = vec!["verify", "--db", &db];
    args.extend_from_slice(more);
    casework(args)
}

/// Change one stored case row's JSON body, as a hand edit or a bug in a
/// migration would, and its `state` column with it.
fn tamper(db: &Path, case: &str, change: impl FnOnce(&mut serde_json::Value)) {
    let conn = rusqlite::Connection::open(db).unwrap();
    let body: String = conn
        .query_row("SELECT body FROM cases WHERE id = ?1", [case], |r| r.get(0))
        .unwrap();
    let mut json: serde_json::Value = serde_json::from_str(&body).unwrap();
    change(&mut json);
    let state = json["state"].as_str().unwrap().to_owned();
    let changed = conn
        .execute(
            "UPDATE cases SET body = ?1, state = ?2 WHERE id = ?3",
            (json.to_string(), state, case),
        )
        .unwrap();
    assert_eq!(changed, 1);
}

#[test]
fn a_store_run_made_replays_to_the_same_cases() {
    let db = shop_store("verify-equal");
    let run = verify(&db, &[]);
    assert_eq!(run.code, 0, "{}", run.output());
    assert_eq!(
        run.stdout,
        "verified 4 cases: 4 equal\n",
        "{}",
        run.output()
    );
}

#[test]
fn a_changed_case_row_is_named_with_its_fields() {
    let db = shop_store("verify-tampered");
    let (state, level) = {
        let store = casework::store::SqliteStore::open(&db).unwrap();
        let case = casework::store::Store::load(&store, &casework::case::CaseId("C-101".into()))
            .unwrap()
            .unwrap();
        (case.state.0, case.urgency.level.as_str().to_owned())
    };
    assert_ne!(level, "low");
    tamper(&db, "C-101", |case| {
        case["state"] = "closed".into();
        case["urgency"]["level"] = "low".into();
    });
    let run = verify(&db, &[]);
    assert_eq!(run.code, 1, "{}", run.output());
    let out = &run.stdout;
    assert!(
        out.contains("C-101: replay differs from the stored case in 2 places\n"),
        "{out}"
    );
    assert!(
        out.contains(&format!(
            "  state: stored \"closed\", replayed \"{state}\"\n"
        )),
        "{out}"
    );
    assert!(
        out.contains(&format!(
            "  urgency.level: stored \"low\", replayed \"{level}\"\n"
        )),
        "{out}"
    );
    for other in ["C-100", "C-102", "C-103"] {
        assert!(!out.contains(other), "{other} is equal: {out}");
    }
    assert!(
        out.ends_with("verified 4 cases: 3 equal, 1 diverges\n"),
        "{out}"
    );
}

#[test]
fn a_sample_checks_exactly_n_evenly_spread_cases() {
    let db = shop_store("verify-sample");
    // Of C-100..C-103, a sample of 2 takes positions 0 and 2: C-100 and
    // C-102. A change to C-101 is outside it, one to C-102 inside.
    tamper(&db, "C-101", |case| case["state"] = "closed".into());
    let run = verify(&db, &["--sample", "2"]);
    assert_eq!(run.code, 0, "{}", run.output());
    assert_eq!(
        run.stdout,
        "sample: 2 of 4 cases, evenly spread in case-id order (the first, then one in every 2)\n\
         verified 2 cases: 2 equal\n",
        "{}",
        run.output()
    );
    tamper(&db, "C-102", |case| case["contacts"] = 99.into());
    let run = verify(&db, &["--sample", "2"]);
    assert_eq!(run.code, 1, "{}", run.output());
    assert!(
        run.stdout.contains("C-102: replay differs"),
        "{}",
        run.output()
    );
    assert!(
        run.stdout.contains("  contacts: stored 99, replayed "),
        "{}",
        run.output()
    );
    assert!(
        run.stdout
            .ends_with("verified 2 cases: 1 equal, 1 diverges\n"),
        "{}",
        run.output()
    );
    // A sample larger than the store checks every case, and says nothing
    // of a sample.
    let run = verify(&db, &["--sample", "10"]);
    assert!(
        run.stdout
            .ends_with("verified 4 cases: 2 equal, 2 diverge\n"),
        "{}",
        run.output()
    );
    assert!(!run.stdout.contains("sample:"), "{}", run.output());
    // Zero is a usage error.
    assert_eq!(verify(&db, &["--sample", "0"]).code, 2);
}

#[test]
fn a_pack_version_that_no_longer_loads_is_reported_and_the_walk_goes_on() {
    let db = shop_store("verify-old-pack");
    {
        // C-102's events say an older pack decided them, and that pack's
        // stored files no longer load.
        let conn = rusqlite::Connection::open(&db).unwrap();
        let source = serde_json::json!({
            "hash": "old-pack",
            "root": "casework.yaml",
            "files": [["casework.yaml", "workflow: [not, a, workflow\n"]],
        });
        conn.execute(
            "INSERT INTO packs (hash, source) VALUES ('old-pack', ?1)",
            [source.to_string()],
        )
        .unwrap();
        let changed = conn
            .execute(
                "UPDATE events SET pack = 'old-pack' WHERE case_id = 'C-102'",
                [],
            )
            .unwrap();
        assert!(changed > 0);
    }
    let run = verify(&db, &[]);
    assert_eq!(run.code, 1, "{}", run.output());
    let out = &run.stdout;
    assert!(
        out.contains(
            "C-102: cannot be replayed: pack version old-pack handled events of this case, \
             but its stored files no longer load:"
        ),
        "{out}"
    );
    assert!(
        out.ends_with("verified 4 cases: 3 equal, 1 diverges (1 could not be verified)\n"),
        "{out}"
    );
}

#[test]
fn a_missing_store_is_a_clear_error() {
    let dir = scratch("verify-missing");
    let run = verify(&dir.join("nowhere.db"), &[]);
    assert_eq!(run.code, 1, "{}", run.output());
    assert!(run.stdout.is_empty(), "{}", run.output());
    assert!(
        run.stderr.contains("error: no database at")
            && run.stderr.contains("nowhere.db")
            && run.stderr.contains("casework run --events FILE"),
        "{}",
        run.output()
    );
    assert!(
        !dir.join("nowhere.db").exists(),
        "verify must not create it"
    );
}
