//! Orders in the example stack's own DynamoDB table: partition key `customer_id`, sort key
//! `order_id`.

use crate::{Order, OrderStore, OrderStoreError};
use aws_sdk_dynamodb::Client;
use aws_sdk_dynamodb::types::AttributeValue;
use std::collections::HashMap;

pub struct DynamoOrders {
    client: Client,
    table: String,
}

impl DynamoOrders {
    pub fn new(client: Client, table: String) -> Self {
        Self { client, table }
    }
}

fn failed(err: impl std::error::Error + 'static) -> OrderStoreError {
    OrderStoreError(jwt_auth_core::web::error::error_chain(&err))
}

fn item_of(order: &Order) -> HashMap<String, AttributeValue> {
    HashMap::from([
        (
            "customer_id".into(),
            AttributeValue::S(order.customer_id.clone()),
        ),
        ("order_id".into(), AttributeValue::S(order.order_id.clone())),
        ("item".into(), AttributeValue::S(order.item.clone())),
        (
            "quantity".into(),
            AttributeValue::N(order.quantity.to_string()),
        ),
        (
            "created_at".into(),
            AttributeValue::N(order.created_at.to_string()),
        ),
    ])
}

fn order_of(item: &HashMap<String, AttributeValue>) -> Result<Order, OrderStoreError> {
    let text = |name: &str| {
        item.get(name)
            .and_then(|value| value.as_s().ok())
            .cloned()
            .ok_or_else(|| OrderStoreError(format!("an order without {name}")))
    };
    let number = |name: &str| {
        item.get(name)
            .and_then(|value| value.as_n().ok())
            .and_then(|n| n.parse::<u64>().ok())
            .ok_or_else(|| OrderStoreError(format!("an order without {name}")))
    };
    Ok(Order {
        customer_id: text("customer_id")?,
        order_id: text("order_id")?,
        item: text("item")?,
        quantity: u32::try_from(number("quantity")?)
            .map_err(|_| OrderStoreError("quantity out of range".into()))?,
        created_at: number("created_at")?,
    })
}

fn page_limit(limit: usize) -> i32 {
    i32::try_from(limit).unwrap_or(i32::MAX)
}

#[async_trait::async_trait]
impl OrderStore for DynamoOrders {
    async fn put(&self, order: &Order) -> Result<(), OrderStoreError> {
        self.client
            .put_item()
            .table_name(&self.table)
            .set_item(Some(item_of(order)))
            // An order id is 128 random bits; never overwrite one all the same.
            .condition_expression("attribute_not_exists(order_id)")
            .send()
            .await
            .map_err(failed)?;
        Ok(())
    }

    async fn of_customer(
        &self,
        customer_id: &str,
        limit: usize,
    ) -> Result<Vec<Order>, OrderStoreError> {
        let answer = self
            .client
            .query()
            .table_name(&self.table)
            .key_condition_expression("customer_id = :customer")
            .expression_attribute_values(":customer", AttributeValue::S(customer_id.into()))
            .limit(page_limit(limit))
            .send()
            .await
            .map_err(failed)?;
        answer.items().iter().map(order_of).collect()
    }

    async fn all(&self, limit: usize) -> Result<Vec<Order>, OrderStoreError> {
        let answer = self
            .client
            .scan()
            .table_name(&self.table)
            .limit(page_limit(limit))
            .send()
            .await
            .map_err(failed)?;
        answer.items().iter().map(order_of).collect()
    }
}
