//! Open images: the small counts every view probes, apart from the records and remixers that
//! only a publish, a remix or a close touch (kept in reusable slots).

use super::Windows;
use super::record::{OpenCounts, OpenImage};

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
