//! The data structure under the in-memory binding store: bounded shards in which finding,
//! adding, removing and evicting a binding each cost O(1), never a scan.
//!
//! Each shard is a slab of nodes linked in insertion order (a doubly linked list through slab
//! indices) with a hash table of slab indices over it. The proxy gives every binding of one
//! store the same lifetime (the token lifetime, or `login_ttl`), so insertion order is expiry
//! order: the oldest node is the one that expires first. An insert drops up to
//! [`SWEEP_PER_INSERT`] expired nodes from the old end, then, when the shard is full, evicts
//! its oldest node. A lookup that meets an expired node drops it. A removal unlinks its node
//! and puts the node on a free list that the next insert reuses.
//!
//! Why not a FIFO queue of (expiry, key) beside a map: a removed binding (every login, at its
//! token call) would leave its queue entry behind until it reached the front, and one
//! abandoned login at the front holds back every entry after it, so the queue would grow
//! with traffic rather than with live bindings. Why not a timer wheel: with one lifetime per
//! store, the list already is in expiry order. Bytes per node are fixed (see
//! `node_size_is_fixed`), and a shard never holds more nodes than its share of the cap.

use super::TokenUse;
use crate::jose::EphemeralKey;
use hashbrown::HashTable;
use std::hash::{BuildHasher, Hash, RandomState};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

const SHARDS: usize = 16;

/// Expired nodes dropped from the old end per insert: more than the one node an insert adds,
/// so expired bindings drain faster than new ones arrive, and every insert stays O(1).
const SWEEP_PER_INSERT: usize = 2;

/// "No node" in the links and the free list.
const NIL: u32 = u32::MAX;

/// One binding: the key (gone once a one-time token was used), how often it may be used, and
/// until when.
pub(super) struct Slot {
    pub(super) key: Option<Arc<EphemeralKey>>,
    pub(super) usage: TokenUse,
    /// Whole seconds after the store's epoch, rounded down: a binding may expire up to one
    /// second before its lifetime is over (4 bytes instead of an `Instant`'s 16).
    expires: u32,
}

struct Node<K> {
    key: K,
    /// The key's hash, kept so that evicting a node needs no rehash of its key.
    hash: u64,
    slot: Slot,
    /// Towards the oldest and the newest node; `newer` also chains the free list.
    older: u32,
    newer: u32,
}

struct Shard<K> {
    /// Slab indices, hashed by their node's key.
    index: HashTable<u32>,
    nodes: Vec<Node<K>>,
    oldest: u32,
    newest: u32,
    free: u32,
    len: u32,
}

/// A bounded map from `K` to [`Slot`], in [`SHARDS`] shards.
pub(super) struct Shards<K> {
    shards: Box<[Mutex<Shard<K>>]>,
    /// Random keys per store: nobody can choose keys that land in one shard or one bucket.
    hasher: RandomState,
    per_shard: u32,
    live: AtomicU64,
    epoch: Instant,
}

impl<K: Copy + Eq + Hash> Shards<K> {
    /// At most `capacity` bindings (rounded up to a multiple of the shard count).
    pub(super) fn new(capacity: u64) -> Self {
        let per_shard = capacity
            .div_ceil(SHARDS as u64)
            .clamp(1, u64::from(NIL - 1)) as u32;
        let shard = || {
            Mutex::new(Shard {
                index: HashTable::new(),
                nodes: Vec::new(),
                oldest: NIL,
                newest: NIL,
                free: NIL,
                len: 0,
            })
        };
        Self {
            shards: (0..SHARDS).map(|_| shard()).collect(),
            hasher: RandomState::new(),
            per_shard,
            live: AtomicU64::new(0),
            epoch: Instant::now(),
        }
    }

    /// How many bindings are held (expired ones included until they are dropped).
    pub(super) fn live(&self) -> u64 {
        self.live.load(Ordering::Relaxed)
    }

    /// Whole seconds from the epoch to `at`, saturating (a huge `ttl` never overflows).
    fn seconds(at: Duration) -> u32 {
        at.as_secs().min(u64::from(u32::MAX)) as u32
    }

    fn locate(&self, key: &K) -> (u64, MutexGuard<'_, Shard<K>>) {
        let hash = self.hasher.hash_one(key);
        // Shard by bits the table does not use for its buckets or tags.
        let shard = &self.shards[(hash >> 32) as usize % SHARDS];
        (hash, shard.lock().unwrap_or_else(|p| p.into_inner()))
    }

    /// Binds `key` for `ttl`, replacing what it had. Evicts the oldest binding of a full shard.
    pub(super) fn insert(&self, key: K, value: Arc<EphemeralKey>, usage: TokenUse, ttl: Duration) {
        let elapsed = self.epoch.elapsed();
        let now = Self::seconds(elapsed);
        let slot = Slot {
            key: Some(value),
            usage,
            expires: Self::seconds(elapsed.saturating_add(ttl)),
        };
        let (hash, mut shard) = self.locate(&key);
        let (added, dropped) = shard.insert(hash, key, slot, now, self.per_shard);
        self.live.fetch_add(added, Ordering::Relaxed);
        self.live.fetch_sub(dropped, Ordering::Relaxed);
    }

