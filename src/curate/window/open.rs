//! Open images: the small counts every view probes, apart from the records and remixers that
//! only a publish, a remix or a close touch (kept in reusable slots).

use serde::{Deserialize, Serialize};

use super::{ImageRecord, Windows};

/// What a view of an open image touches: 16 bytes beside its 16-byte key. The open-image
/// table is probed at random once per event; with whole records in its buckets (~250 bytes)
/// it spanned hundreds of megabytes and nearly every probe missed the cache more than once.
#[derive(Clone, Copy, Serialize, Deserialize)]
pub(super) struct OpenCounts {
    pub(super) published: i64,
    pub(super) views: u32,
    /// Where the image's record and remixers are in `open_slots`.
    pub(super) slot: u32,
}

/// The rest of an open image, touched at its publish, its remixes and its close.
#[derive(Serialize, Deserialize)]
pub(super) struct OpenImage {
    pub(super) record: ImageRecord,
    pub(super) remixers: Vec<u64>,
}

impl Windows {
    /// Stores an open image's record in a free slot and returns the slot.
    pub(super) fn store_open(&mut self, image: OpenImage) -> u32 {
        match self.free_slots.pop() {
            Some(slot) => {
                self.open_slots[slot as usize] = Some(image);
                slot
            }
            None => {
                self.open_slots.push(Some(image));
                (self.open_slots.len() - 1) as u32
            }
        }
    }

    /// Takes an open image out of the table and its slot.
    pub(super) fn take_open(&mut self, key: &u128) -> Option<(OpenCounts, OpenImage)> {
        let counts = self.open_images.remove(key)?;
        let image = self.open_slots.get_mut(counts.slot as usize)?.take()?;
        self.free_slots.push(counts.slot);
        Some((counts, image))
    }
}
