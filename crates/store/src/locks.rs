//! Named asynchronous locks, created on demand.
//!
//! Used for upload sessions (a PATCH racing a PUT on one session must not interleave writes to
//! its staging file) and for blob digests (committing a blob and, later, collecting it must not
//! interleave the file check, link and row insert). Requests on different keys never wait
//! for each other.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use tokio::sync::OwnedMutexGuard;

/// A table of locks keyed by name.
#[derive(Default, Debug)]
pub struct KeyedLocks {
    locks: Mutex<HashMap<String, Arc<tokio::sync::Mutex<()>>>>,
}

/// Holds a key's lock; the table entry is dropped with the last holder.
pub struct KeyGuard<'a> {
    table: &'a KeyedLocks,
    key: String,
    guard: Option<OwnedMutexGuard<()>>,
}

impl KeyedLocks {
    /// Waits for exclusive use of `key`.
    pub async fn lock(&self, key: &str) -> KeyGuard<'_> {
        let lock = {
            let mut locks = self.locks.lock().unwrap_or_else(|e| e.into_inner());
            locks.entry(key.to_owned()).or_default().clone()
        };
        KeyGuard {
            table: self,
            key: key.to_owned(),
            guard: Some(lock.lock_owned().await),
        }
    }
}

impl Drop for KeyGuard<'_> {
    fn drop(&mut self) {
        let mut locks = self.table.locks.lock().unwrap_or_else(|e| e.into_inner());
        self.guard.take();
        // Nobody else holds or waits for the lock when only the table's reference remains.
        if locks
            .get(&self.key)
            .is_some_and(|lock| Arc::strong_count(lock) == 1)
        {
            locks.remove(&self.key);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn entries_are_removed_when_the_last_holder_leaves() {
        let table = KeyedLocks::default();
        {
            let _a = table.lock("a").await;
            assert_eq!(table.locks.lock().unwrap().len(), 1);
        }
        assert!(table.locks.lock().unwrap().is_empty());
    }

    #[tokio::test]
    async fn one_holder_at_a_time_per_key() {
        let table = Arc::new(KeyedLocks::default());
        let guard = table.lock("k").await;
        let other = table.clone();
        let waiter = tokio::spawn(async move {
            let _g = other.lock("k").await;
        });
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        assert!(!waiter.is_finished());
        drop(guard);
        waiter.await.unwrap();
        let _unrelated = table.lock("other").await;
    }
}
