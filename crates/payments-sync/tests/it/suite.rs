//! The shared store suite on a fresh `MemoryStore`.

use std::sync::Arc;

use payments_sync::MemoryStore;
use payments_sync::codec::Stored;
use payments_testkit::store_suite::Tamper;

/// The suite's hook: the store itself, which writes raw values where it keeps them.
struct Memory(Arc<MemoryStore>);

#[async_trait::async_trait]
impl Tamper for Memory {
    async fn write_raw(&self, place: Stored<'_>, value: &str) {
        assert!(self.0.write_raw(place, value), "{place:?}");
    }
}

async fn fresh() -> Option<(Arc<MemoryStore>, Memory)> {
    let store = Arc::new(MemoryStore::new());
    Some((store.clone(), Memory(store)))
}

payments_testkit::store_suite!(fresh);
