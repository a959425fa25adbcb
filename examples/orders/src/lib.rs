//! An orders service in a stack of its own, behind lambda-jwt-auth's authorizer: what a
//! team writes to put its API behind the same sign-in.
//!
//! - `GET /health` is public.
//! - `POST /orders`: any signed-in user orders for itself.
//! - `GET /orders`: every order, for `admin` and `support`.
//! - `GET /customers/{customerId}/orders`: one customer's orders, for `admin` and
//!   `support`, or for the customer itself ("self" in the document).
//!
//! Who may call what is `permissions.json`, which the stack registers with the authorizer;
//! this function reads the caller (`sub`, `role`) from the authorizer's context and
//! re-checks the same document (defence in depth: a gateway misconfigured without the
//! authorizer gets 401, not data). With `AUTH_USERS_TABLE` it also re-checks the caller
//! against the auth stack's table on every request ([`OrdersService::revocation`]), so that
//! a logged-out, disabled or demoted user is refused at once rather than after the
//! authorizer cache TTL.

use jwt_auth_core::ApiError;
use jwt_auth_core::access::document::{PermissionsDocument, Route, is_allowed};
use jwt_auth_core::access::second_factor::SecondFactorRule;
use jwt_auth_core::sessions::revocation::{current_caller, within_reach};
use jwt_auth_core::startup::clock::Clock;
use jwt_auth_core::store::UserStore;
use jwt_auth_core::users::user::DeclaredRoles;
use jwt_auth_core::users::user::is_valid_user_id;
use jwt_auth_core::web::request::{Caller, json_body};
use jwt_auth_core::web::response::json_response;
use lambda_http::http::StatusCode;
use lambda_http::request::RequestContext;
use lambda_http::{Body, Request, RequestExt, Response};
use serde::{Deserialize, Serialize};
use std::sync::{Arc, LazyLock};

pub mod dynamodb;

/// The document this stack registers (its template holds the same text; a test says so).
pub const PERMISSIONS_DOCUMENT: &str = include_str!("../permissions.json");

static PERMISSIONS: LazyLock<PermissionsDocument> = LazyLock::new(|| {
    // Built in and parsed by the tests: a broken file fails them all.
    PermissionsDocument::parse(PERMISSIONS_DOCUMENT).expect("examples/orders/permissions.json")
});

/// Most orders one answer lists.
pub const MAX_LISTED: usize = 100;

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Order {
    pub customer_id: String,
    pub order_id: String,
    pub item: String,
    pub quantity: u32,
    pub created_at: u64,
}

/// Where orders are kept: DynamoDB on AWS ([`dynamodb`]), memory locally.
#[async_trait::async_trait]
pub trait OrderStore: Send + Sync {
    async fn put(&self, order: &Order) -> Result<(), OrderStoreError>;
    /// Up to `limit` orders of one customer.
    async fn of_customer(
        &self,
        customer_id: &str,
        limit: usize,
    ) -> Result<Vec<Order>, OrderStoreError>;
    /// Up to `limit` orders of anyone.
    async fn all(&self, limit: usize) -> Result<Vec<Order>, OrderStoreError>;
}

#[derive(Debug, thiserror::Error)]
#[error("order store: {0}")]
pub struct OrderStoreError(pub String);

/// Orders in memory (the local gateway, tests).
#[derive(Default)]
pub struct MemoryOrders(std::sync::Mutex<Vec<Order>>);

#[async_trait::async_trait]
impl OrderStore for MemoryOrders {
    async fn put(&self, order: &Order) -> Result<(), OrderStoreError> {
        self.0
            .lock()
            .map_err(|_| OrderStoreError("poisoned".into()))?
            .push(order.clone());
        Ok(())
    }

    async fn of_customer(
        &self,
        customer_id: &str,
        limit: usize,
    ) -> Result<Vec<Order>, OrderStoreError> {
        let orders = self
            .0
            .lock()
            .map_err(|_| OrderStoreError("poisoned".into()))?;
        Ok(orders
            .iter()
            .filter(|order| order.customer_id == customer_id)
            .take(limit)
            .cloned()
            .collect())
    }

    async fn all(&self, limit: usize) -> Result<Vec<Order>, OrderStoreError> {
        let orders = self
            .0
            .lock()
            .map_err(|_| OrderStoreError("poisoned".into()))?;
        Ok(orders.iter().take(limit).cloned().collect())
    }
}

pub struct OrdersService {
    pub orders: Arc<dyn OrderStore>,
    /// The auth stack's users table (read-only, the authorizer's own conditioned read):
    /// when given, every request re-checks the caller, so revocation takes effect at
    /// once. When not, a revoked caller keeps what the authorizer's cached answer allowed
    /// for at most this API's cache TTL.
    pub revocation: Option<Arc<dyn UserStore>>,
    pub clock: Clock,
    /// The roles that must sign in with a second factor (`MFA_REQUIRED_ROLES`, as the
    /// auth stack's `MfaRequiredRoles`): a caller of such a role whose token says it did
    /// not (`amr`) is refused every route here, as the authorizer's policy does; this also
    /// holds behind an HTTP API's JWT authorizer, which knows nothing of `amr`.
    pub second_factor_rule: SecondFactorRule,
}

