//! How many streams a multiplexed connection (an HTTP/2 upstream, an mTLS
//! tunnel) carries, so a pool can open another connection before one runs
//! out of streams instead of letting requests queue on it unbounded.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

/// A connection's open streams.
#[derive(Clone, Default)]
pub struct StreamCount(Arc<AtomicUsize>);

/// One stream's claim on its connection, given back when dropped.
pub struct Slot(Arc<AtomicUsize>);

impl StreamCount {
    /// A count for a new connection, with its first stream claimed.
    pub fn first() -> (StreamCount, Slot) {
        let c = StreamCount(Arc::new(AtomicUsize::new(1)));
        let slot = Slot(c.0.clone());
        (c, slot)
    }

    /// A stream, if fewer than `limit` are open.
    pub fn try_claim(&self, limit: usize) -> Option<Slot> {
        let mut n = self.0.load(Ordering::Acquire);
        while n < limit {
            match self
                .0
                .compare_exchange_weak(n, n + 1, Ordering::AcqRel, Ordering::Acquire)
            {
                Ok(_) => return Some(Slot(self.0.clone())),
                Err(now) => n = now,
            }
        }
        None
    }

    #[cfg(test)]
    pub fn open(&self) -> usize {
        self.0.load(Ordering::Acquire)
    }

    /// Whether `other` counts the same connection.
    pub fn same(&self, other: &StreamCount) -> bool {
        Arc::ptr_eq(&self.0, &other.0)
    }
}

impl Drop for Slot {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::AcqRel);
    }
}

#[cfg(test)]
mod tests {
    use super::StreamCount;

    #[test]
    fn claims_stop_at_the_limit_and_come_back_when_dropped() {
        let (count, first) = StreamCount::first();
        let second = count.try_claim(2).expect("room for a second");
        assert!(count.try_claim(2).is_none());
        drop(first);
        let third = count.try_claim(2).expect("a slot came back");
        assert_eq!(count.open(), 2);
        drop((second, third));
        assert_eq!(count.open(), 0);
    }
}
