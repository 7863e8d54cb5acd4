//! The shard's order, bounds and expiry, with time passed in as seconds.

use super::*;

type Key = [u8; 32];

fn key(i: u32) -> Key {
    let mut k = [0u8; 32];
    k[..4].copy_from_slice(&i.to_le_bytes());
    k
}

fn slot(expires: u32) -> Slot {
    Slot {
        key: Some(Arc::new(EphemeralKey::generate().unwrap())),
        usage: TokenUse::Reusable,
        expires,
    }
}

fn shard() -> Shard<Key> {
    Shard {
        index: HashTable::new(),
        nodes: Vec::new(),
        oldest: NIL,
        newest: NIL,
        free: NIL,
        len: 0,
    }
}

/// Keys from the oldest to the newest, checking every link and the index on the way.
fn order(shard: &Shard<Key>, hasher: &RandomState) -> Vec<u32> {
    let (mut out, mut at, mut before) = (Vec::new(), shard.oldest, NIL);
    while at != NIL {
        let node = &shard.nodes[at as usize];
        assert_eq!(node.older, before, "back link");
        assert_eq!(shard.find(hasher.hash_one(node.key), &node.key), Some(at));
        out.push(u32::from_le_bytes(node.key[..4].try_into().unwrap()));
        (before, at) = (at, node.newer);
    }
    assert_eq!(shard.newest, before);
    assert_eq!(out.len(), shard.len as usize);
    assert_eq!(shard.index.len(), shard.len as usize);
    out
}

fn put(shard: &mut Shard<Key>, h: &RandomState, i: u32, expires: u32, now: u32, cap: u32) {
    shard.insert(h.hash_one(key(i)), key(i), slot(expires), now, cap);
}

#[test]
fn node_size_is_fixed() {
    // 32-byte key + its 8-byte hash + key pointer + expiry + usage + two links: the README's
    // bound.
    assert_eq!(std::mem::size_of::<Node<Key>>(), 64);
}

#[test]
fn a_full_shard_evicts_its_oldest_and_never_grows_past_its_cap() {
    let (mut s, h) = (shard(), RandomState::new());
    for i in 0..1_000 {
        put(&mut s, &h, i, 100, 0, 10);
        assert!(s.len <= 10 && s.nodes.len() <= 10 && s.nodes.capacity() <= 10);
    }
    assert_eq!(order(&s, &h), (990..1_000).collect::<Vec<_>>());
}

#[test]
fn expired_nodes_go_first_a_few_per_insert() {
    let (mut s, h) = (shard(), RandomState::new());
    for i in 0..5 {
        put(&mut s, &h, i, 10, 0, 100);
    }
    put(&mut s, &h, 5, 30, 0, 100);
    // At t=10 the first five have expired: each insert drops two of them.
    put(&mut s, &h, 6, 30, 10, 100);
    assert_eq!(order(&s, &h), vec![2, 3, 4, 5, 6]);
    put(&mut s, &h, 7, 30, 10, 100);
    put(&mut s, &h, 8, 30, 10, 100);
    assert_eq!(
        order(&s, &h),
        vec![5, 6, 7, 8],
        "stops at the first live node"
    );
}

#[test]
fn a_lookup_drops_an_expired_node_and_a_removed_node_is_reused() {
    let (mut s, h) = (shard(), RandomState::new());
    for i in 0..3 {
        put(&mut s, &h, i, 10 + i, 0, 3);
    }
    assert!(s.get(h.hash_one(key(1)), &key(1), 10).0.is_some());
    let (found, dropped) = s.get(h.hash_one(key(0)), &key(0), 10);
    assert!(found.is_none() && dropped);
    assert_eq!(order(&s, &h), vec![1, 2]);
    put(&mut s, &h, 3, 20, 10, 3);
    assert_eq!(s.nodes.len(), 3, "the freed node was reused");
    assert_eq!(order(&s, &h), vec![1, 2, 3]);
}

#[test]
fn binding_a_key_again_replaces_it_and_makes_it_the_newest() {
    let (mut s, h) = (shard(), RandomState::new());
    for i in 0..3 {
        put(&mut s, &h, i, 10, 0, 3);
    }
    put(&mut s, &h, 0, 50, 0, 3);
    assert_eq!(order(&s, &h), vec![1, 2, 0]);
    put(&mut s, &h, 3, 50, 0, 3);
    assert_eq!(
        order(&s, &h),
        vec![2, 0, 3],
        "the oldest went, not the rebound one"
    );
    let (found, _) = s.get(h.hash_one(key(0)), &key(0), 20);
    assert!(found.is_some(), "the new lifetime holds");
}

#[test]
fn the_store_counts_and_bounds_across_shards() {
    let store = Shards::<Key>::new(64);
    let value = Arc::new(EphemeralKey::generate().unwrap());
    let ttl = Duration::from_secs(60);
    for i in 0..2_000 {
        store.insert(key(i), value.clone(), TokenUse::Once, ttl);
    }
    assert_eq!(store.live(), 64, "16 shards of 4, all full");
    assert!(store.with(&key(1_999), |slot| slot.key.is_some()).unwrap());
    assert!(store.with(&key(0), |_| ()).is_none(), "evicted long ago");
    store.remove(&key(1_999));
    assert_eq!(store.live(), 63);
    assert!(store.with(&key(1_999), |_| ()).is_none());
    store.insert(key(5_000), value.clone(), TokenUse::Once, Duration::ZERO);
    let held = store.live();
    assert!(store.with(&key(5_000), |_| ()).is_none(), "expired at once");
    assert_eq!(store.live(), held - 1, "and dropped when met");
}
