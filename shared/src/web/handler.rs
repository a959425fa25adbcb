//! The one shape of every HTTP function: read, route, answer; errors and CORS in one place.

use crate::ApiError;
use crate::web::cors::Cors;
use crate::web::request::request_meta;
use lambda_http::{Body, Request};

/// The one shape of an HTTP function's answer: `route` runs inside the request's audit
/// context; an error becomes its problem+json response here, never `Err` (which API
/// Gateway would turn into a 502); CORS is applied to every answer, errors included.
pub async fn answer<F>(
    request: Request,
    cors: &Cors,
    route: impl FnOnce(Request) -> F,
) -> Result<lambda_http::Response<Body>, std::convert::Infallible>
where
    F: std::future::Future<Output = Result<lambda_http::Response<Body>, ApiError>>,
{
    let meta = request_meta(&request);
    let mut response = match crate::audit::with_request(meta, route(request)).await {
        Ok(response) => response,
        Err(error) => error.into_response(),
    };
    cors.apply(&mut response);
    Ok(response)
}
