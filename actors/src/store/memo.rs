//! A value derived from what the store holds (the list of account names),
//! kept until a write changes its source: listings name the provider of
//! every instance, and decoding every account record for each request
//! was a tenth of serving one.

use std::sync::{Arc, Mutex};

/// The derived value and a generation that every change bumps.
#[derive(Debug)]
pub(crate) struct Memo<T> {
    state: Mutex<(u64, Option<Arc<T>>)>,
}

impl<T> Default for Memo<T> {
    fn default() -> Self {
        Memo {
            state: Mutex::new((0, None)),
        }
    }
}

impl<T> Memo<T> {
    /// Forgets the value; call after every write to its source.
    pub(crate) fn changed(&self) {
        let mut state = self.state.lock().unwrap_or_else(|p| p.into_inner());
        state.0 += 1;
        state.1 = None;
    }

    /// The kept value, or `compute`d afresh. A value computed while a
    /// change happened is returned but not kept: it may be older than the
    /// change.
    pub(crate) fn get_or<E>(&self, compute: impl FnOnce() -> Result<T, E>) -> Result<Arc<T>, E> {
        let generation = {
            let state = self.state.lock().unwrap_or_else(|p| p.into_inner());
            if let Some(kept) = &state.1 {
                return Ok(kept.clone());
            }
            state.0
        };
        let value = Arc::new(compute()?);
        let mut state = self.state.lock().unwrap_or_else(|p| p.into_inner());
        if state.0 == generation {
            state.1 = Some(value.clone());
        }
        Ok(value)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keeps_a_value_until_a_change_and_never_one_computed_across_a_change() {
        let memo: Memo<u32> = Memo::default();
        assert_eq!(*memo.get_or(|| Ok::<_, ()>(1)).unwrap(), 1);
        assert_eq!(*memo.get_or(|| Ok::<_, ()>(2)).unwrap(), 1, "kept");
        memo.changed();
        // A change lands while the value is being computed: the (possibly
        // stale) value is answered once but not kept.
        let raced = memo
            .get_or(|| {
                memo.changed();
                Ok::<_, ()>(3)
            })
            .unwrap();
        assert_eq!(*raced, 3);
        assert_eq!(*memo.get_or(|| Ok::<_, ()>(4)).unwrap(), 4);
        assert!(memo.get_or(|| Err::<u32, _>("failed")).is_ok(), "kept 4");
        memo.changed();
        assert_eq!(memo.get_or(|| Err::<u32, _>("failed")), Err("failed"));
    }
}