    /// Forgets `key`.
    pub(super) fn remove(&self, key: &K) {
        let (hash, mut shard) = self.locate(key);
        if let Some(i) = shard.find(hash, key) {
            shard.remove(i);
            self.live.fetch_sub(1, Ordering::Relaxed);
        }
    }

    /// Runs `f` on the live slot for `key`, if there is one; drops it if it has expired.
    pub(super) fn with<T>(&self, key: &K, f: impl FnOnce(&mut Slot) -> T) -> Option<T> {
        let now = Self::seconds(self.epoch.elapsed());
        let (hash, mut shard) = self.locate(key);
        let (slot, dropped) = shard.get(hash, key, now);
        if dropped {
            self.live.fetch_sub(1, Ordering::Relaxed);
        }
        slot.map(f)
    }
}

impl<K: Copy + Eq + Hash> Shard<K> {
    /// Drops up to [`SWEEP_PER_INSERT`] expired nodes from the old end, then replaces `key`'s
    /// slot (making it the newest) or adds it, evicting the oldest node of a full shard.
    /// Returns how many nodes were added (0 or 1) and dropped.
    fn insert(&mut self, hash: u64, key: K, slot: Slot, now: u32, per_shard: u32) -> (u64, u64) {
        let mut dropped = 0;
        for _ in 0..SWEEP_PER_INSERT {
            let oldest = self.oldest;
            if oldest == NIL || self.nodes[oldest as usize].slot.expires > now {
                break;
            }
            self.remove(oldest);
            dropped += 1;
        }
        if let Some(i) = self.find(hash, &key) {
            self.nodes[i as usize].slot = slot;
            self.unlink(i);
            self.link_newest(i);
            return (0, dropped);
        }
        if self.len >= per_shard {
            self.remove(self.oldest);
            dropped += 1;
        }
        self.add(hash, key, slot, per_shard);
        (1, dropped)
    }

    /// The live slot for `key`; an expired one is dropped (the flag says so).
    fn get(&mut self, hash: u64, key: &K, now: u32) -> (Option<&mut Slot>, bool) {
        let Some(i) = self.find(hash, key) else {
            return (None, false);
        };
        if self.nodes[i as usize].slot.expires <= now {
            self.remove(i);
            return (None, true);
        }
        (Some(&mut self.nodes[i as usize].slot), false)
    }

    fn find(&self, hash: u64, key: &K) -> Option<u32> {
        let nodes = &self.nodes;
        self.index
            .find(hash, |&i| nodes[i as usize].key == *key)
            .copied()
    }

    /// Stores a new node (reusing a freed one first) as the newest. Grows the slab by at
    /// most its share of the cap, so it never holds more than `per_shard` nodes.
    fn add(&mut self, hash: u64, key: K, slot: Slot, per_shard: u32) {
        let node = Node {
            key,
            hash,
            slot,
            older: NIL,
            newer: NIL,
        };
        let i = if self.free != NIL {
            let i = self.free;
            self.free = self.nodes[i as usize].newer;
            self.nodes[i as usize] = node;
            i
        } else {
            if self.nodes.len() == self.nodes.capacity() {
                // Doubling, but never past the shard's share of the cap.
                let room = (per_shard as usize).saturating_sub(self.nodes.len()).max(1);
                self.nodes.reserve_exact(self.nodes.len().max(16).min(room));
            }
            self.nodes.push(node);
            (self.nodes.len() - 1) as u32
        };
        let nodes = &self.nodes;
        self.index
            .insert_unique(hash, i, |&j| nodes[j as usize].hash);
        self.link_newest(i);
        self.len += 1;
    }

    /// Drops node `i`: out of the index and the order, its key released, onto the free list.
    fn remove(&mut self, i: u32) {
        let hash = self.nodes[i as usize].hash;
        if let Ok(entry) = self.index.find_entry(hash, |&j| j == i) {
            entry.remove();
        }
        self.unlink(i);
        let node = &mut self.nodes[i as usize];
        node.slot.key = None;
        node.newer = self.free;
        self.free = i;
        self.len -= 1;
    }

    fn unlink(&mut self, i: u32) {
        let (older, newer) = {
            let node = &self.nodes[i as usize];
            (node.older, node.newer)
        };
        match older {
            NIL => self.oldest = newer,
            o => self.nodes[o as usize].newer = newer,
        }
        match newer {
            NIL => self.newest = older,
            n => self.nodes[n as usize].older = older,
        }
    }

    fn link_newest(&mut self, i: u32) {
        let newest = self.newest;
        {
            let node = &mut self.nodes[i as usize];
            node.older = newest;
            node.newer = NIL;
        }
        match newest {
            NIL => self.oldest = i,
            n => self.nodes[n as usize].newer = i,
        }
        self.newest = i;
    }
}

#[cfg(test)]
mod tests;
