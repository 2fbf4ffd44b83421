//! Who owns which partition: leases taken, renewed and handed back on
//! the database's clock (never the workers' own clocks, which may
//! disagree), and each worker's view of what it holds.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use serde::Serialize;

use super::Conn;
use crate::store::StoreError;

/// The partitions a worker holds and the epoch it took each at. The
/// store consults it to filter timers and claims and to fence commits;
/// [`Leases`] keeps it. Losing a partition here is only an optimisation:
/// the fence in the database is what stops a stale worker.
#[derive(Debug)]
pub struct Ownership {
    worker: String,
    held: Mutex<BTreeMap<u32, i64>>,
}

impl Ownership {
    pub fn new(worker: String) -> Ownership {
        Ownership {
            worker,
            held: Mutex::new(BTreeMap::new()),
        }
    }

    /// This worker's name in `partitions.owner`.
    pub fn worker(&self) -> &str {
        &self.worker
    }

    /// Partition → epoch, for the partitions held now.
    pub fn held(&self) -> BTreeMap<u32, i64> {
        self.lock().clone()
    }

    pub(crate) fn forget(&self, partition: u32) {
        self.lock().remove(&partition);
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, BTreeMap<u32, i64>> {
        self.held.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// A partition held, as `/health` shows it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct PartitionLease {
    pub partition: u32,
    pub epoch: i64,
}

/// A partition's owner, as the database has it.
#[derive(Clone, Debug, Serialize)]
pub struct PartitionOwner {
    pub partition: u32,
    pub owner: Option<String>,
    pub epoch: i64,
    /// How long its lease still runs.
    pub lease_left_seconds: f64,
}

/// What one round of [`Leases::round`] changed.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct LeaseRound {
    /// Taken over (free, expired, or handed back by another worker).
    pub taken: Vec<u32>,
    /// No longer ours: the lease ran out before we renewed it.
    pub lost: Vec<u32>,
    /// Handed back so a worker that joined gets its share.
    pub released: Vec<u32>,
    /// Workers alive now, this one included.
    pub workers: usize,
}

/// Keeps one worker's leases, on a connection of its own (a long batch on
/// the store's connection never delays a renewal).
pub struct Leases {
    conn: Conn,
    ownership: Arc<Ownership>,
    partitions: u32,
    lease: Duration,
    renewed: Option<Instant>,
}

impl Leases {
    pub(super) fn connect(
        url: &str,
        ownership: Arc<Ownership>,
        partitions: u32,
        lease: Duration,
    ) -> Result<Leases, StoreError> {
        Ok(Leases {
            conn: Conn::connect(url)?,
            ownership,
            partitions,
            lease,
            renewed: None,
        })
    }

    /// How long a lease lasts.
    pub fn lease(&self) -> Duration {
        self.lease
    }

    /// When the leases were last renewed, for `/health`.
    pub fn renewed(&self) -> Option<Instant> {
        self.renewed
    }

    fn lease_ms(&self) -> f64 {
        self.lease.as_secs_f64() * 1000.0
    }

    /// One round: say we are alive, renew what we hold, hand back what is
    /// above our fair share (partitions / live workers, rounded up), and
    /// take free or expired partitions up to it. Run it every third of the
    /// lease: a dead worker's partitions are taken over within the lease
    /// and one round after its last renewal.
    pub fn round(&mut self) -> Result<LeaseRound, StoreError> {
        let lease = self.lease_ms();
        self.heartbeat()?;
        let mut round = LeaseRound {
            lost: self.renew()?,
            ..LeaseRound::default()
        };
        round.workers = self
            .conn
            .query(
                "SELECT COUNT(*) FROM workers
                 WHERE seen_at > clock_timestamp() - $1 * INTERVAL '1 millisecond'",
                &[&lease],
            )?
            .first()
            .map_or(1, |r| r.get::<_, i64>(0).max(1) as usize);
        let share = (self.partitions as usize).div_ceil(round.workers);
        let held = self.ownership.held();
        if held.len() > share {
            let surplus: Vec<u32> = held
                .keys()
                .rev()
                .take(held.len() - share)
                .copied()
                .collect();
            self.release(&surplus)?;
            round.released = surplus;
        } else if held.len() < share {
            round.taken = self.take((share - held.len()) as i64)?;
        }
        // Forget workers gone for long; their leases have long run out.
        self.conn.execute(
            "DELETE FROM workers WHERE seen_at < clock_timestamp() - $1 * INTERVAL '1 millisecond'",
            &[&(lease * 20.0)],
        )?;
        Ok(round)
    }

    /// Take up to `n` partitions nobody holds (never held, handed back, or
    /// whose lease ran out), bumping their epoch.
    fn take(&mut self, n: i64) -> Result<Vec<u32>, StoreError> {
        let me = self.ownership.worker().to_owned();
        let lease = self.lease_ms();
        let rows = self.conn.query(
            "UPDATE partitions
             SET owner = $1, epoch = epoch + 1,
                 lease_until = clock_timestamp() + $2 * INTERVAL '1 millisecond'
             WHERE id IN (
                 SELECT id FROM partitions WHERE lease_until < clock_timestamp()
                 ORDER BY id LIMIT $3 FOR UPDATE SKIP LOCKED)
             RETURNING id, epoch",
            &[&me, &lease, &n],
        )?;
        let mut held = self.ownership.lock();
        let mut taken = Vec::new();
        for r in rows {
            let p = r.get::<_, i32>(0) as u32;
            held.insert(p, r.get(1));
            taken.push(p);
        }
        Ok(taken)
    }

