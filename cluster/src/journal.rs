//! Writes waiting for etcd, in the order the leader made them, and how
//! they are packed into transactions within etcd's limits: at most
//! [`MAX_OPS`] operations (etcd's `--max-txn-ops` is 128 by default) and
//! [`MAX_BYTES`] of values (its request limit is 1.5 MiB), no key twice
//! (etcd refuses a transaction that writes a key twice).

use std::collections::VecDeque;

/// Most operations in one transaction, leaving room for the fence and the
/// writer's mark.
pub const MAX_OPS: usize = 120;

/// Most bytes of keys and values in one transaction.
pub const MAX_BYTES: usize = 1024 * 1024;

/// One change to etcd.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Op {
    /// Create or replace a key.
    Put(String, Vec<u8>),
    /// Remove a key.
    Delete(String),
    /// Remove every key under a prefix.
    DeletePrefix(String),
}

impl Op {
    fn key(&self) -> &str {
        match self {
            Op::Put(key, _) | Op::Delete(key) | Op::DeletePrefix(key) => key,
        }
    }

    fn size(&self) -> usize {
        match self {
            Op::Put(key, value) => key.len() + value.len(),
            Op::Delete(key) | Op::DeletePrefix(key) => key.len(),
        }
    }

    /// Whether this and `other` touch a common key.
    fn overlaps(&self, other: &Op) -> bool {
        match (self, other) {
            (Op::DeletePrefix(p), o) | (o, Op::DeletePrefix(p)) => {
                o.key().starts_with(p.as_str()) || p.starts_with(o.key())
            }
            (a, b) => a.key() == b.key(),
        }
    }
}

/// The changes of one store call, applied together or not at all.
#[derive(Debug, Clone, PartialEq)]
pub struct Unit {
    /// Its place in the journal.
    pub seq: u64,
    /// The changes.
    pub ops: Vec<Op>,
    /// Keys that must not exist (an idempotency key's reservation).
    pub absent: Vec<String>,
}

/// The queue of units not yet committed.
#[derive(Debug, Default)]
pub struct Journal {
    last: u64,
    queued: VecDeque<Unit>,
}

/// Units packed for one transaction.
#[derive(Debug, Default, PartialEq)]
pub struct Batch {
    /// The last unit's sequence number.
    pub through: u64,
    /// How many units it holds, from the front of the queue.
    pub units: usize,
    /// The operations, one per key.
    pub ops: Vec<Op>,
    /// Keys that must not exist.
    pub absent: Vec<String>,
}

impl Journal {
    /// Queues a unit; answers its sequence number.
    pub fn push(&mut self, ops: Vec<Op>, absent: Vec<String>) -> u64 {
        self.last += 1;
        self.queued.push_back(Unit {
            seq: self.last,
            ops,
            absent,
        });
        self.last
    }

    /// The sequence number of the last unit queued.
    pub fn last(&self) -> u64 {
        self.last
    }

    /// Whether nothing waits.
    pub fn is_empty(&self) -> bool {
        self.queued.is_empty()
    }

    /// The next transaction: as many units from the front as fit, a later
    /// write of a key replacing an earlier one. A unit too big for any
    /// transaction goes alone (and etcd will refuse it).
    pub fn next_batch(&self) -> Batch {
        let mut batch = Batch::default();
        let mut bytes = 0;
        for unit in &self.queued {
            let mut ops = batch.ops.clone();
            let mut fits = true;
            for op in &unit.ops {
                if let Some(i) = ops.iter().position(|o| o.key() == op.key()) {
                    if matches!(op, Op::DeletePrefix(_)) || matches!(ops[i], Op::DeletePrefix(_)) {
                        fits = false;
                        break;
                    }
                    ops[i] = op.clone();
                } else if ops.iter().any(|o| o.overlaps(op)) {
                    fits = false;
                    break;
                } else {
                    ops.push(op.clone());
                }
            }
            let size: usize = unit.ops.iter().map(Op::size).sum();
            let fits = fits
                && ops.len() <= MAX_OPS
                && bytes + size <= MAX_BYTES
                && !unit.absent.iter().any(|k| batch.absent.contains(k));
            if !fits && batch.units > 0 {
                break;
            }
            if !fits {
                // Alone, as it is.
                batch.ops = unit.ops.clone();
            } else {
                batch.ops = ops;
            }
            bytes += size;
            batch.units += 1;
            batch.through = unit.seq;
            batch.absent.extend(unit.absent.iter().cloned());
            if !fits {
                break;
            }
        }
        batch
    }

