//! The browser client (`web/`), served on its own origin beside the local API so that it
//! calls the API cross-origin, as a single-page app deployed elsewhere would. The files are
//! compiled in; `config.js` tells the page where the API is.

use bytes::Bytes;
use http_body_util::Full;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use std::convert::Infallible;
use std::sync::Arc;
use tokio::net::TcpListener;

const INDEX_HTML: &str = include_str!("../../web/index.html");
const APP_JS: &str = include_str!("../../web/app.js");
const STYLE_CSS: &str = include_str!("../../web/style.css");

/// Serves the page on `listener`, pointed at the API at `api_base` (e.g.
/// `http://127.0.0.1:3000/prod`), until `shutdown` completes.
pub async fn serve(
    listener: TcpListener,
    api_base: String,
    shutdown: impl std::future::Future<Output = ()>,
) {
    let config_js: Arc<str> = format!(
        "window.LAMBDA_JWT_AUTH = {};\n",
        serde_json::json!({ "apiBase": api_base })
    )
    .into();
    // The page may talk to its own origin and to the API, nothing else.
    let api_origin = origin_of(&api_base);
    let policy: Arc<str> = format!(
        "default-src 'self'; connect-src 'self' {api_origin}; script-src 'self'; style-src 'self'; img-src 'self' data:; frame-ancestors 'none'; base-uri 'none'; form-action 'none'"
    )
    .into();
    tokio::pin!(shutdown);
    loop {
        let (stream, _) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(_) => continue,
            },
            () = &mut shutdown => return,
        };
        let (config_js, policy) = (Arc::clone(&config_js), Arc::clone(&policy));
        tokio::spawn(async move {
            let service = service_fn(move |request: Request<hyper::body::Incoming>| {
                let answer = page(request.uri().path(), &config_js, &policy);
                async move { Ok::<_, Infallible>(answer) }
            });
            let _ = http1::Builder::new()
                .serve_connection(TokioIo::new(stream), service)
                .await;
        });
    }
}

fn page(path: &str, config_js: &str, policy: &str) -> Response<Full<Bytes>> {
    let (content_type, body) = match path {
        "/" | "/index.html" => ("text/html; charset=utf-8", INDEX_HTML.to_string()),
        "/app.js" => ("text/javascript; charset=utf-8", APP_JS.to_string()),
        "/style.css" => ("text/css; charset=utf-8", STYLE_CSS.to_string()),
        "/config.js" => ("text/javascript; charset=utf-8", config_js.to_string()),
        _ => {
            return Response::builder()
                .status(StatusCode::NOT_FOUND)
                .header("content-type", "text/plain")
                .body(Full::new(Bytes::from_static(b"not found")))
                .unwrap_or_default();
        }
    };
    Response::builder()
        .header("content-type", content_type)
        .header("content-security-policy", policy)
        .header("x-content-type-options", "nosniff")
        .header("referrer-policy", "no-referrer")
        .header("cache-control", "no-store")
        .body(Full::new(Bytes::from(body)))
        .unwrap_or_default()
}

/// `scheme://host[:port]` of a URL.
fn origin_of(url: &str) -> String {
    let (scheme, rest) = url.split_once("://").unwrap_or(("http", url));
    let authority = rest.split('/').next().unwrap_or(rest);
    format!("{scheme}://{authority}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_page_files_and_its_configuration_are_served_and_nothing_else() {
        let policy = "default-src 'self'";
        let index = page("/", "window.X = 1;", policy);
        assert_eq!(index.status(), 200);
        assert_eq!(index.headers()["content-security-policy"], policy);
        assert_eq!(page("/config.js", "window.X = 1;", policy).status(), 200);
        for missing in [
            "/../Cargo.toml",
            "/web/app.js",
            "/favicon.ico",
            "/app.js.map",
        ] {
            assert_eq!(page(missing, "", policy).status(), 404, "{missing}");
        }
        assert_eq!(
            origin_of("http://127.0.0.1:3000/prod"),
            "http://127.0.0.1:3000"
        );
    }
}
