//! A collection's two background threads and the counters they keep.
//!
//! The sealer writes each frozen memtable into a segment (retrying with a growing pause
//! when a seal fails) and commits waiting text index updates on a timer. The compactor
//! merges segments after seals. They are separate so that a long compaction never
//! delays a seal, which is what writers wait for when they wait at all. Both hold only
//! a weak reference between runs and exit when their channel closes; a collection being
//! closed also sets `closing`, which a running compaction checks between batches.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::mpsc::{sync_channel, Receiver, RecvTimeoutError, SyncSender};
use std::sync::{Arc, OnceLock, Weak};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use quiver_storage::StorageError;

use super::Inner;
use crate::Result;

/// Longest pause between attempts to seal after failures.
const MAX_SEAL_RETRY: Duration = Duration::from_secs(30);

/// What background maintenance is doing and has done since the collection opened.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct MaintenanceStats {
    /// Frozen memtables waiting for their seal, or in it (at most one).
    pub queued_memtables: usize,
    /// A seal is writing a segment now.
    pub sealing: bool,
    /// A compaction is merging segments now.
    pub compacting: bool,
    pub seals: u64,
    pub failed_seals: u64,
    /// Time spent in seals, in all and in the latest.
    pub seal_time: Duration,
    pub last_seal: Duration,
    pub compactions: u64,
    pub compaction_time: Duration,
    pub last_compaction: Duration,
    /// Writes that waited for a seal to make room, and how long they waited in all.
    pub write_stalls: u64,
    pub write_stall_time: Duration,
}

/// The live counters behind [`MaintenanceStats`].
#[derive(Debug, Default)]
pub(super) struct Counters {
    pub(super) sealing: AtomicBool,
    pub(super) compacting: AtomicBool,
    /// The compactor has been asked to run and has not started yet.
    pub(super) compaction_due: AtomicBool,
    seals: AtomicU64,
    failed_seals: AtomicU64,
    seal_nanos: AtomicU64,
    last_seal_nanos: AtomicU64,
    compactions: AtomicU64,
    compaction_nanos: AtomicU64,
    last_compaction_nanos: AtomicU64,
    stalls: AtomicU64,
    stall_nanos: AtomicU64,
    /// When the last write ended, in nanoseconds of [`clock`].
    last_write: AtomicU64,
    /// Writes under way: a long batch in progress is not a quiet spell.
    writes_in_flight: AtomicU64,
}

/// Marks a write under way until dropped.
pub(super) struct Writing<'a>(&'a Counters);

impl Drop for Writing<'_> {
    fn drop(&mut self) {
        self.0.last_write.store(clock(), Ordering::Relaxed);
        self.0.writes_in_flight.fetch_sub(1, Ordering::AcqRel);
    }
}

/// Nanoseconds since the first call in this process: a monotonic clock that fits an
/// atomic.
fn clock() -> u64 {
    static START: OnceLock<Instant> = OnceLock::new();
    nanos(START.get_or_init(Instant::now).elapsed())
}

fn nanos(d: Duration) -> u64 {
    u64::try_from(d.as_nanos()).unwrap_or(u64::MAX)
}

fn load(a: &AtomicU64) -> u64 {
    a.load(Ordering::Acquire)
}

impl Counters {
    /// Whether a seal or compaction is running, or a compaction is due. `compaction_due`
    /// is read first: the compactor sets `compacting` before it clears it.
    pub(super) fn busy(&self) -> bool {
        self.compaction_due.load(Ordering::Acquire)
            || self.sealing.load(Ordering::Acquire)
            || self.compacting.load(Ordering::Acquire)
    }

    pub(super) fn seal_done(&self, took: Duration, ok: bool) {
        let count = if ok { &self.seals } else { &self.failed_seals };
        count.fetch_add(1, Ordering::AcqRel);
        self.seal_nanos.fetch_add(nanos(took), Ordering::AcqRel);
        self.last_seal_nanos.store(nanos(took), Ordering::Release);
    }

    pub(super) fn compaction_done(&self, took: Duration) {
        self.compactions.fetch_add(1, Ordering::AcqRel);
        self.compaction_nanos
            .fetch_add(nanos(took), Ordering::AcqRel);
        self.last_compaction_nanos
            .store(nanos(took), Ordering::Release);
    }

