//! The event queue: earliest first, ties in scheduling order (which makes runs deterministic).
//! The heap holds only small keys; events wait in a slab, so a heap operation moves 24 bytes
//! whatever the event carries.

use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::time::Duration;

/// Events keyed by virtual time.
#[derive(Debug)]
pub(crate) struct EventQueue<E> {
    /// (time in nanoseconds, scheduling sequence, slab slot).
    heap: BinaryHeap<Reverse<(u64, u64, u32)>>,
    slots: Vec<Option<E>>,
    free: Vec<u32>,
    seq: u64,
}

impl<E> EventQueue<E> {
    pub(crate) fn new() -> Self {
        Self {
            heap: BinaryHeap::new(),
            slots: Vec::new(),
            free: Vec::new(),
            seq: 0,
        }
    }

    pub(crate) fn push(&mut self, at: Duration, event: E) {
        let slot = if let Some(slot) = self.free.pop() {
            self.slots[slot as usize] = Some(event);
            slot
        } else {
            self.slots.push(Some(event));
            u32::try_from(self.slots.len() - 1).unwrap_or(u32::MAX)
        };
        self.seq += 1;
        self.heap.push(Reverse((nanos(at), self.seq, slot)));
    }

    /// When the earliest event is due.
    pub(crate) fn peek_time(&self) -> Option<Duration> {
        self.heap
            .peek()
            .map(|Reverse((at, _, _))| Duration::from_nanos(*at))
    }

    /// The earliest event.
    pub(crate) fn pop(&mut self) -> Option<E> {
        let Reverse((_, _, slot)) = self.heap.pop()?;
        let event = self.slots.get_mut(slot as usize)?.take();
        self.free.push(slot);
        event
    }
}

/// Virtual time as nanoseconds (saturating: 584 years).
pub(crate) fn nanos(at: Duration) -> u64 {
    u64::try_from(at.as_nanos()).unwrap_or(u64::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn earliest_first_ties_in_order() {
        let mut q = EventQueue::new();
        let ms = Duration::from_millis;
        q.push(ms(5), "c");
        q.push(ms(1), "a");
        q.push(ms(5), "d");
        q.push(ms(1), "b");
        assert_eq!(q.peek_time(), Some(ms(1)));
        let order: Vec<_> = std::iter::from_fn(|| q.pop()).collect();
        assert_eq!(order, ["a", "b", "c", "d"]);
        assert_eq!(q.peek_time(), None);
        // Slots are reused.
        q.push(ms(2), "e");
        assert_eq!(q.slots.len(), 4);
        assert_eq!(q.pop(), Some("e"));
    }
}
