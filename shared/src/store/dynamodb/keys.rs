//! The published public keys: the one `KEYS#public` item.

use super::*;

#[async_trait::async_trait]
impl PublicKeyStore for DynamoUserStore {
    async fn published_keys(
        &self,
    ) -> Result<Option<crate::crypto::keys::published::PublishedKeys>, StoreError> {
        let Some(item) = self.get_item(PUBLIC_KEYS_PK.into()).await? else {
            return Ok(None);
        };
        match item.get("public_keys") {
            Some(AttributeValue::S(json)) => serde_json::from_str(json)
                .map(Some)
                .map_err(|err| StoreError::backend(format!("published keys: {err}"))),
            _ => Err(StoreError::backend(
                "published keys item without public_keys",
            )),
        }
    }

    async fn publish_keys(
        &self,
        keys: &crate::crypto::keys::published::PublishedKeys,
        now: u64,
    ) -> Result<(), StoreError> {
        let json = serde_json::to_string(keys)
            .map_err(|err| StoreError::backend(format!("published keys: {err}")))?;
        self.client
            .put_item()
            .table_name(&self.table)
            .item("pk", AttributeValue::S(PUBLIC_KEYS_PK.into()))
            .item("public_keys", AttributeValue::S(json))
            .item("published_at", number(now))
            .send()
            .await
            .map_err(sdk_error)?;
        Ok(())
    }
}
