//! Security events: one JSON line per event on stdout, which is at once the audit record
//! and a CloudWatch metric.
//!
//! Each line has one shape: `event`, `outcome`, `request_id`, `source_ip`, `user_id` (the
//! actor; `null` when unknown, as for a login of an unknown username), `subject_id` (the
//! user acted on, for admin actions), and never a password, token, hash or username. It is
//! also an [Embedded Metric Format] document: the `_aws` member declares one count metric
//! (e.g. `LoginFailed`) in the namespace `METRICS_NAMESPACE`, with the dimension
//! `Function`, so CloudWatch turns the log line into the metric the template's alarms
//! watch, with no API call and no agent.
//!
//! The request's id and source address come from the handler, which runs the request
//! inside [`with_request`].
//!
//! [Embedded Metric Format]: https://docs.aws.amazon.com/AmazonCloudWatch/latest/monitoring/CloudWatch_Embedded_Metric_Format_Specification.html

use std::fmt::Write as _;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, OnceLock};

/// Default `METRICS_NAMESPACE`.
pub const DEFAULT_NAMESPACE: &str = "LambdaJwtAuth";

/// What happened.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SecurityEvent {
    LoginSucceeded,
    LoginFailed,
    /// Refused without a password check: the username, device or source is locked.
    LoginLocked,
    RefreshRotated,
    /// A retired refresh token came back: the session was revoked.
    RefreshReuseDetected,
    RefreshRefused,
    Logout,
    LogoutEverywhere,
    PasswordChanged,
    PasswordChangeRefused,
    AuthorizerAllow,
    AuthorizerDeny,
    AuthorizerError,
    UserCreated,
    UserUpdated,
    UserDeleted,
    PasswordReset,
    /// A second factor was confirmed (turned on).
    SecondFactorEnrolled,
    /// The caller turned its second factor off (password and code).
    SecondFactorDisabled,
    /// A wrong or replayed code (or recovery code).
    SecondFactorFailed,
    /// A code refused without a check: the code counter is locked.
    SecondFactorLocked,
    /// A recovery code signed in (one fewer left).
    RecoveryCodeUsed,
    /// An admin (or the CLI) removed a user's second factor, ending its sessions.
    SecondFactorReset,
}

impl SecurityEvent {
    pub const ALL: [SecurityEvent; 23] = [
        Self::LoginSucceeded,
        Self::LoginFailed,
        Self::LoginLocked,
        Self::RefreshRotated,
        Self::RefreshReuseDetected,
        Self::RefreshRefused,
        Self::Logout,
        Self::LogoutEverywhere,
        Self::PasswordChanged,
        Self::PasswordChangeRefused,
        Self::AuthorizerAllow,
        Self::AuthorizerDeny,
        Self::AuthorizerError,
        Self::UserCreated,
        Self::UserUpdated,
        Self::UserDeleted,
        Self::PasswordReset,
        Self::SecondFactorEnrolled,
        Self::SecondFactorDisabled,
        Self::SecondFactorFailed,
        Self::SecondFactorLocked,
        Self::RecoveryCodeUsed,
        Self::SecondFactorReset,
    ];

    /// (`event`, `outcome`, metric name).
    pub fn parts(self) -> (&'static str, &'static str, &'static str) {
        match self {
            Self::LoginSucceeded => ("login", "succeeded", "LoginSucceeded"),
            Self::LoginFailed => ("login", "failed", "LoginFailed"),
            Self::LoginLocked => ("login", "locked", "LoginLocked"),
            Self::RefreshRotated => ("refresh", "rotated", "RefreshRotated"),
            Self::RefreshReuseDetected => ("refresh", "reuse_detected", "RefreshReuseDetected"),
            Self::RefreshRefused => ("refresh", "refused", "RefreshRefused"),
            Self::Logout => ("logout", "succeeded", "Logout"),
            Self::LogoutEverywhere => ("logout_everywhere", "succeeded", "LogoutEverywhere"),
            Self::PasswordChanged => ("password_change", "succeeded", "PasswordChanged"),
            Self::PasswordChangeRefused => ("password_change", "refused", "PasswordChangeRefused"),
            Self::AuthorizerAllow => ("authorize", "allow", "AuthorizerAllow"),
            Self::AuthorizerDeny => ("authorize", "deny", "AuthorizerDeny"),
            Self::AuthorizerError => ("authorize", "error", "AuthorizerError"),
            Self::UserCreated => ("user_admin", "created", "UserCreated"),
            Self::UserUpdated => ("user_admin", "updated", "UserUpdated"),
            Self::UserDeleted => ("user_admin", "deleted", "UserDeleted"),
            Self::PasswordReset => ("user_admin", "password_reset", "PasswordReset"),
            Self::SecondFactorEnrolled => ("second_factor", "enrolled", "SecondFactorEnrolled"),
            Self::SecondFactorDisabled => ("second_factor", "disabled", "SecondFactorDisabled"),
            Self::SecondFactorFailed => ("second_factor", "failed", "SecondFactorFailed"),
            Self::SecondFactorLocked => ("second_factor", "locked", "SecondFactorLocked"),
            Self::RecoveryCodeUsed => ("second_factor", "recovery_code_used", "RecoveryCodeUsed"),
            Self::SecondFactorReset => ("user_admin", "second_factor_reset", "SecondFactorReset"),
        }
    }
}

