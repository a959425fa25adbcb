//! Counting a function's DynamoDB round trips from the outside: a recording HTTP proxy in
//! front of DynamoDB Local. Each call is logged with its operation (`X-Amz-Target`) and
//! when it started and ended; calls in flight together are one round trip, so the count
//! is what a request waits for, whatever the code looks like. The cold-start bench points
//! the bootstraps' `DYNAMODB_ENDPOINT` here. It can also throttle one operation alone
//! ([`CallLog::throttle`]), or every call after the next few ([`CallLog::throttle_after`]),
//! for tests of a write failing in the middle of a request.

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::{Request, Response};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::{TokioExecutor, TokioIo};
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Instant;

/// One DynamoDB call seen by the proxy.
#[derive(Debug, Clone)]
pub struct Call {
    /// The operation, e.g. `GetItem`.
    pub operation: String,
    pub started: Instant,
    pub ended: Instant,
}

/// Every call the proxy has forwarded, and the operation it throttles.
#[derive(Clone, Default)]
pub struct CallLog(Arc<Proxied>);

#[derive(Default)]
struct Proxied {
    calls: Mutex<Vec<Call>>,
    throttled: Mutex<Option<String>>,
    /// `Some(n)`: the next `n` calls are forwarded, every later one throttled.
    forwarded_before_throttling: Mutex<Option<usize>>,
    hold: Mutex<Option<(String, Arc<Hold>)>>,
}

/// The next call of one operation, held at the proxy before it is forwarded
/// ([`CallLog::hold_next`]): a test does something between a request's earlier calls and
/// that one, then lets it go.
#[derive(Default)]
pub struct Hold {
    arrived: tokio::sync::Notify,
    released: tokio::sync::Notify,
}

impl Hold {
    /// Waits until the call has reached the proxy (and is held there).
    pub async fn arrived(&self) {
        self.arrived.notified().await;
    }

    /// Forwards the held call.
    pub fn release(&self) {
        self.released.notify_one();
    }
}

impl CallLog {
    /// From now on, answers every call of `operation` (e.g. `DeleteItem`) with DynamoDB's
    /// throttling error instead of forwarding it; `None` forwards everything again.
    pub fn throttle(&self, operation: Option<&str>) {
        *self.0.throttled.lock().unwrap() = operation.map(String::from);
    }

    /// From now on, forwards the next `calls` calls and throttles every one after them
    /// (DynamoDB throttling from the middle of a request on); `None` forwards all again.
    pub fn throttle_after(&self, calls: Option<usize>) {
        *self.0.forwarded_before_throttling.lock().unwrap() = calls;
    }

    /// Holds the next call of `operation` (e.g. `TransactWriteItems`) until released.
    pub fn hold_next(&self, operation: &str) -> Arc<Hold> {
        let hold = Arc::new(Hold::default());
        *self.0.hold.lock().unwrap() = Some((operation.to_string(), Arc::clone(&hold)));
        hold
    }

    fn take_hold(&self, operation: &str) -> Option<Arc<Hold>> {
        let mut hold = self.0.hold.lock().unwrap();
        match hold.as_ref() {
            Some((held, _)) if held == operation => hold.take().map(|(_, hold)| hold),
            _ => None,
        }
    }

    fn throttles(&self, operation: &str) -> bool {
        let by_count = match &mut *self.0.forwarded_before_throttling.lock().unwrap() {
            Some(0) => true,
            Some(left) => {
                *left -= 1;
                false
            }
            None => false,
        };
        by_count || self.0.throttled.lock().unwrap().as_deref() == Some(operation)
    }

    /// The calls that started within `from..=to`, in the order they started.
    pub fn between(&self, from: Instant, to: Instant) -> Vec<Call> {
        let mut calls: Vec<Call> = self
            .0
            .calls
            .lock()
            .unwrap()
            .iter()
            .filter(|call| call.started >= from && call.started <= to)
            .cloned()
            .collect();
        calls.sort_by_key(|call| call.started);
        calls
    }
}

/// The calls grouped into round trips: a call that starts while an earlier one is still
/// in flight joins that round trip; one that starts after all earlier ones ended begins
/// the next.
pub fn round_trips(calls: &[Call]) -> Vec<Vec<&Call>> {
    let mut trips: Vec<Vec<&Call>> = Vec::new();
    let mut in_flight_until: Option<Instant> = None;
    for call in calls {
        match in_flight_until {
            Some(until) if call.started < until => {
                trips.last_mut().expect("a trip in flight").push(call);
                in_flight_until = Some(until.max(call.ended));
            }
            _ => {
                trips.push(vec![call]);
                in_flight_until = Some(call.ended);
            }
        }
    }
    trips
}