    /// The queued units, front first.
    pub fn units(&self) -> impl Iterator<Item = &Unit> {
        self.queued.iter()
    }

    /// Drops the units a committed batch held.
    pub fn committed(&mut self, batch: &Batch) {
        for _ in 0..batch.units {
            self.queued.pop_front();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn put(key: &str, value: &str) -> Op {
        Op::Put(key.into(), value.as_bytes().to_vec())
    }

    #[test]
    fn later_writes_of_a_key_replace_earlier_ones_in_one_batch() {
        let mut journal = Journal::default();
        journal.push(vec![put("/i/1", "pending"), put("/e/1/0", "a")], vec![]);
        journal.push(vec![put("/i/1", "creating"), put("/e/1/1", "b")], vec![]);
        let batch = journal.next_batch();
        assert_eq!(batch.units, 2);
        assert_eq!(batch.through, 2);
        assert_eq!(
            batch.ops,
            vec![
                put("/i/1", "creating"),
                put("/e/1/0", "a"),
                put("/e/1/1", "b")
            ]
        );
        journal.committed(&batch);
        assert!(journal.is_empty());
        assert_eq!(journal.last(), 2);
    }

    #[test]
    fn a_prefix_delete_does_not_share_a_batch_with_keys_under_it() {
        let mut journal = Journal::default();
        journal.push(vec![put("/e/1/0", "a")], vec![]);
        journal.push(vec![Op::DeletePrefix("/e/1/".into())], vec![]);
        let first = journal.next_batch();
        assert_eq!(first.units, 1);
        journal.committed(&first);
        assert_eq!(
            journal.next_batch().ops,
            vec![Op::DeletePrefix("/e/1/".into())]
        );
    }

    #[test]
    fn batches_stay_within_etcds_operation_limit_and_keep_units_whole() {
        let mut journal = Journal::default();
        for n in 0..100 {
            journal.push(
                vec![put(&format!("/a/{n}"), "x"), put(&format!("/b/{n}"), "y")],
                vec![],
            );
        }
        let mut units = 0;
        while !journal.is_empty() {
            let batch = journal.next_batch();
            assert!(batch.ops.len() <= MAX_OPS);
            assert_eq!(batch.ops.len(), batch.units * 2, "units are never split");
            units += batch.units;
            journal.committed(&batch);
        }
        assert_eq!(units, 100);
    }

    #[test]
    fn a_unit_too_big_for_any_transaction_goes_alone() {
        let mut journal = Journal::default();
        journal.push(vec![put("/small", "x")], vec![]);
        let huge: Vec<Op> = (0..MAX_OPS + 5)
            .map(|n| put(&format!("/h/{n}"), "x"))
            .collect();
        journal.push(huge.clone(), vec![]);
        journal.push(vec![put("/after", "x")], vec![]);
        let first = journal.next_batch();
        assert_eq!(first.units, 1);
        journal.committed(&first);
        let second = journal.next_batch();
        assert_eq!((second.units, second.ops.len()), (1, MAX_OPS + 5));
        journal.committed(&second);
        assert_eq!(journal.next_batch().ops, vec![put("/after", "x")]);
    }

    #[test]
    fn two_reservations_of_one_key_never_share_a_transaction() {
        let mut journal = Journal::default();
        journal.push(vec![put("/r/1", "x")], vec!["/idem/k".into()]);
        journal.push(vec![put("/r/2", "y")], vec!["/idem/k".into()]);
        assert_eq!(journal.next_batch().units, 1);
    }
}