/// The request an event belongs to.
#[derive(Debug, Clone, Default)]
pub struct RequestMeta {
    /// API Gateway's (or Lambda's) request id.
    pub request_id: String,
    /// The client address API Gateway saw; empty when the event carries none.
    pub source_ip: String,
}

tokio::task_local! {
    static REQUEST: RequestMeta;
}

/// Runs `work` as the handling of `meta`'s request: its events carry that id and address.
pub async fn with_request<F: std::future::Future>(meta: RequestMeta, work: F) -> F::Output {
    REQUEST.scope(meta, work).await
}

struct Settings {
    namespace: String,
    function: String,
}

static SETTINGS: OnceLock<Settings> = OnceLock::new();

/// Sets the metric namespace and the `Function` dimension, once at cold start.
pub fn init(namespace: &str, function: &str) {
    let _ = SETTINGS.set(Settings {
        namespace: namespace.to_string(),
        function: function.to_string(),
    });
}

type Sink = Arc<Mutex<Vec<String>>>;
static CAPTURE: OnceLock<Sink> = OnceLock::new();
static QUIET: AtomicBool = AtomicBool::new(false);

/// From now on, lines are built but not printed (benchmarks of the handlers, which would
/// otherwise measure their terminal).
pub fn quiet() {
    QUIET.store(true, Ordering::Relaxed);
}

/// From now on, lines are also kept in the returned list (tests read what was recorded).
pub fn capture() -> Sink {
    Arc::clone(CAPTURE.get_or_init(Sink::default))
}

/// Records `event` by `user_id` (the actor), about `subject_id` (for admin actions).
pub fn record(event: SecurityEvent, user_id: Option<&str>, subject_id: Option<&str>) {
    let meta = REQUEST.try_with(Clone::clone).unwrap_or_default();
    let (namespace, function) = SETTINGS.get().map_or((DEFAULT_NAMESPACE, "local"), |s| {
        (s.namespace.as_str(), s.function.as_str())
    });
    emit(line(
        event,
        &meta,
        user_id,
        subject_id,
        namespace,
        function,
        now_millis(),
    ));
}

/// Writes one EMF line: to the capture list if a test asked, and straight to stdout, not
/// through `tracing` (EMF must be a top-level JSON object), unless quiet.
fn emit(line: String) {
    if let Some(sink) = CAPTURE.get() {
        sink.lock()
            .unwrap_or_else(|p| p.into_inner())
            .push(line.clone());
    }
    if !QUIET.load(Ordering::Relaxed) {
        println!("{line}");
    }
}

