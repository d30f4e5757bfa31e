//! The chunks of an overlay file: chunk index to bytes.
//!
//! Most files a session writes are smaller than one chunk, so a file holding at most one chunk
//! keeps it inline; only a file with several becomes a persistent ordered map (whose smallest
//! node holds sixteen entries, several times the size of a small file's bytes). Either way a
//! clone is O(1), as forks need.

use bytes::Bytes;
use imbl::OrdMap;
use serde::{Deserialize, Serialize, Serializer};

use crate::budget;

/// Chunk index to content, ordered by index.
#[derive(Clone, Debug, Default, PartialEq, Eq, Deserialize)]
#[serde(from = "OrdMap<u64, Bytes>")]
pub(crate) enum Chunks {
    /// No chunk.
    #[default]
    Empty,
    /// One chunk, at this index.
    One(u64, Bytes),
    /// Several chunks (or fewer, once truncated: a map is never turned back).
    Many(OrdMap<u64, Bytes>),
}

impl Chunks {
    /// The number of chunks held.
    pub(crate) fn len(&self) -> usize {
        match self {
            Chunks::Empty => 0,
            Chunks::One(..) => 1,
            Chunks::Many(map) => map.len(),
        }
    }

    /// The chunk at `idx`.
    pub(crate) fn get(&self, idx: u64) -> Option<&Bytes> {
        match self {
            Chunks::One(at, bytes) if *at == idx => Some(bytes),
            Chunks::Many(map) => map.get(&idx),
            _ => None,
        }
    }

    /// Puts `bytes` at `idx`, replacing what was there.
    pub(crate) fn insert(&mut self, idx: u64, bytes: Bytes) {
        match self {
            Chunks::Empty => *self = Chunks::One(idx, bytes),
            Chunks::One(at, old) if *at == idx => *old = bytes,
            Chunks::One(at, old) => {
                let mut map = OrdMap::new();
                map.insert(*at, std::mem::take(old));
                map.insert(idx, bytes);
                *self = Chunks::Many(map);
            }
            Chunks::Many(map) => {
                map.insert(idx, bytes);
            }
        }
    }

    /// Drops every chunk at `from` or beyond.
    pub(crate) fn remove_from(&mut self, from: u64) {
        match self {
            Chunks::One(at, _) if *at >= from => *self = Chunks::Empty,
            Chunks::Many(map) => {
                let beyond: Vec<u64> = map.range(from..).map(|(idx, _)| *idx).collect();
                for idx in beyond {
                    map.remove(&idx);
                }
            }
            _ => {}
        }
    }

    /// Every chunk, by index.
    pub(crate) fn iter(&self) -> Box<dyn Iterator<Item = (u64, &Bytes)> + '_> {
        match self {
            Chunks::Empty => Box::new(std::iter::empty()),
            Chunks::One(idx, bytes) => Box::new(std::iter::once((*idx, bytes))),
            Chunks::Many(map) => Box::new(map.iter().map(|(idx, bytes)| (*idx, bytes))),
        }
    }
}

/// Read back from a store: the content is in memory already, so it counts against the
/// content limit even past it.
impl From<OrdMap<u64, Bytes>> for Chunks {
    fn from(map: OrdMap<u64, Bytes>) -> Self {
        let mut chunks = Chunks::Empty;
        for (idx, bytes) in map {
            chunks.insert(idx, budget::hold_anyway(bytes));
        }
        chunks
    }
}

/// Written as the map it stands for, so that stores read the same either way.
impl Serialize for Chunks {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_map(self.iter())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn model(chunks: &Chunks) -> Vec<(u64, Bytes)> {
        chunks.iter().map(|(idx, bytes)| (idx, bytes.clone())).collect()
    }

    proptest::proptest! {
        /// Inserts and cuts behave as on an ordered map, and serialise as one.
        #[test]
        fn behaves_like_an_ordered_map(ops in proptest::collection::vec((0..6u64, proptest::bool::ANY), 0..20)) {
            let (mut chunks, mut map) = (Chunks::default(), std::collections::BTreeMap::new());
            for (idx, cut) in ops {
                if cut {
                    chunks.remove_from(idx);
                    map.retain(|i, _| *i < idx);
                } else {
                    let bytes = Bytes::from(format!("chunk {idx}"));
                    chunks.insert(idx, bytes.clone());
                    map.insert(idx, bytes);
                }
                proptest::prop_assert_eq!(model(&chunks), map.iter().map(|(i, b)| (*i, b.clone())).collect::<Vec<_>>());
                proptest::prop_assert_eq!(chunks.len(), map.len());
                for idx in 0..6 {
                    proptest::prop_assert_eq!(chunks.get(idx), map.get(&idx));
                }
            }
            let bytes = bincode::serialize(&chunks).unwrap();
            let as_ordmap: OrdMap<u64, Bytes> = map.into_iter().collect();
            proptest::prop_assert_eq!(&bytes, &bincode::serialize(&as_ordmap).unwrap());
            let back: Chunks = bincode::deserialize(&bytes).unwrap();
            proptest::prop_assert_eq!(model(&back), model(&chunks));
        }
    }
}
