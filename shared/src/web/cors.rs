//! Cross-origin answers for the browser page and other web clients.

use lambda_http::Body;

/// CORS on the functions' own answers (`CORS_ALLOW_ORIGIN`; API Gateway adds it to its own
/// answers and to the preflight from the template). Credentials are bearer tokens in a
/// header, never cookies, so no `Access-Control-Allow-Credentials`, and `*` is safe.
#[derive(Debug, Clone, Default)]
pub struct Cors {
    allow_origin: Option<http::HeaderValue>,
}

impl Cors {
    /// Off.
    pub fn off() -> Self {
        Self::default()
    }

    /// `origin` must be `*` or a valid origin ([`is_cors_origin`]).
    pub fn allowing(origin: &str) -> Option<Self> {
        if !is_cors_origin(origin) {
            return None;
        }
        Some(Self {
            allow_origin: Some(http::HeaderValue::from_str(origin).ok()?),
        })
    }

    /// Adds the CORS headers to a function's answer.
    pub fn apply(&self, response: &mut lambda_http::Response<Body>) {
        let Some(origin) = &self.allow_origin else {
            return;
        };
        let headers = response.headers_mut();
        headers.insert(http::header::ACCESS_CONTROL_ALLOW_ORIGIN, origin.clone());
        // Scripts may read these two (neither is CORS-safelisted): when to retry a 429 or
        // 503, and why a token was refused.
        headers.insert(
            http::header::ACCESS_CONTROL_EXPOSE_HEADERS,
            http::HeaderValue::from_static("Retry-After, WWW-Authenticate"),
        );
        if origin != "*" {
            headers.append(http::header::VARY, http::HeaderValue::from_static("Origin"));
        }
    }
}

/// `*`, or an origin as browsers send it: `http://` or `https://`, a host, an optional
/// port, nothing else (no path, no trailing slash, no credentials).
pub fn is_cors_origin(origin: &str) -> bool {
    if origin == "*" {
        return true;
    }
    let Some(rest) = origin
        .strip_prefix("https://")
        .or_else(|| origin.strip_prefix("http://"))
    else {
        return false;
    };
    let (host, port) = match rest.rsplit_once(':') {
        Some((host, port)) if !host.ends_with(']') || rest.starts_with('[') => (host, Some(port)),
        _ => (rest, None),
    };
    // Browsers send origins in lower case; an upper-case one would never match.
    let host_ok = !host.is_empty()
        && host.len() <= 253
        && host.bytes().all(|b| {
            b.is_ascii_lowercase()
                || b.is_ascii_digit()
                || matches!(b, b'.' | b'-' | b'[' | b']' | b':')
        });
    let port_ok = port.is_none_or(|port| {
        !port.is_empty() && port.len() <= 5 && port.bytes().all(|b| b.is_ascii_digit())
    });
    host_ok && port_ok
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_star_and_bare_origins_are_cors_origins() {
        for good in [
            "*",
            "https://app.example.com",
            "http://127.0.0.1:3001",
            "http://localhost:8080",
        ] {
            assert!(is_cors_origin(good), "{good}");
        }
        for bad in [
            "",
            "app.example.com",
            "https://app.example.com/",
            "https://app.example.com/path",
            "https://user:pw@app.example.com",
            "ftp://app.example.com",
            "https://a.example.com, https://b.example.com",
            "https://app.example.com\r\nX-Evil: 1",
            "http://host:99999999",
            "null",
            "https://App.example.com",
            "HTTPS://app.example.com",
        ] {
            assert!(!is_cors_origin(bad), "{bad:?}");
        }
    }

    #[test]
    fn answers_carry_the_origin_and_vary_unless_it_is_star() {
        let mut response = lambda_http::Response::new(Body::Empty);
        Cors::allowing("https://app.example.com")
            .unwrap()
            .apply(&mut response);
        assert_eq!(
            response.headers()["access-control-allow-origin"],
            "https://app.example.com"
        );
        assert_eq!(response.headers()["vary"], "Origin");
        let mut response = lambda_http::Response::new(Body::Empty);
        Cors::allowing("*").unwrap().apply(&mut response);
        assert_eq!(response.headers()["access-control-allow-origin"], "*");
        assert!(response.headers().get("vary").is_none());
        let mut response = lambda_http::Response::new(Body::Empty);
        Cors::off().apply(&mut response);
        assert!(response.headers().is_empty());
    }
}
