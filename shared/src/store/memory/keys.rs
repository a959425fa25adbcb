//! The published public keys, in memory.

use super::*;

#[async_trait::async_trait]
impl PublicKeyStore for MemoryUserStore {
    async fn published_keys(
        &self,
    ) -> Result<Option<crate::crypto::keys::published::PublishedKeys>, StoreError> {
        Ok(self.read().published_keys.clone())
    }

    async fn publish_keys(
        &self,
        keys: &crate::crypto::keys::published::PublishedKeys,
        _now: u64,
    ) -> Result<(), StoreError> {
        self.write().published_keys = Some(keys.clone());
        Ok(())
    }
}
