//! DynamoDB Local behind a switch, for outage tests: a TCP proxy on loopback that forwards
//! to DynamoDB Local while [`Outage::Up`], refuses every connection while [`Outage::Down`]
//! (DynamoDB unreachable), and answers every request with DynamoDB's own throttling error
//! while [`Outage::Throttled`]. Switching away from `Up` also cuts the connections already
//! open, so the SDK's pooled connections see the outage too.

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outage {
    Up,
    Down,
    Throttled,
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
    let mut request = Vec::new();
    let mut buffer = [0u8; 4096];
    loop {
        let Ok(read) = client.read(&mut buffer).await else {
            return;
        };
        if read == 0 {
            return;
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
                break;
            }
        }
    }
    let _ = client.write_all(throttled_response().as_bytes()).await;
    let _ = client.shutdown().await;
}
