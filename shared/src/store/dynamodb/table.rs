//! The table itself, as `template.yaml` declares it, for DynamoDB Local.

use super::*;

/// Creates the users table as `template.yaml` declares it (on-demand billing, `pk` as the
/// only key, the `by-kind` index with its INCLUDE projection, TTL on `expires_at`) and
/// waits until it and its index are ACTIVE. For DynamoDB Local: tests, the local gateway and
/// the admin command; on AWS the table comes from the SAM template.
///
/// A table that already exists is left as it is (its schema is not compared) and only
/// waited for, so a local setup can call this on every start. Point-in-time recovery and
/// server-side encryption are not set: they do not change behaviour and DynamoDB Local
/// ignores them.
pub async fn create_table(client: &Client, table: &str) -> Result<(), StoreError> {
    let string_attribute = |name: &str| {
        AttributeDefinition::builder()
            .attribute_name(name)
            .attribute_type(ScalarAttributeType::S)
            .build()
            .map_err(StoreError::backend)
    };
    let key_element = |name: &str, key_type: KeyType| {
        KeySchemaElement::builder()
            .attribute_name(name)
            .key_type(key_type)
            .build()
            .map_err(StoreError::backend)
    };
    let projection = BY_KIND_PROJECTION
        .iter()
        .fold(
            Projection::builder().projection_type(ProjectionType::Include),
            |projection, attribute| projection.non_key_attributes(*attribute),
        )
        .build();
    let by_kind = GlobalSecondaryIndex::builder()
        .index_name(BY_KIND_INDEX)
        .key_schema(key_element("kind", KeyType::Hash)?)
        .key_schema(key_element("username", KeyType::Range)?)
        .projection(projection)
        .build()
        .map_err(StoreError::backend)?;
    let created = client
        .create_table()
        .table_name(table)
        .billing_mode(BillingMode::PayPerRequest)
        .attribute_definitions(string_attribute("pk")?)
        .attribute_definitions(string_attribute("kind")?)
        .attribute_definitions(string_attribute("username")?)
        .key_schema(key_element("pk", KeyType::Hash)?)
        .global_secondary_indexes(by_kind)
        .send()
        .await;
    let is_new = match created {
        Ok(_) => true,
        Err(err)
            if matches!(
                err.as_service_error(),
                Some(CreateTableError::ResourceInUseException(_))
            ) =>
        {
            false
        }
        Err(err) => return Err(sdk_error(err)),
    };
    wait_until_active(client, table).await?;
    if is_new {
        client
            .update_time_to_live()
            .table_name(table)
            .time_to_live_specification(
                TimeToLiveSpecification::builder()
                    .attribute_name(TTL_ATTRIBUTE)
                    .enabled(true)
                    .build()
                    .map_err(StoreError::backend)?,
            )
            .send()
            .await
            .map_err(sdk_error)?;
    }
    Ok(())
}

/// Polls DescribeTable until the table and all its indexes are ACTIVE. The SDK's
/// `wait_until_table_exists` waiter polls every 20 s at least and ignores index status;
/// DynamoDB Local is ready within milliseconds, AWS within a minute or two.
async fn wait_until_active(client: &Client, table: &str) -> Result<(), StoreError> {
    const MAX_WAIT: Duration = Duration::from_secs(300);
    let started = std::time::Instant::now();
    let mut delay = Duration::from_millis(50);
    loop {
        let description = client
            .describe_table()
            .table_name(table)
            .send()
            .await
            .map_err(sdk_error)?
            .table
            .ok_or_else(|| StoreError::backend("DescribeTable answered without a table"))?;
        let table_active = description.table_status() == Some(&TableStatus::Active);
        let indexes_active = description
            .global_secondary_indexes()
            .iter()
            .all(|index| index.index_status() == Some(&IndexStatus::Active));
        if table_active && indexes_active {
            return Ok(());
        }
        if started.elapsed() > MAX_WAIT {
            return Err(StoreError::backend(format!(
                "table {table} did not become ACTIVE within {MAX_WAIT:?}"
            )));
        }
        tokio::time::sleep(delay).await;
        delay = (delay * 2).min(Duration::from_secs(5));
    }
}
