//! One stream partition's curation: the same intake, windows and curator as the batch command,
//! fed one message at a time, with what each message changes gathered for the next commit and
//! the whole state serialisable as a snapshot.
//!
//! Closing and flushing depend only on the events (see `window::close_due`), so cutting the
//! stream into micro-batches, or replaying part of it after a restart, changes nothing in the
//! triplets. Messages the catalog already holds are replayed with `record = false`: they rebuild
//! memory and produce nothing to commit.

use serde::{Deserialize, Serialize};

use crate::events::dedup::EventIdDedup;
use crate::events::{
    DeadLetter, Event, EventKind, Intake, IntakeCounts, Limits, Parsed, Publish, SourcePosition,
    Timestamp, Validator,
};
use crate::hashing::FastMap;
use crate::store::{CounterDelta, ObjectRoot};

use super::admit::{admit, end_of_input, settle_unclaimed};
use super::config::CurateConfig;
use super::config::ImageDedup;
use super::curator::{Curator, CuratorMemory, Flushed, SuppliedHashes};
use super::error::CurateError;
use super::window::Windows;

/// How a partition curator is built; a snapshot must be restored with the same settings.
#[derive(Debug, Clone)]
pub struct PartitionSettings {
    pub config: CurateConfig,
    pub limits: Limits,
    pub now: Timestamp,
    pub dedup_horizon_hours: f64,
    pub image_dedup: ImageDedup,
    pub images: Option<ObjectRoot>,
    /// How the triplet files name the pictures (`config.path_style` against their root).
    pub pictures: super::paths::PicturePaths,
    /// With `ImageDedup::Supplied`: the hashes, loaded once and shared by every partition.
    pub supplied: std::sync::Arc<SuppliedHashes>,
}

/// What a run of messages changed, for one catalog transaction.
#[derive(Debug, Default)]
pub struct PendingCommit {
    pub messages: u64,
    pub publishes: Vec<Publish<'static>>,
    counters: FastMap<String, (i64, i64)>,
    pub letters: Vec<DeadLetter>,
    pub flushed: Flushed,
}

impl PendingCommit {
    /// Counter deltas in a stable order (the order rows are locked in).
    pub fn deltas(&self) -> Vec<CounterDelta> {
        let mut deltas: Vec<CounterDelta> = self
            .counters
            .iter()
            .map(|(image_id, &(views, remixes))| CounterDelta {
                image_id: image_id.clone(),
                views,
                remixes,
            })
            .collect();
        deltas.sort_by(|a, b| a.image_id.cmp(&b.image_id));
        deltas
    }

    /// Tallies a valid event for the catalog: its publish row or its image's counters.
    fn note(&mut self, event: &Event<'_>) {
        match event {
            Event::Publish(p) => self.publishes.push(p.as_ref().clone().into_owned()),
            Event::View(v) => self.counter(&v.image_id).0 += 1,
            Event::Remix(r) => self.counter(&r.image_id).1 += 1,
        }
    }

    /// Looked up before inserting: most events name an image already in the batch, and its id
    /// need not be copied again.
    fn counter(&mut self, image_id: &str) -> &mut (i64, i64) {
        if !self.counters.contains_key(image_id) {
            self.counters.insert(image_id.to_owned(), (0, 0));
        }
        self.counters.get_mut(image_id).expect("inserted above")
    }

    /// Nothing to commit: no message, dead letter, file or emitted image.
    pub fn is_empty(&self) -> bool {
        self.messages == 0
            && self.letters.is_empty()
            && self.flushed.parts.is_empty()
            && self.flushed.images.is_empty()
    }

    fn merge(&mut self, flushed: Flushed) {
        self.flushed.candidates += flushed.candidates;
        self.flushed.capped += flushed.capped;
        self.flushed.images.extend(flushed.images);
        for (key, rows) in flushed.parts {
            // A day flushes once; two flushes of one partition key would be two files.
            self.flushed.parts.entry(key).or_default().extend(rows);
        }
    }
}

/// 2: open images keep their counts apart from their records.
const SNAPSHOT_VERSION: u32 = 2;

#[derive(Serialize)]
struct SnapshotRef<'a> {
    version: u32,
    dedup: &'a EventIdDedup,
    counts: &'a IntakeCounts,
    windows: &'a Windows,
    curator: &'a CuratorMemory,
}

#[derive(Deserialize)]
struct Snapshot {
    version: u32,
    dedup: EventIdDedup,
    counts: IntakeCounts,
    windows: Windows,
    curator: CuratorMemory,
}

