//! The entries of one stitch partition: each key's changelog value (its serialized state or forward) and
//! when its earliest open journey times out.
//!
//! A key costs one allocation (its length, the key, the value) and one 24-byte slot of a hash table that
//! also holds the deadline. Finding the keys due is a scan of the slots, which are contiguous: about a
//! millisecond per 100,000 keys, once per expiry tick and only when the earliest deadline has passed. A
//! heap of deadlines beside a map of them cost two more copies of every key (about 130 bytes a customer).

use std::hash::{BuildHasher, RandomState};

use hashbrown::HashTable;

/// No deadline.
const NONE: i64 = i64::MAX;

struct Slot {
    /// The key's length (LEB128), the key's bytes, the value.
    blob: Box<[u8]>,
    due: i64,
}

fn varint_len(blob: &[u8]) -> (usize, usize) {
    let (mut n, mut shift, mut at) = (0usize, 0u32, 0usize);
    while let Some(&b) = blob.get(at) {
        n |= usize::from(b & 0x7f) << shift;
        at += 1;
        if b & 0x80 == 0 || shift > 56 {
            break;
        }
        shift += 7;
    }
    (n, at)
}

impl Slot {
    fn new(key: &str, value: &[u8], due: i64) -> Self {
        let mut blob = Vec::with_capacity(key.len() + value.len() + 2);
        let mut n = key.len();
        while n >= 0x80 {
            blob.push((n as u8 & 0x7f) | 0x80);
            n >>= 7;
        }
        blob.push(n as u8);
        blob.extend_from_slice(key.as_bytes());
        blob.extend_from_slice(value);
        Slot { blob: blob.into_boxed_slice(), due }
    }

    fn split(&self) -> (&[u8], &[u8]) {
        let (n, at) = varint_len(&self.blob);
        self.blob[at..].split_at(n.min(self.blob.len() - at))
    }

    fn key(&self) -> &[u8] {
        self.split().0
    }

    fn value(&self) -> &[u8] {
        self.split().1
    }
}

/// The keys and values of a partition, with each key's journey deadline.
pub struct Entries {
    table: HashTable<Slot>,
    hasher: RandomState,
    /// At most the earliest deadline held (NONE: none).
    earliest: i64,
}

impl Default for Entries {
    fn default() -> Self {
        Entries { table: HashTable::new(), hasher: RandomState::new(), earliest: NONE }
    }
}

impl Entries {
    fn hash(&self, key: &[u8]) -> u64 {
        self.hasher.hash_one(key)
    }

    pub fn len(&self) -> usize {
        self.table.len()
    }

    pub fn is_empty(&self) -> bool {
        self.table.is_empty()
    }

    pub fn contains(&self, key: &str) -> bool {
        self.get(key).is_some()
    }

    pub fn get(&self, key: &str) -> Option<&[u8]> {
        let key = key.as_bytes();
        self.table.find(self.hash(key), |s| s.key() == key).map(Slot::value)
    }

    /// Set a key's value; its deadline stays as it was (none for a new key).
    pub fn insert(&mut self, key: &str, value: &[u8]) {
        let hash = self.hash(key.as_bytes());
        let hasher = &self.hasher;
        match self.table.find_mut(hash, |s| s.key() == key.as_bytes()) {
            Some(slot) => *slot = Slot::new(key, value, slot.due),
            None => {
                self.table.insert_unique(hash, Slot::new(key, value, NONE), |s| hasher.hash_one(s.key()));
            }
        }
    }

    /// Remove a key and its deadline; whether it was held.
    pub fn remove(&mut self, key: &str) -> bool {
        let key = key.as_bytes();
        match self.table.find_entry(self.hash(key), |s| s.key() == key) {
            Ok(entry) => {
                entry.remove();
                true
            }
            Err(_) => false,
        }
    }

    fn slot_mut(&mut self, key: &str) -> Option<&mut Slot> {
        let key = key.as_bytes();
        self.table.find_mut(self.hash(key), |s| s.key() == key)
    }

    /// Offer a held key a deadline: it keeps the earlier of this one and its own.
    pub fn offer(&mut self, key: &str, deadline: Option<i64>) {
        let Some(deadline) = deadline else { return };
        let Some(slot) = self.slot_mut(key) else { return };
        if deadline < slot.due {
            slot.due = deadline;
            self.earliest = self.earliest.min(deadline);
        }
    }

    /// Drop a key's deadline.
    pub fn clear_due(&mut self, key: &str) {
        if let Some(slot) = self.slot_mut(key) {
            slot.due = NONE;
        }
    }

    /// The keys due at or before `until`, by (deadline, key), their deadlines dropped; whoever handles
    /// one offers it its next.
    pub fn take_due(&mut self, until: i64) -> Vec<String> {
        if self.earliest > until {
            return Vec::new();
        }
        let mut due: Vec<(i64, String)> = Vec::new();
        let mut earliest = NONE;
        for slot in self.table.iter_mut() {
            if slot.due <= until {
                due.push((slot.due, String::from_utf8_lossy(slot.key()).into_owned()));
                slot.due = NONE;
            } else {
                earliest = earliest.min(slot.due);
            }
        }
        self.earliest = earliest;
        due.sort_unstable();
        due.into_iter().map(|(_, key)| key).collect()
    }

    /// Every key, in no particular order.
    pub fn keys(&self) -> impl Iterator<Item = String> + '_ {
        self.table.iter().map(|s| String::from_utf8_lossy(s.key()).into_owned())
    }

    /// The values' bytes in all.
    pub fn value_bytes(&self) -> usize {
        self.table.iter().map(|s| s.value().len()).sum()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_keep_their_keys_and_deadlines() {
        let mut e = Entries::default();
        let long = "k".repeat(300); // a two-byte length
        e.insert("a", b"one");
        e.insert(&long, b"");
        e.insert("", b"empty key");
        assert_eq!(e.get("a"), Some(&b"one"[..]));
        assert_eq!(e.get(&long), Some(&b""[..]));
        assert_eq!(e.get(""), Some(&b"empty key"[..]));
        assert_eq!(e.get("b"), None);
        e.offer("a", Some(50));
        e.offer("a", Some(70)); // later: the earlier stays
        e.insert("a", b"two"); // a new value keeps the deadline
        e.offer(&long, Some(50));
        e.offer("", Some(10));
        e.offer("absent", Some(1)); // only held keys have deadlines
        e.clear_due("");
        assert_eq!(e.take_due(49), Vec::<String>::new());
        assert_eq!(e.take_due(50), vec!["a".to_string(), long.clone()]);
        assert_eq!(e.take_due(i64::MAX - 1), Vec::<String>::new());
        assert_eq!(e.get("a"), Some(&b"two"[..]));
        assert!(e.remove("a"));
        assert!(!e.remove("a"));
        assert_eq!(e.len(), 2);
        assert_eq!(e.value_bytes(), 9);
        let mut keys: Vec<String> = e.keys().collect();
        keys.sort();
        assert_eq!(keys, vec![String::new(), long]);
    }

    #[test]
    fn the_earliest_deadline_is_found_again_after_a_take() {
        let mut e = Entries::default();
        for (key, at) in [("x", 30), ("y", 10), ("z", 20)] {
            e.insert(key, b"v");
            e.offer(key, Some(at));
        }
        assert_eq!(e.take_due(10), vec!["y"]);
        e.offer("y", Some(15));
        assert_eq!(e.take_due(25), vec!["y", "z"]);
        assert_eq!(e.take_due(30), vec!["x"]);
    }
}