    /// Notes a write under way until the returned guard drops.
    pub(super) fn writing(&self) -> Writing<'_> {
        self.writes_in_flight.fetch_add(1, Ordering::AcqRel);
        Writing(self)
    }

    /// Time since the last write ended; zero while one is under way.
    pub(super) fn since_last_write(&self) -> Duration {
        if self.writes_in_flight.load(Ordering::Acquire) > 0 {
            return Duration::ZERO;
        }
        Duration::from_nanos(clock().saturating_sub(self.last_write.load(Ordering::Relaxed)))
    }

    pub(super) fn stalled(&self, took: Duration) {
        self.stalls.fetch_add(1, Ordering::AcqRel);
        self.stall_nanos.fetch_add(nanos(took), Ordering::AcqRel);
    }

    pub(super) fn snapshot(&self, queued_memtables: usize) -> MaintenanceStats {
        MaintenanceStats {
            queued_memtables,
            sealing: self.sealing.load(Ordering::Acquire),
            compacting: self.compacting.load(Ordering::Acquire),
            seals: load(&self.seals),
            failed_seals: load(&self.failed_seals),
            seal_time: Duration::from_nanos(load(&self.seal_nanos)),
            last_seal: Duration::from_nanos(load(&self.last_seal_nanos)),
            compactions: load(&self.compactions),
            compaction_time: Duration::from_nanos(load(&self.compaction_nanos)),
            last_compaction: Duration::from_nanos(load(&self.last_compaction_nanos)),
            write_stalls: load(&self.stalls),
            write_stall_time: Duration::from_nanos(load(&self.stall_nanos)),
        }
    }
}

/// Wake-up channels of the two threads; dropping them (on close) ends the threads.
#[derive(Debug)]
pub(super) struct Signals {
    seal: SyncSender<()>,
    compact: SyncSender<()>,
}

impl Signals {
    /// Asks the sealer to seal the frozen memtable.
    pub(super) fn seal(&self) {
        // A full channel already has a wake-up pending.
        let _ = self.seal.try_send(());
    }

    /// Asks the compactor to look for segments to merge.
    pub(super) fn compact(&self) {
        let _ = self.compact.try_send(());
    }
}

/// The running threads of one collection.
#[derive(Debug)]
pub(super) struct Workers {
    sealer: JoinHandle<()>,
    compactor: JoinHandle<()>,
}

fn spawn(
    inner: &Arc<Inner>,
    role: &str,
    body: impl FnOnce(Weak<Inner>) + Send + 'static,
) -> Result<JoinHandle<()>> {
    let weak = Arc::downgrade(inner);
    std::thread::Builder::new()
        .name(format!("{role}-{}", inner.name))
        .spawn(move || body(weak))
        .map_err(|e| StorageError::io(&inner.dir, e).into())
}

impl Workers {
    pub(super) fn start(inner: &Arc<Inner>) -> Result<(Workers, Signals)> {
        let (seal_tx, seal_rx) = sync_channel::<()>(1);
        let (compact_tx, compact_rx) = sync_channel::<()>(1);
        let interval = inner.opts.text_commit_interval;
        let sealer = spawn(inner, "seal", move |weak| sealer(&weak, &seal_rx, interval))?;
        let compactor = spawn(inner, "compact", move |weak| compactor(&weak, &compact_rx))?;
        let signals = Signals {
            seal: seal_tx,
            compact: compact_tx,
        };
        Ok((Workers { sealer, compactor }, signals))
    }

    /// Waits for both threads; the caller has already dropped the signals.
    pub(super) fn stop(self) {
        let _ = self.sealer.join();
        let _ = self.compactor.join();
    }
}

fn sealer(weak: &Weak<Inner>, rx: &Receiver<()>, interval: Duration) {
    let mut retry_at: Option<(Instant, Duration)> = None;
    loop {
        let wait = retry_at.map_or(interval, |(at, _)| {
            at.saturating_duration_since(Instant::now()).min(interval)
        });
        if let Err(RecvTimeoutError::Disconnected) = rx.recv_timeout(wait) {
            break;
        }
        let Some(inner) = weak.upgrade() else { break };
        let due = retry_at.is_none_or(|(at, _)| Instant::now() >= at);
        if due {
            match inner.seal_queued() {
                Ok(_) => retry_at = None,
                Err(e) => {
                    let pause = retry_at
                        .map_or(Duration::from_secs(1), |(_, p)| (p * 2).min(MAX_SEAL_RETRY));
                    tracing::error!(collection = %inner.name, error = %e, retry_in = ?pause, "seal failed; the frozen memtable stays searchable");
                    retry_at = Some((Instant::now() + pause, pause));
                }
            }
        }
        inner.commit_text_if_pending();
    }
}

fn compactor(weak: &Weak<Inner>, rx: &Receiver<()>) {
    while rx.recv().is_ok() {
        // Let a bulk load finish first (see `CollectionOptions::compact_quiet`).
        loop {
            let Some(wait) = weak.upgrade().map(|inner| inner.compaction_wait()) else {
                return;
            };
            let Some(wait) = wait else { break };
            if let Err(RecvTimeoutError::Disconnected) = rx.recv_timeout(wait) {
                return;
            }
        }
        let Some(inner) = weak.upgrade() else { break };
        if inner.opts.background_compaction {
            inner.counters.compacting.store(true, Ordering::Release);
            inner
                .counters
                .compaction_due
                .store(false, Ordering::Release);
            if let Err(e) = inner.compact() {
                tracing::error!(collection = %inner.name, error = %e, "compaction failed");
            }
            inner.counters.compacting.store(false, Ordering::Release);
        }
    }
}
