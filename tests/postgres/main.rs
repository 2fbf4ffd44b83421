//! The tests that need a PostgreSQL server: the store's contract, the
//! fence, the shared inbox, workers killed and paused, `migrate`.
//!
//! They read the server's URL from `CASEWORK_TEST_PG` (`.ci/run` sets it;
//! e.g. `postgres://postgres@127.0.0.1:5432/test`); each test creates a
//! database of its own and drops it. Without the variable every test is
//! reported as ignored, by name, with the reason: never as passed.
//!
//! A harness of its own (libtest-mimic) because the standard one cannot
//! skip a test at run time.

#[path = "../util.rs"]
#[allow(dead_code)]
mod util;

mod cluster;
mod store;

use libtest_mimic::{Arguments, Failed, Trial};

/// A database for one test, dropped when the test ends.
pub struct TestDb {
    admin: String,
    name: String,
    pub url: String,
}

impl TestDb {
    fn create(server: &str, test: &str) -> TestDb {
        let name = format!(
            "casework_{}_{}",
            test.replace(|c: char| !c.is_ascii_alphanumeric(), "_"),
            std::process::id()
        );
        let mut client = postgres::Client::connect(server, postgres::NoTls)
            .unwrap_or_else(|e| panic!("CASEWORK_TEST_PG={server}: cannot connect: {e}"));
        // One statement each: neither may run inside a transaction block.
        client
            .batch_execute(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
            .unwrap();
        client
            .batch_execute(&format!("CREATE DATABASE {name}"))
            .unwrap();
        let url = match server.rfind('/') {
            Some(slash) if slash > server.find("://").map_or(0, |s| s + 2) => {
                format!("{}/{name}", &server[..slash])
            }
            _ => format!("{server}/{name}"),
        };
        TestDb {
            admin: server.to_owned(),
            name,
            url,
        }
    }

    /// A connection of the test's own, to look inside.
    pub fn client(&self) -> postgres::Client {
        postgres::Client::connect(&self.url, postgres::NoTls).unwrap()
    }
}

impl Drop for TestDb {
    fn drop(&mut self) {
        if let Ok(mut c) = postgres::Client::connect(&self.admin, postgres::NoTls) {
            let _ = c.batch_execute(&format!(
                "DROP DATABASE IF EXISTS {} WITH (FORCE)",
                self.name
            ));
        }
    }
}

type Test = fn(&TestDb) -> Result<(), Failed>;

const TESTS: &[(&str, Test)] = &[
    ("store::keeps_the_contract", store::keeps_the_contract),
    (
        "store::a_stale_worker_cannot_commit",
        store::a_stale_worker_cannot_commit,
    ),
    (
        "store::the_inbox_keeps_acknowledgement_order_and_one_case_per_order",
        store::the_inbox_keeps_acknowledgement_order_and_one_case_per_order,
    ),
    (
        "store::partitions_are_shared_fairly_and_handed_back",
        store::partitions_are_shared_fairly_and_handed_back,
    ),
    (
        "store::migrate_copies_an_embedded_store",
        store::migrate_copies_an_embedded_store,
    ),
    (
        "cluster::one_worker_serves_events_through_the_inbox",
        cluster::one_worker_serves_events_through_the_inbox,
    ),
    (
        "cluster::three_workers_survive_kills",
        cluster::three_workers_survive_kills,
    ),
    (
        "cluster::a_lost_connection_is_reported_and_recovered",
        cluster::a_lost_connection_is_reported_and_recovered,
    ),
    (
        "cluster::a_paused_worker_cannot_commit",
        cluster::a_paused_worker_cannot_commit,
    ),
    (
        "cluster::a_stopped_worker_hands_its_partitions_back",
        cluster::a_stopped_worker_hands_its_partitions_back,
    ),
];

fn main() {
    let args = Arguments::from_args();
    let server = std::env::var("CASEWORK_TEST_PG")
        .ok()
        .filter(|s| !s.is_empty());
    let trials = TESTS
        .iter()
        .map(|(name, test)| {
            let (name, test, url) = (*name, *test, server.clone());
            let trial = Trial::test(name, move || {
                let url = url.expect("not run without CASEWORK_TEST_PG");
                let db = TestDb::create(&url, name);
                test(&db)
            });
            match &server {
                Some(_) => trial,
                None => trial.with_ignored_flag(true),
            }
        })
        .collect();
    if server.is_none() {
        eprintln!(
            "CASEWORK_TEST_PG is not set: the PostgreSQL tests are skipped (listed as ignored); set it to a server's URL, e.g. postgres://postgres@127.0.0.1:5432/test"
        );
    }
    libtest_mimic::run(&args, trials).exit();
}
