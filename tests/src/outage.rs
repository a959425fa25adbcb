//! DynamoDB Local behind a switch, for outage tests: a TCP proxy on loopback that forwards
//! to DynamoDB Local while [`Outage::Up`], refuses every connection while [`Outage::Down`]
//! (DynamoDB unreachable), answers every request with DynamoDB's own throttling error
//! while [`Outage::Throttled`], and never answers while [`Outage::Hang`]. Switching away from `Up` also cuts the connections already
//! open, so the SDK's pooled connections see the outage too.

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outage {
    Up,
    Down,
    Throttled,
    /// Connections are accepted and never answered.
    Hang,
}

/// The proxy; dropping it stops it.
pub struct FlakyDynamo {
    /// Give this to the store instead of DynamoDB Local's own URL.
    pub endpoint: String,
    state: watch::Sender<Outage>,
    _accept: tokio::task::JoinHandle<()>,
}

/// What DynamoDB answers a request it throttles (HTTP 400, JSON 1.0 error body).
fn throttled_response() -> String {
    let body = r#"{"__type":"com.amazonaws.dynamodb.v20120810#ProvisionedThroughputExceededException","message":"The level of configured provisioned throughput was exceeded"}"#;
    format!(
        "HTTP/1.1 400 Bad Request\r\ncontent-type: application/x-amz-json-1.0\r\n\
         x-amzn-errortype: ProvisionedThroughputExceededException\r\nconnection: close\r\n\
         content-length: {}\r\n\r\n{body}",
        body.len()
    )
}

impl FlakyDynamo {
    /// A proxy in front of `upstream` (`http://127.0.0.1:<port>`), up.
    pub async fn start(upstream: &str) -> Self {
        let upstream = upstream
            .trim_start_matches("http://")
            .trim_end_matches('/')
            .to_string();
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let endpoint = format!("http://{}", listener.local_addr().expect("address"));
        let (state, watcher) = watch::channel(Outage::Up);
        let accept = tokio::spawn(async move {
            while let Ok((client, _)) = listener.accept().await {
                let mut watcher = watcher.clone();
                let upstream = upstream.clone();
                tokio::spawn(async move {
                    let outage = *watcher.borrow_and_update();
                    match outage {
                        Outage::Down => drop(client),
                        Outage::Throttled => throttle(client).await,
                        Outage::Hang => {
                            let _ = watcher.changed().await;
                            drop(client);
                        }
                        Outage::Up => forward(client, &upstream, &mut watcher).await,
                    }
                });
            }
        });
        Self {
            endpoint,
            state,
            _accept: accept,
        }
    }

    pub fn set(&self, outage: Outage) {
        self.state.send_replace(outage);
    }
}

async fn forward(mut client: TcpStream, upstream: &str, watcher: &mut watch::Receiver<Outage>) {
    let Ok(mut server) = TcpStream::connect(upstream).await else {
        return;
    };
    tokio::select! {
        _ = tokio::io::copy_bidirectional(&mut client, &mut server) => {}
        // Any change of state cuts the connection (an outage starting mid-connection).
        _ = watcher.changed() => {}
    }
}

/// Reads one HTTP request and answers it with DynamoDB's throttling error.
async fn throttle(mut client: TcpStream) {
    if read_request(&mut client).await {
        let _ = client.write_all(throttled_response().as_bytes()).await;
        let _ = client.shutdown().await;
    }
}

/// A stand-in for Secrets Manager on loopback, for cold-start outage tests: while
/// [`Outage::Up`] it answers every `GetSecretValue` with `secret`; while `Down` it drops
/// every connection; while `Throttled` it answers Secrets Manager's `ThrottlingException`.
pub struct FakeSecretsManager {
    pub endpoint: String,
    state: watch::Sender<Outage>,
    requests: std::sync::Arc<std::sync::atomic::AtomicUsize>,
    _accept: tokio::task::JoinHandle<()>,
}

impl FakeSecretsManager {
    pub async fn start(secret: &str, outage: Outage) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let endpoint = format!("http://{}", listener.local_addr().expect("address"));
        let (state, watcher) = watch::channel(outage);
        let requests = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let counted = std::sync::Arc::clone(&requests);
        let ok_body = serde_json::json!({
            "ARN": "arn:aws:secretsmanager:us-east-1:123456789012:secret:signing-AbCdEf",
            "Name": "signing",
            "SecretString": secret,
            "VersionId": "00000000-0000-0000-0000-000000000001",
            "VersionStages": ["AWSCURRENT"],
            "CreatedDate": 1.8e9,
        })
        .to_string();
        let accept = tokio::spawn(async move {
            while let Ok((mut client, _)) = listener.accept().await {
                counted.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                let outage = *watcher.borrow();
                let ok_body = ok_body.clone();
                tokio::spawn(async move {
                    if outage == Outage::Down || !read_request(&mut client).await {
                        return;
                    }
                    let (status, error_type, body) = match outage {
                        Outage::Up => ("200 OK", None, ok_body),
                        _ => (
                            "400 Bad Request",
                            Some("ThrottlingException"),
                            r#"{"__type":"ThrottlingException","message":"Rate exceeded"}"#.into(),
                        ),
                    };
                    let error_header = error_type
                        .map(|kind| format!("x-amzn-errortype: {kind}\r\n"))
                        .unwrap_or_default();
                    let response = format!(
                        "HTTP/1.1 {status}\r\ncontent-type: application/x-amz-json-1.1\r\n\
                         {error_header}connection: close\r\ncontent-length: {}\r\n\r\n{body}",
                        body.len()
                    );
                    let _ = client.write_all(response.as_bytes()).await;
                    let _ = client.shutdown().await;
                });
            }
        });
        Self {
            endpoint,
            state,
            requests,
            _accept: accept,
        }
    }

    pub fn set(&self, outage: Outage) {
        self.state.send_replace(outage);
    }

    /// Connections accepted so far (the SDK opens one per attempt here: each answer closes).
    pub fn requests(&self) -> usize {
        self.requests.load(std::sync::atomic::Ordering::SeqCst)
    }

    /// An SDK configuration that sends Secrets Manager calls here.
    pub fn sdk_config(&self) -> aws_config::SdkConfig {
        crate::local_sdk_config(&self.endpoint)
    }
}

/// Reads one HTTP request (headers and a `content-length` body); `false` if the client
/// went away first.
async fn read_request(client: &mut TcpStream) -> bool {
    let mut request = Vec::new();
    let mut buffer = [0u8; 4096];
    loop {
        let Ok(read) = client.read(&mut buffer).await else {
            return false;
        };
        if read == 0 {
            return false;
        }
        request.extend_from_slice(&buffer[..read]);
        if let Some(end) = request.windows(4).position(|w| w == b"\r\n\r\n") {
            let headers = String::from_utf8_lossy(&request[..end]).to_ascii_lowercase();
            let length = headers
                .lines()
                .find_map(|line| line.strip_prefix("content-length:"))
                .and_then(|value| value.trim().parse::<usize>().ok())
                .unwrap_or(0);
            if request.len() >= end + 4 + length {
                return true;
            }
        }
    }
}
