//! A hand-off to a reading thread of what it must act on between two reads (seeks the loop asks
//! for, rebalances librdkafka reports). The thread looks after every message and something
//! arrives rarely: a flag spares it a lock each time.

use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, Ordering};

pub struct Mailbox<T> {
    posted: AtomicBool,
    items: Mutex<Vec<T>>,
}

impl<T> Default for Mailbox<T> {
    fn default() -> Self {
        Self {
            posted: AtomicBool::new(false),
            items: Mutex::new(Vec::new()),
        }
    }
}

impl<T> Mailbox<T> {
    pub fn post(&self, item: T) {
        if let Ok(mut items) = self.items.lock() {
            items.push(item);
        }
        self.posted.store(true, Ordering::Release);
    }

    /// Everything posted since the last take, oldest first.
    pub fn take(&self) -> Vec<T> {
        if !self.posted.swap(false, Ordering::Acquire) {
            return Vec::new();
        }
        self.items
            .lock()
            .map(|mut items| std::mem::take(&mut *items))
            .unwrap_or_default()
    }
}