/// From the first call of a round trip starting to the last one ending.
pub fn span(trip: &[&Call]) -> std::time::Duration {
    let started = trip.iter().map(|call| call.started).min();
    let ended = trip.iter().map(|call| call.ended).max();
    match (started, ended) {
        (Some(started), Some(ended)) => ended - started,
        _ => std::time::Duration::ZERO,
    }
}

/// `GetItem ∥ UpdateItem → PutItem`: the round trips in order, calls in one trip joined.
pub fn describe(trips: &[Vec<&Call>]) -> String {
    trips
        .iter()
        .map(|trip| {
            trip.iter()
                .map(|call| call.operation.as_str())
                .collect::<Vec<_>>()
                .join(" ∥ ")
        })
        .collect::<Vec<_>>()
        .join(" → ")
}

/// Starts the proxy on a loopback port, forwarding to `upstream` (`http://host:port`).
pub async fn start_proxy(upstream: &str) -> (SocketAddr, CallLog) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap();
    let log = CallLog::default();
    let client: Client<HttpConnector, Full<Bytes>> =
        Client::builder(TokioExecutor::new()).build_http();
    let upstream: Arc<str> = upstream.trim_end_matches('/').into();
    let recording = log.clone();
    tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            let (client, upstream, log) = (client.clone(), upstream.clone(), recording.clone());
            tokio::spawn(async move {
                let service = hyper::service::service_fn(move |request| {
                    forward(request, client.clone(), upstream.clone(), log.clone())
                });
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(TokioIo::new(stream), service)
                    .await;
            });
        }
    });
    (address, log)
}

async fn forward(
    request: Request<Incoming>,
    client: Client<HttpConnector, Full<Bytes>>,
    upstream: Arc<str>,
    log: CallLog,
) -> Result<Response<Full<Bytes>>, hyper::Error> {
    let started = Instant::now();
    let operation = request
        .headers()
        .get("x-amz-target")
        .and_then(|target| target.to_str().ok())
        .and_then(|target| target.rsplit('.').next())
        .unwrap_or("?")
        .to_string();
    let (mut parts, body) = request.into_parts();
    let body = body.collect().await?.to_bytes();
    if let Some(hold) = log.take_hold(&operation) {
        hold.arrived.notify_one();
        hold.released.notified().await;
    }
    let throttled = log.throttles(&operation);
    let answer = if throttled {
        Response::builder()
            .status(400)
            .header("content-type", "application/x-amz-json-1.0")
            .header("x-amzn-errortype", "ProvisionedThroughputExceededException")
            .body(Full::new(Bytes::from_static(
                br#"{"__type":"com.amazonaws.dynamodb.v20120810#ProvisionedThroughputExceededException","message":"throttled by the test"}"#,
            )))
            .unwrap()
    } else {
        let path = parts
            .uri
            .path_and_query()
            .map_or("/", |path| path.as_str())
            .to_string();
        parts.uri = format!("{upstream}{path}")
            .parse()
            .expect("an upstream URI");
        match client
            .request(Request::from_parts(parts, Full::new(body)))
            .await
        {
            Ok(answer) => {
                let (parts, body) = answer.into_parts();
                let body = body.collect().await?.to_bytes();
                Response::from_parts(parts, Full::new(body))
            }
            Err(err) => Response::builder()
                .status(502)
                .body(Full::new(Bytes::from(err.to_string())))
                .unwrap(),
        }
    };
    log.0.calls.lock().unwrap().push(Call {
        operation,
        started,
        ended: Instant::now(),
    });
    Ok(answer)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn call(operation: &str, base: Instant, from_ms: u64, to_ms: u64) -> Call {
        Call {
            operation: operation.into(),
            started: base + Duration::from_millis(from_ms),
            ended: base + Duration::from_millis(to_ms),
        }
    }

    #[test]
    fn overlapping_calls_are_one_round_trip_and_sequential_ones_are_not() {
        let base = Instant::now();
        let calls = [
            call("GetItem", base, 0, 10),
            call("UpdateItem", base, 1, 12),
            call("UpdateItem", base, 13, 20),
            call("UpdateItem", base, 21, 30),
            call("PutItem", base, 22, 25),
            // Starts after PutItem ended but while the UpdateItem is still in flight.
            call("UpdateItem", base, 26, 31),
        ];
        let trips = round_trips(&calls);
        assert_eq!(trips.len(), 3);
        let spans: Vec<u128> = trips.iter().map(|trip| span(trip).as_millis()).collect();
        assert_eq!(spans, [12, 7, 10]);
        assert_eq!(
            describe(&trips),
            "GetItem ∥ UpdateItem → UpdateItem → UpdateItem ∥ PutItem ∥ UpdateItem"
        );
        assert!(round_trips(&[]).is_empty());
    }
}