pub struct PartitionCurator {
    intake: Intake,
    windows: Windows,
    curator: Curator,
    pending: PendingCommit,
}

impl PartitionCurator {
    pub fn new(settings: &PartitionSettings) -> Result<Self, CurateError> {
        let validator = Validator::new(settings.limits.clone(), settings.now)?;
        Ok(Self {
            intake: Intake::new(validator, settings.dedup_horizon_hours),
            windows: Windows::new(&settings.config),
            curator: Self::curator(settings, None),
            pending: PendingCommit::default(),
        })
    }

    pub fn restore(settings: &PartitionSettings, bytes: &[u8]) -> Result<Self, CurateError> {
        let snapshot: Snapshot = rmp_serde::from_slice(bytes)?;
        if snapshot.version != SNAPSHOT_VERSION {
            return Err(CurateError::SnapshotVersion {
                found: snapshot.version,
                expected: SNAPSHOT_VERSION,
            });
        }
        let validator = Validator::new(settings.limits.clone(), settings.now)?;
        Ok(Self {
            intake: Intake::restore(validator, snapshot.dedup, snapshot.counts),
            windows: snapshot.windows,
            curator: Self::curator(settings, Some(snapshot.curator)),
            pending: PendingCommit::default(),
        })
    }

    fn curator(settings: &PartitionSettings, memory: Option<CuratorMemory>) -> Curator {
        let (config, dedup, images) = (
            settings.config.clone(),
            settings.image_dedup.clone(),
            settings.images.clone(),
        );
        let supplied = settings.supplied.clone();
        match memory {
            Some(memory) => Curator::restore(config, dedup, images, supplied, true, memory),
            None => Curator::new(config, dedup, images, supplied, true),
        }
    }

    /// The state between messages. Taken only at commit points, so `pending` is not in it.
    pub fn snapshot(&self) -> Result<Vec<u8>, CurateError> {
        let (dedup, counts) = self.intake.memory();
        rmp_serde::to_vec_named(&SnapshotRef {
            version: SNAPSHOT_VERSION,
            dedup,
            counts,
            windows: &self.windows,
            curator: self.curator.memory(),
        })
        .map_err(CurateError::from)
    }

    pub fn counts(&self) -> &IntakeCounts {
        self.intake.memory().1
    }

    pub fn open_sessions(&self) -> u64 {
        self.windows.counts().open_sessions
    }

    /// Folds one message in, parsed by [`parse_record`] with the settings' limits (`payload`
    /// may be cut short of its true length `raw_len`). With `record = false` (replay) only
    /// memory changes. Returns the kind of a valid event.
    ///
    /// [`parse_record`]: crate::events::parse_record
    pub async fn observe(
        &mut self,
        parsed: Parsed<'_>,
        payload: &[u8],
        raw_len: u64,
        position: impl Fn() -> SourcePosition,
        record: bool,
    ) -> Result<Option<EventKind>, CurateError> {
        let outcome = self
            .intake
            .accept_parsed(parsed, payload, raw_len, &position);
        let mut letters = Vec::new();
        let event = admit(
            &mut self.intake,
            &mut self.windows,
            outcome,
            payload,
            raw_len,
            position,
            &mut letters,
        );
        if let (true, Some(event)) = (record, &event) {
            self.pending.note(event);
        }
        let (closed, unclaimed) = self.windows.advance();
        settle_unclaimed(&mut self.intake, unclaimed, &mut letters);
        if record {
            self.pending.messages += 1;
            self.pending.letters.extend(letters);
        }
        if !closed.is_empty() {
            self.curator.process(closed).await?;
        }
        if let Some(flushed) = self.curator.flush_final(self.windows.final_before())
            && record
        {
            self.pending.merge(flushed);
        }
        Ok(event.map(|e| e.kind()))
    }

    /// The input is over (`--until-idle`, a backfill's end): buffered events that met no publish
    /// are dead letters, and whatever has closed is written, its day final or not.
    pub async fn end_of_input(&mut self) -> Result<(), CurateError> {
        let closed = end_of_input(
            &mut self.intake,
            &mut self.windows,
            &mut self.pending.letters,
        );
        if !closed.is_empty() {
            self.curator.process(closed).await?;
        }
        let flushed = self.curator.flush_all();
        self.pending.merge(flushed);
        Ok(())
    }

    pub fn take_pending(&mut self) -> PendingCommit {
        std::mem::take(&mut self.pending)
    }

    pub fn pending(&self) -> &PendingCommit {
        &self.pending
    }
}
