//! A small least-recently-used map for query embeddings, so a repeated query (a user paging
//! through results, a dashboard refreshing) skips the model. Every use stamps the entry with
//! a rising counter; the smallest stamp is evicted first.

use std::collections::{BTreeMap, HashMap};
use std::hash::Hash;

/// Fixed-capacity LRU map; capacity 0 stores nothing.
#[derive(Debug)]
pub(crate) struct Lru<K, V> {
    capacity: usize,
    clock: u64,
    entries: HashMap<K, (V, u64)>,
    /// stamp -> key, oldest first.
    by_age: BTreeMap<u64, K>,
}

impl<K: Hash + Eq + Clone, V: Clone> Lru<K, V> {
    pub(crate) fn new(capacity: usize) -> Self {
        Self {
            capacity,
            clock: 0,
            entries: HashMap::new(),
            by_age: BTreeMap::new(),
        }
    }

    fn tick(&mut self) -> u64 {
        self.clock += 1;
        self.clock
    }

    /// A copy of the value, marking it as just used.
    pub(crate) fn get(&mut self, key: &K) -> Option<V> {
        let now = self.tick();
        let (value, stamp) = self.entries.get_mut(key)?;
        let old = std::mem::replace(stamp, now);
        let value = value.clone();
        if let Some(k) = self.by_age.remove(&old) {
            self.by_age.insert(now, k);
        }
        Some(value)
    }

    pub(crate) fn insert(&mut self, key: K, value: V) {
        if self.capacity == 0 {
            return;
        }
        let now = self.tick();
        if let Some((_, old)) = self.entries.insert(key.clone(), (value, now)) {
            self.by_age.remove(&old);
        }
        self.by_age.insert(now, key);
        while self.entries.len() > self.capacity {
            let Some((_, oldest)) = self.by_age.pop_first() else {
                break;
            };
            self.entries.remove(&oldest);
        }
    }

    pub(crate) fn len(&self) -> usize {
        self.entries.len()
    }
}

#[cfg(test)]
mod tests {
    use super::Lru;

    #[test]
    fn evicts_least_recently_used() {
        let mut lru = Lru::new(2);
        lru.insert("a", 1);
        lru.insert("b", 2);
        assert_eq!(lru.get(&"a"), Some(1)); // b is now the oldest
        lru.insert("c", 3);
        assert_eq!(lru.get(&"b"), None);
        assert_eq!((lru.get(&"a"), lru.get(&"c")), (Some(1), Some(3)));
        lru.insert("a", 10); // replacing refreshes, no growth
        assert_eq!(lru.len(), 2);
        lru.insert("d", 4);
        assert_eq!(
            (lru.get(&"a"), lru.get(&"c"), lru.get(&"d")),
            (Some(10), None, Some(4))
        );
    }

    #[test]
    fn zero_capacity_stores_nothing() {
        let mut lru = Lru::new(0);
        lru.insert(1, 1);
        assert_eq!((lru.get(&1), lru.len()), (None, 0));
    }
}