impl OrdersService {
    /// `MFA_REQUIRED_ROLES` as this service reads it: unset, admins; empty, no role.
    pub fn second_factor_rule_from(raw: Option<&str>) -> Result<SecondFactorRule, String> {
        let Some(raw) = raw else {
            return Ok(SecondFactorRule::default());
        };
        let named = PERMISSIONS.roles();
        let named: Vec<&str> = named.iter().map(|role| role.as_str()).collect();
        let declared = DeclaredRoles::parse_list(&format!("admin,{}", named.join(",")))?;
        SecondFactorRule::parse_list(raw, &declared)
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NewOrder {
    pub item: String,
    pub quantity: u32,
}

const NEW_ORDER_SHAPE: &str =
    r#"a JSON object {"item": string, "quantity": whole number 1..=1000}"#;

#[derive(Debug, Serialize)]
struct OrderList {
    orders: Vec<Order>,
}

/// Answers every request; failures are problem+json responses, never `Err`.
pub async fn handle(
    request: Request,
    service: &OrdersService,
) -> Result<Response<Body>, std::convert::Infallible> {
    jwt_auth_core::web::handler::answer(
        request,
        &jwt_auth_core::web::cors::Cors::off(),
        |request| route(request, service),
    )
    .await
}

/// The document's route for this request, and the value of its `self` parameter.
fn route_of(request: &Request) -> Option<(&'static Route, Vec<(String, String)>)> {
    let method = request.method().as_str();
    let resource_path = match request.request_context_ref() {
        Some(RequestContext::ApiGatewayV1(context)) => context.resource_path.clone(),
        _ => None,
    };
    match resource_path {
        Some(resource_path) => {
            let route = PERMISSIONS.route(method, &resource_path)?;
            let params = route
                .parameters()
                .filter_map(|name| {
                    let value = request.path_parameters_ref()?.first(name)?;
                    Some((name.to_string(), value.to_string()))
                })
                .collect();
            Some((route, params))
        }
        None => {
            let (route, params) = PERMISSIONS.match_route(method, request.raw_http_path())?;
            Some((
                route,
                params
                    .into_iter()
                    .map(|(name, value)| (name.to_string(), value))
                    .collect(),
            ))
        }
    }
}

async fn route(request: Request, service: &OrdersService) -> Result<Response<Body>, ApiError> {
    let (route, params) = route_of(&request).ok_or(ApiError::NotFound)?;
    let key = route.key();
    if key == "GET /health" {
        return Ok(json_response(
            StatusCode::OK,
            &serde_json::json!({"status": "ok"}),
        ));
    }
    let caller = Caller::from_request(&request)?;
    let caller = match &service.revocation {
        Some(users) => current_caller(users.as_ref(), caller, service.clock.now()).await?,
        // Without the table, the token's own `exp` still holds behind a cached Allow.
        None if jwt_auth_core::crypto::token::is_expired(caller.exp, service.clock.now()) => {
            return Err(ApiError::TokenExpired);
        }
        None => caller,
    };
    let param = |name: &str| {
        params
            .iter()
            .find(|(found, _)| found == name)
            .map(|(_, value)| value.as_str())
    };
    let own = match &route.access {
        jwt_auth_core::access::document::Access::SignedIn { own: Some(own), .. } => param(own),
        _ => None,
    };
    if !is_allowed(route, caller.role, &caller.sub, own) {
        return Err(ApiError::Forbidden);
    }
    within_reach(&caller, route, &service.second_factor_rule)?;
    let failed = |err: OrderStoreError| ApiError::internal(err);
    match key.as_str() {
        "POST /orders" => {
            let new: NewOrder = json_body(&request, NEW_ORDER_SHAPE)?;
            let item = new.item.trim();
            if item.is_empty() || item.chars().count() > 100 || item.chars().any(char::is_control) {
                return Err(ApiError::BadRequest(
                    "item must be 1 to 100 characters, no control characters".into(),
                ));
            }
            if !(1..=1000).contains(&new.quantity) {
                return Err(ApiError::BadRequest("quantity must be 1 to 1000".into()));
            }
            let order = Order {
                customer_id: caller.sub.clone(),
                order_id: jwt_auth_core::users::user::new_user_id(),
                item: item.to_string(),
                quantity: new.quantity,
                created_at: service.clock.now(),
            };
            service.orders.put(&order).await.map_err(failed)?;
            tracing::info!(customer = %order.customer_id, order = %order.order_id, "order placed");
            Ok(json_response(
                StatusCode::CREATED,
                &serde_json::json!({"order": order}),
            ))
        }
        "GET /orders" => {
            let orders = service.orders.all(MAX_LISTED).await.map_err(failed)?;
            Ok(json_response(StatusCode::OK, &OrderList { orders }))
        }
        "GET /customers/{customerId}/orders" => {
            let customer = param("customerId").ok_or(ApiError::NotFound)?;
            if !is_valid_user_id(customer) {
                return Err(ApiError::NotFound);
            }
            let orders = service
                .orders
                .of_customer(customer, MAX_LISTED)
                .await
                .map_err(failed)?;
            Ok(json_response(StatusCode::OK, &OrderList { orders }))
        }
        _ => Err(ApiError::NotFound),
    }
}

/// The function called in-process, as the local gateway calls the functions it serves.
pub type InProcess = Arc<
    dyn Fn(Request) -> std::pin::Pin<Box<dyn std::future::Future<Output = Response<Body>> + Send>>
        + Send
        + Sync,
>;

/// [`handle`] over `service`, for `jwt-auth serve` and the tests.
pub fn in_process(service: OrdersService) -> InProcess {
    let service = Arc::new(service);
    Arc::new(move |request| {
        let service = Arc::clone(&service);
        Box::pin(async move {
            match handle(request, &service).await {
                Ok(response) => response,
                Err(never) => match never {},
            }
        })
    })
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_built_in_document_parses() {
        assert_eq!(super::PERMISSIONS.routes.len(), 4);
    }
}
