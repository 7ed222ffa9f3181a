//! Brute-force protection: counts failed logins per key (a login name, a client address) in a
//! fixed window and blocks a key that failed too often until its window ends.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// Entries kept before old windows are swept, bounding memory under a flood of new keys.
const MAX_KEYS: usize = 100_000;

#[derive(Debug, Clone, Copy)]
struct Window {
    started: Instant,
    failures: u32,
}

/// Failure counters for one kind of key.
#[derive(Debug)]
pub struct Throttle {
    limit: u32,
    window: Duration,
    entries: Mutex<HashMap<String, Window>>,
}

impl Throttle {
    /// Allows `limit` failures per `window` and key.
    pub fn new(limit: u32, window: Duration) -> Self {
        Throttle {
            limit,
            window,
            entries: Mutex::new(HashMap::new()),
        }
    }

    /// How long `key` must wait, if it is blocked now.
    pub fn blocked_for(&self, key: &str) -> Option<Duration> {
        let entries = self.entries.lock().unwrap_or_else(|e| e.into_inner());
        let entry = entries.get(key)?;
        let elapsed = entry.started.elapsed();
        (entry.failures >= self.limit && elapsed < self.window).then(|| self.window - elapsed)
    }

    /// Records a failed attempt for `key`.
    pub fn fail(&self, key: &str) {
        let mut entries = self.entries.lock().unwrap_or_else(|e| e.into_inner());
        if entries.len() >= MAX_KEYS {
            let window = self.window;
            entries.retain(|_, w| w.started.elapsed() < window);
        }
        let now = Instant::now();
        let entry = entries.entry(key.to_owned()).or_insert(Window {
            started: now,
            failures: 0,
        });
        if entry.started.elapsed() >= self.window {
            *entry = Window {
                started: now,
                failures: 0,
            };
        }
        entry.failures += 1;
    }

    /// Forgets `key` after a successful login.
    pub fn succeed(&self, key: &str) {
        self.entries
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(key);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn blocks_after_the_limit_until_the_window_ends() {
        let throttle = Throttle::new(3, Duration::from_millis(200));
        for _ in 0..3 {
            assert!(throttle.blocked_for("u").is_none());
            throttle.fail("u");
        }
        assert!(throttle.blocked_for("u").is_some());
        assert!(throttle.blocked_for("other").is_none());
        std::thread::sleep(Duration::from_millis(220));
        assert!(throttle.blocked_for("u").is_none());
    }

    #[test]
    fn success_clears_the_counter() {
        let throttle = Throttle::new(2, Duration::from_secs(60));
        throttle.fail("u");
        throttle.succeed("u");
        throttle.fail("u");
        assert!(throttle.blocked_for("u").is_none());
    }
}