    /// Hand partitions back: forgotten here first, so nothing more is
    /// committed for them, then freed in the database.
    fn release(&mut self, parts: &[u32]) -> Result<(), StoreError> {
        for p in parts {
            self.ownership.forget(*p);
        }
        let ids: Vec<i32> = parts.iter().map(|p| *p as i32).collect();
        let me = self.ownership.worker().to_owned();
        self.conn.execute(
            "UPDATE partitions SET owner = NULL, lease_until = '-infinity'
             WHERE id = ANY($1) AND owner = $2",
            &[&ids, &me],
        )?;
        Ok(())
    }

    /// Take every partition no live worker holds, for a process that
    /// works alone (`casework run`, tests). Returns the partitions other
    /// workers hold, which this one cannot write.
    pub fn take_all(&mut self) -> Result<Vec<u32>, StoreError> {
        self.round_alone()?;
        let held = self.ownership.held();
        Ok((0..self.partitions)
            .filter(|p| !held.contains_key(p))
            .collect())
    }

    fn round_alone(&mut self) -> Result<(), StoreError> {
        self.heartbeat()?;
        self.take(i64::from(self.partitions))?;
        self.renewed = Some(Instant::now());
        Ok(())
    }

    /// Say this worker is alive.
    fn heartbeat(&mut self) -> Result<(), StoreError> {
        let me = self.ownership.worker().to_owned();
        self.conn.execute(
            "INSERT INTO workers (name, seen_at) VALUES ($1, clock_timestamp())
             ON CONFLICT (name) DO UPDATE SET seen_at = excluded.seen_at",
            &[&me],
        )?;
        Ok(())
    }

    /// Renew every lease still ours, without changing the share (alone,
    /// a process runs only this); returns the partitions lost (the lease
    /// ran out, or the epoch moved on).
    pub fn renew(&mut self) -> Result<Vec<u32>, StoreError> {
        let me = self.ownership.worker().to_owned();
        let lease = self.lease_ms();
        let renewed: BTreeMap<u32, i64> = self
            .conn
            .query(
                "UPDATE partitions
                 SET lease_until = clock_timestamp() + $2 * INTERVAL '1 millisecond'
                 WHERE owner = $1 AND lease_until > clock_timestamp()
                 RETURNING id, epoch",
                &[&me, &lease],
            )?
            .iter()
            .map(|r| (r.get::<_, i32>(0) as u32, r.get::<_, i64>(1)))
            .collect();
        self.renewed = Some(Instant::now());
        let mut held = self.ownership.lock();
        let lost = held
            .iter()
            .filter(|(p, e)| renewed.get(p) != Some(e))
            .map(|(p, _)| *p)
            .collect();
        *held = renewed;
        Ok(lost)
    }

    /// Hand every partition back at once (SIGTERM, the end of a run) and
    /// leave the workers.
    pub fn release_all(&mut self) -> Result<(), StoreError> {
        let held: Vec<u32> = self.ownership.held().into_keys().collect();
        self.release(&held)?;
        let me = self.ownership.worker().to_owned();
        self.conn
            .execute("DELETE FROM workers WHERE name = $1", &[&me])?;
        Ok(())
    }

    /// Every partition's owner and how long its lease still runs, for
    /// `/health`.
    pub fn table(&mut self) -> Result<Vec<PartitionOwner>, StoreError> {
        let rows = self.conn.query(
            "SELECT id, owner, epoch,
                    GREATEST(EXTRACT(EPOCH FROM lease_until - clock_timestamp()), 0)::FLOAT8
             FROM partitions WHERE lease_until > '-infinity' ORDER BY id",
            &[],
        )?;
        Ok(rows
            .iter()
            .map(|r| PartitionOwner {
                partition: r.get::<_, i32>(0) as u32,
                owner: r.get(1),
                epoch: r.get(2),
                lease_left_seconds: r.get(3),
            })
            .collect())
    }

    /// Run rounds every third of the lease until `stop`, then hand every
    /// partition back. `report` hears of each change and each failure.
    pub fn keep(
        mut self,
        stop: Arc<AtomicBool>,
        alone: bool,
        report: impl Fn(Result<LeaseRound, StoreError>) + Send + 'static,
    ) -> std::thread::JoinHandle<()> {
        std::thread::spawn(move || {
            let every = self.lease / 3;
            let mut next = Instant::now();
            while !stop.load(Ordering::SeqCst) {
                if Instant::now() >= next {
                    let result = if alone {
                        self.renew().map(|lost| LeaseRound {
                            lost,
                            ..LeaseRound::default()
                        })
                    } else {
                        self.round()
                    };
                    report(result);
                    next = Instant::now() + every;
                }
                std::thread::sleep(Duration::from_millis(20).min(every));
            }
            if let Err(e) = self.release_all() {
                report(Err(e));
            }
        })
    }
}
