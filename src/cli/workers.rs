//! Opening the store a command works on, and, on PostgreSQL, holding
//! this process's partition leases while it runs.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;

use casework::cluster::{LeaseView, SharedLeaseView, note_round};
use casework::store::postgres::{PgOptions, PgStore};
use casework::store::{SqliteStore, Store};

use super::{ClusterArgs, Db};

/// How a command shares a PostgreSQL database with other processes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Sharing {
    /// One worker among several (`serve`): takes a fair share of the
    /// partitions, gives some back when a worker joins, takes over those
    /// of a worker that died.
    Worker,
    /// Alone (`run`, `mail`): takes every partition, and refuses to start
    /// while a worker holds some.
    Alone,
}

/// The lease thread of a process on PostgreSQL; dropping it hands every
/// partition back at once.
pub struct LeaseKeeper {
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
    pub view: SharedLeaseView,
}

impl Drop for LeaseKeeper {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// A store opened for a command.
pub struct OpenStore {
    pub store: Box<dyn Store>,
    /// It did not exist before (PostgreSQL: it held no event).
    pub fresh: bool,
    /// On PostgreSQL, the leases this process holds while it runs.
    pub leases: Option<LeaseKeeper>,
    /// A worker's further connections (see [`Connections`]).
    pub connections: Option<Connections>,
}

/// A worker on PostgreSQL (`serve`) talks to the database on three
/// connections of the same worker, besides its lease keeper's: the
/// engine's, the request threads' (acknowledging into the inbox) and the
/// outbox's, so that neither of the last two waits while the engine
/// handles a batch.
pub struct Connections {
    pub requests: Box<dyn Store>,
    pub outbox: Box<dyn Store>,
}

/// The store at `db`.
pub fn open_store(db: &Db, cluster: &ClusterArgs, sharing: Sharing) -> Result<OpenStore, String> {
    match db {
        Db::File(path) => {
            let fresh = !path.exists();
            let store = SqliteStore::open(path).map_err(|e| e.to_string())?;
            Ok(OpenStore {
                store: Box::new(store),
                fresh,
                leases: None,
                connections: None,
            })
        }
        Db::Postgres(url) => {
            let options = PgOptions {
                partitions: cluster.partitions,
            };
            let store = PgStore::open_with(url, &options).map_err(|e| e.to_string())?;
            let fresh = store.event_count().map_err(|e| e.to_string())? == 0;
            let keeper = keep_leases(&store, cluster, sharing)?;
            let connections = match sharing {
                Sharing::Worker => {
                    let sibling = || -> Result<Box<dyn Store>, String> {
                        Ok(Box::new(store.sibling().map_err(|e| e.to_string())?))
                    };
                    Some(Connections {
                        requests: sibling()?,
                        outbox: sibling()?,
                    })
                }
                Sharing::Alone => None,
            };
            Ok(OpenStore {
                store: Box::new(store),
                fresh,
                leases: Some(keeper),
                connections,
            })
        }
    }
}

fn keep_leases(
    store: &PgStore,
    cluster: &ClusterArgs,
    sharing: Sharing,
) -> Result<LeaseKeeper, String> {
    let lease = cluster
        .partition_lease
        .max(std::time::Duration::from_millis(300));
    let mut leases = store.leases(lease).map_err(|e| e.to_string())?;
    let view: SharedLeaseView = Arc::new(Mutex::new(LeaseView {
        worker: store.ownership().worker().to_owned(),
        lease_seconds: lease.as_secs_f64(),
        ..LeaseView::default()
    }));
    match sharing {
        Sharing::Alone => {
            let busy = leases.take_all().map_err(|e| e.to_string())?;
            if !busy.is_empty() {
                let _ = leases.release_all();
                return Err(format!(
                    "{} of the {} partitions of {} are held by running `casework serve` workers; post the events to one of them (POST /events), or stop them first",
                    busy.len(),
                    store.partitions(),
                    store.shown()
                ));
            }
        }
        Sharing::Worker => note_round(&view, leases.round()),
    }
    let stop = Arc::new(AtomicBool::new(false));
    let thread = {
        let view = view.clone();
        leases.keep(stop.clone(), sharing == Sharing::Alone, move |r| {
            note_round(&view, r)
        })
    };
    Ok(LeaseKeeper {
        stop,
        thread: Some(thread),
        view,
    })
}