/// The JSON line of one event. Written directly (it is on every authorization): the
/// fixed names are ours, and every variable string goes through serde's escaping.
pub fn line(
    event: SecurityEvent,
    meta: &RequestMeta,
    user_id: Option<&str>,
    subject_id: Option<&str>,
    namespace: &str,
    function: &str,
    timestamp_ms: u64,
) -> String {
    let (name, outcome, metric) = event.parts();
    let quoted = |text: Option<&str>| match text.filter(|text| !text.is_empty()) {
        Some(text) => serde_json::to_string(text).unwrap_or_else(|_| "null".into()),
        None => "null".into(),
    };
    let mut line = String::with_capacity(480);
    // Writing to a String cannot fail.
    let _ = write!(
        line,
        concat!(
            r#"{{"_aws":{{"Timestamp":{},"CloudWatchMetrics":[{{"Namespace":{},"#,
            r#""Dimensions":[["Function"]],"Metrics":[{{"Name":"{}","Unit":"Count"}}]}}]}},"#,
            r#""Function":{},"event":"{}","outcome":"{}","request_id":{},"source_ip":{},"#,
            r#""user_id":{},"audit":true,"{}":1"#
        ),
        timestamp_ms,
        quoted(Some(namespace)),
        metric,
        quoted(Some(function)),
        name,
        outcome,
        quoted(Some(&meta.request_id)),
        quoted(Some(&meta.source_ip)),
        quoted(user_id),
        metric,
    );
    if let Some(subject) = subject_id {
        let _ = write!(line, r#","subject_id":{}"#, quoted(Some(subject)));
    }
    line.push('}');
    line
}

/// A measurement that is not a security event (e.g. the signing key's age): one EMF line
/// with the metric `name` in `unit`, and the `Function` dimension, outside the audit trail.
pub fn gauge(name: &str, unit: &str, value: u64) {
    let (namespace, function) = SETTINGS.get().map_or((DEFAULT_NAMESPACE, "local"), |s| {
        (s.namespace.as_str(), s.function.as_str())
    });
    emit(gauge_line(
        name,
        unit,
        value,
        namespace,
        function,
        now_millis(),
    ));
}

/// The JSON line of one [`gauge`] value.
pub fn gauge_line(
    name: &str,
    unit: &str,
    value: u64,
    namespace: &str,
    function: &str,
    timestamp_ms: u64,
) -> String {
    let quoted = |text: &str| serde_json::to_string(text).unwrap_or_else(|_| "null".into());
    format!(
        concat!(
            r#"{{"_aws":{{"Timestamp":{},"CloudWatchMetrics":[{{"Namespace":{},"#,
            r#""Dimensions":[["Function"]],"Metrics":[{{"Name":{},"Unit":{}}}]}}]}},"#,
            r#""Function":{},{}:{}}}"#
        ),
        timestamp_ms,
        quoted(namespace),
        quoted(name),
        quoted(unit),
        quoted(function),
        quoted(name),
        value,
    )
}

fn now_millis() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|elapsed| elapsed.as_millis() as u64)
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::Value;

    #[test]
    fn every_event_is_a_valid_emf_document_with_the_audit_shape() {
        let meta = RequestMeta {
            request_id: "req-1".into(),
            source_ip: "203.0.113.7".into(),
        };
        for event in SecurityEvent::ALL {
            let line = line(
                event,
                &meta,
                Some("u1"),
                None,
                "NS",
                "login",
                1_700_000_000_000,
            );
            let value: Value = serde_json::from_str(&line).unwrap();
            let (name, outcome, metric) = event.parts();
            let directive = &value["_aws"]["CloudWatchMetrics"][0];
            assert_eq!(value["_aws"]["Timestamp"], 1_700_000_000_000u64);
            assert_eq!(directive["Namespace"], "NS");
            // Every dimension and metric the directive names is a member of the document.
            for dimension in directive["Dimensions"][0].as_array().unwrap() {
                assert!(value[dimension.as_str().unwrap()].is_string());
            }
            assert_eq!(directive["Metrics"][0]["Name"], metric);
            assert_eq!(value[metric], 1);
            assert_eq!(value["event"], name);
            assert_eq!(value["outcome"], outcome);
            assert_eq!(value["request_id"], "req-1");
            assert_eq!(value["source_ip"], "203.0.113.7");
            assert_eq!(value["user_id"], "u1");
        }
        let anonymous = line(
            SecurityEvent::LoginFailed,
            &RequestMeta::default(),
            None,
            None,
            "NS",
            "login",
            0,
        );
        let value: Value = serde_json::from_str(&anonymous).unwrap();
        assert!(value["user_id"].is_null() && value["request_id"].is_null());
    }
}

#[cfg(test)]
mod escaping {
    use super::*;

    #[test]
    fn a_gauge_is_a_valid_emf_document_outside_the_audit_trail() {
        let line = gauge_line("SigningKeyAgeSeconds", "Seconds", 86_400, "NS", "login", 5);
        let value: serde_json::Value = serde_json::from_str(&line).unwrap();
        let directive = &value["_aws"]["CloudWatchMetrics"][0];
        assert_eq!(directive["Namespace"], "NS");
        assert_eq!(directive["Metrics"][0]["Name"], "SigningKeyAgeSeconds");
        assert_eq!(directive["Metrics"][0]["Unit"], "Seconds");
        assert_eq!(directive["Dimensions"][0][0], "Function");
        assert_eq!(value["Function"], "login");
        assert_eq!(value["SigningKeyAgeSeconds"], 86_400);
        assert!(value.get("audit").is_none());
    }

    #[test]
    fn variable_strings_are_escaped_json() {
        let meta = RequestMeta {
            request_id: "a\"b\n".into(),
            source_ip: String::new(),
        };
        let text = line(
            SecurityEvent::Logout,
            &meta,
            Some("x\"}"),
            Some("y"),
            "N\"S",
            "f",
            1,
        );
        let value: serde_json::Value = serde_json::from_str(&text).unwrap();
        assert_eq!(value["request_id"], "a\"b\n");
        assert_eq!(value["user_id"], "x\"}");
        assert_eq!(value["_aws"]["CloudWatchMetrics"][0]["Namespace"], "N\"S");
        assert!(value["source_ip"].is_null());
    }
}
