//! Sets of event ids kept as 128-bit xxh3 digests.
//!
//! Deduplication looks every event id up once per batch and once in the pipeline's window; hashing
//! the text once with xxh3-128 and storing only the digest is much cheaper than hashing and storing
//! the strings with the standard library's SipHash. Two different ids collide with a probability
//! around 10^-26 for a window of millions of ids; a collision would drop one real event, which is
//! why the digest is 128 bits and not 64.

use std::collections::HashSet;
use std::hash::{BuildHasherDefault, Hasher};
use xxhash_rust::xxh3::xxh3_128;

/// The digest of one event id.
pub fn id_digest(id: &str) -> u128 {
    xxh3_128(id.as_bytes())
}

/// A set of id digests. The digests are already uniformly distributed, so the table hashes them
/// by taking their low 64 bits instead of hashing them again.
pub type IdSet = HashSet<u128, BuildHasherDefault<DigestHasher>>;

/// An empty [`IdSet`] with room for `capacity` digests.
pub fn id_set(capacity: usize) -> IdSet {
    HashSet::with_capacity_and_hasher(capacity, BuildHasherDefault::default())
}

/// The `Hasher` of [`IdSet`]: passes a digest through.
#[derive(Debug, Default, Clone, Copy)]
pub struct DigestHasher(u64);

impl Hasher for DigestHasher {
    fn finish(&self) -> u64 {
        self.0
    }
    fn write(&mut self, bytes: &[u8]) {
        // Only reached for keys other than u128; fold the bytes so it still works.
        for chunk in bytes.chunks(8) {
            let mut word = [0u8; 8];
            word[..chunk.len()].copy_from_slice(chunk);
            self.0 = (self.0 ^ u64::from_le_bytes(word)).wrapping_mul(0x9e37_79b9_7f4a_7c15);
        }
    }
    fn write_u128(&mut self, digest: u128) {
        self.0 = digest as u64;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn distinct_ids_are_distinct_and_repeats_are_found() {
        let mut set = id_set(4);
        assert!(set.insert(id_digest("a")));
        assert!(set.insert(id_digest("b")));
        assert!(!set.insert(id_digest("a")));
        assert_eq!(set.len(), 2);
        assert!(set.contains(&id_digest("b")));
        assert!(!set.contains(&id_digest("c")));
    }
}
