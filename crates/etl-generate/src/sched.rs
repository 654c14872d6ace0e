//! A bounded set of in-flight items (calls, sessions), each due at an event time.

use std::cmp::Reverse;
use std::collections::BinaryHeap;

/// In-flight items ordered by due time (ties by slot, so the order is deterministic).
#[derive(Debug)]
pub(crate) struct Scheduler<T> {
    slots: Vec<Option<T>>,
    free: Vec<u32>,
    heap: BinaryHeap<Reverse<(i64, u32)>>,
    cap: usize,
}

impl<T> Scheduler<T> {
    pub(crate) fn new(cap: usize) -> Self {
        Scheduler {
            slots: Vec::new(),
            free: Vec::new(),
            heap: BinaryHeap::new(),
            cap: cap.max(1),
        }
    }

    /// The item to advance at `now`: the earliest one if it is due or the set is full. `None`
    /// means the caller should start a new item.
    pub(crate) fn take(&mut self, now: i64) -> Option<T> {
        let Reverse((due, _)) = *self.heap.peek()?;
        if due > now && self.heap.len() < self.cap {
            return None;
        }
        let Reverse((_, slot)) = self.heap.pop()?;
        self.free.push(slot);
        self.slots.get_mut(slot as usize).and_then(Option::take)
    }

    /// Puts an item (back) in flight, due at `due`.
    pub(crate) fn insert(&mut self, item: T, due: i64) {
        let slot = match self.free.pop() {
            Some(s) => {
                self.slots[s as usize] = Some(item);
                s
            }
            None => {
                self.slots.push(Some(item));
                (self.slots.len() - 1) as u32
            }
        };
        self.heap.push(Reverse((due, slot)));
    }

    /// Items in flight.
    #[cfg(test)]
    pub(crate) fn len(&self) -> usize {
        self.heap.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn due_order_and_cap() {
        let mut s = Scheduler::new(2);
        assert!(s.take(0).is_none());
        s.insert("a", 10);
        s.insert("b", 5);
        assert!(
            s.take(4).is_some(),
            "full set hands out the earliest even if not due"
        );
        assert_eq!(s.len(), 1);
        assert!(s.take(9).is_none());
        assert_eq!(s.take(10), Some("a"));
        assert_eq!(s.len(), 0);
    }
}
