//! The permissions documents of every API the authorizer protects, by API id, compiled
//! once per load and re-read on a bounded interval.
//!
//! A deployment registers documents where a [`DocumentSource`] reads them (SSM parameters
//! under one path, [`crate::startup::permissions`]): this stack's own API and any API of
//! another stack that uses this authorizer. An API with no document, or with one that does
//! not parse, gets a Deny of every route: fail closed. A failed re-read keeps the documents
//! last read (a change then waits for the next good read; the error is logged each time).

use crate::access::document::PermissionsDocument;
use crate::access::policy::CompiledPolicy;
use crate::access::second_factor::{Reach, SecondFactorRule};
use crate::users::user::DeclaredRoles;
use std::collections::HashMap;
use std::sync::Arc;

/// Default time between re-reads of the documents (`PERMISSIONS_REFRESH_SECONDS`).
pub const DEFAULT_REFRESH_SECS: u64 = 60;
/// After a failed re-read, the next try waits this long (not a whole interval, not every
/// request). Also the least time between re-reads for an API with no document: a newly
/// registered API is found on its first request rather than after a whole interval (its
/// Deny would otherwise be cached by API Gateway), and calls naming an unregistered API
/// cannot make the authorizer read the registry more often than this.
pub const RETRY_SECS: u64 = 5;

/// Where registered documents are read from.
#[async_trait::async_trait]
pub trait DocumentSource: Send + Sync {
    /// Every registered document, as `(api id, document text)`.
    async fn documents(&self) -> Result<Vec<(String, String)>, SourceError>;
}

/// The documents could not be read (the cause is logged where it happened).
#[derive(Debug, thiserror::Error)]
#[error("permissions documents unavailable: {0}")]
pub struct SourceError(pub String);

/// What the authorizer consults on every uncached authorization.
pub struct Permissions {
    declared: DeclaredRoles,
    /// The roles held to enrolment until they sign in with a second factor.
    second_factor: SecondFactorRule,
    mode: Mode,
}

enum Mode {
    /// One document for whatever API asks: a local run serving one API (no registry).
    EveryApi(Arc<CompiledPolicy>),
    Registered {
        source: Box<dyn DocumentSource>,
        refresh_secs: u64,
        loaded: tokio::sync::Mutex<Loaded>,
    },
}

struct Loaded {
    /// `None` for an API whose document was refused: known, and denied, so its requests
    /// do not cause reads as an unknown API's do.
    by_api: HashMap<String, Option<Arc<CompiledPolicy>>>,
    /// When the next read is due.
    due_at: u64,
    /// When a request for an API without a document may next cause a read.
    miss_read_at: u64,
}

impl Permissions {
    /// `document` answers for every API (a local run of one API; not fail closed).
    pub fn every_api(
        document: &PermissionsDocument,
        declared: DeclaredRoles,
        second_factor: SecondFactorRule,
    ) -> Self {
        Self {
            mode: Mode::EveryApi(Arc::new(CompiledPolicy::compile(document, &declared))),
            declared,
            second_factor,
        }
    }

    /// How far a token of `role`, signed in with or without the second factor, reaches.
    pub fn reach(&self, role: crate::users::user::Role, second_factor: bool) -> Reach {
        self.second_factor.reach(role, second_factor)
    }

    /// Reads every document from `source` now (at cold start: a failure stops the start),
    /// and again every `refresh_secs` after.
    pub async fn load(
        source: Box<dyn DocumentSource>,
        declared: DeclaredRoles,
        second_factor: SecondFactorRule,
        refresh_secs: u64,
        now: u64,
    ) -> Result<Self, SourceError> {
        let by_api = compile_all(source.documents().await?, &declared);
        Ok(Self {
            mode: Mode::Registered {
                source,
                refresh_secs,
                loaded: tokio::sync::Mutex::new(Loaded {
                    by_api,
                    due_at: now.saturating_add(refresh_secs),
                    miss_read_at: now.saturating_add(RETRY_SECS),
                }),
            },
            declared,
            second_factor,
        })
    }

    /// The compiled document of the API `api_id`, re-reading the registry first when a
    /// read is due; `None` when the API has registered none (deny every route).
    pub async fn for_api(&self, api_id: &str, now: u64) -> Option<Arc<CompiledPolicy>> {
        let (source, refresh_secs, loaded) = match &self.mode {
            Mode::EveryApi(compiled) => return Some(Arc::clone(compiled)),
            Mode::Registered {
                source,
                refresh_secs,
                loaded,
            } => (source, *refresh_secs, loaded),
        };
        let mut loaded = loaded.lock().await;
        let missing = !loaded.by_api.contains_key(api_id);
        if now >= loaded.due_at || (missing && now >= loaded.miss_read_at) {
            loaded.miss_read_at = now.saturating_add(RETRY_SECS);
            match source.documents().await {
                Ok(documents) => {
                    loaded.by_api = compile_all(documents, &self.declared);
                    loaded.due_at = now.saturating_add(refresh_secs);
                }
                Err(err) => {
                    tracing::error!(error = %err, "permissions re-read failed; keeping the documents last read");
                    loaded.due_at = now.saturating_add(RETRY_SECS.min(refresh_secs));
                }
            }
        }
        loaded.by_api.get(api_id).cloned().flatten()
    }
}

/// Each document parsed and compiled; one that does not parse is left out, with the
/// reason logged, so its API is denied everything rather than half-allowed.
fn compile_all(
    documents: Vec<(String, String)>,
    declared: &DeclaredRoles,
) -> HashMap<String, Option<Arc<CompiledPolicy>>> {
    documents
        .into_iter()
        .map(|(api_id, text)| match PermissionsDocument::parse(&text) {
            Ok(document) => {
                let compiled = Arc::new(CompiledPolicy::compile(&document, declared));
                (api_id, Some(compiled))
            }
            Err(err) => {
                tracing::error!(api = %api_id, error = %err, "permissions document refused: every route of this API is denied");
                (api_id, None)
            }
        })
        .collect()
}

/// Documents held in memory (the local gateway's registered APIs, tests).
#[derive(Default, Clone)]
pub struct StaticDocuments(pub Arc<std::sync::Mutex<Vec<(String, String)>>>);

impl StaticDocuments {
    pub fn new(documents: Vec<(String, String)>) -> Self {
        Self(Arc::new(std::sync::Mutex::new(documents)))
    }

    /// Registers (or replaces) the document of `api_id`.
    pub fn put(&self, api_id: &str, document: &str) {
        let mut documents = self
            .0
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        documents.retain(|(id, _)| id != api_id);
        documents.push((api_id.to_string(), document.to_string()));
    }
}

#[async_trait::async_trait]
impl DocumentSource for StaticDocuments {
    async fn documents(&self) -> Result<Vec<(String, String)>, SourceError> {
        Ok(self
            .0
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .clone())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::access::policy::MethodArn;
    use crate::users::user::Role;
    use aws_lambda_events::iam::IamPolicyEffect;

    const ORDERS: &str = r#"{"version": 1, "routes": [
        {"route": "GET /orders", "roles": ["support", "admin"]},
        {"route": "POST /orders", "roles": "*"},
        {"route": "GET /customers/{customerId}/orders", "roles": ["support"], "self": "customerId"}
    ]}"#;
    const ALICE: &str = "0123456789abcdef0123456789abcdef";

    fn arn(api: &str) -> String {
        format!("arn:aws:execute-api:eu-west-1:123456789012:{api}/prod/GET/orders")
    }

    fn roles(list: &str) -> DeclaredRoles {
        DeclaredRoles::parse_list(list).unwrap()
    }

    async fn resources(permissions: &Permissions, api: &str, role: &str, now: u64) -> Vec<String> {
        let arn = arn(api);
        let method_arn = MethodArn::parse(&arn).unwrap();
        let Some(compiled) = permissions.for_api(api, now).await else {
            return vec!["<no document>".into()];
        };
        let policy = compiled.policy_for(
            Role::parse(role).unwrap(),
            crate::access::second_factor::Reach::Full,
            ALICE,
            &method_arn,
        );
        let statement = &policy.statement[0];
        match statement.effect {
            IamPolicyEffect::Allow => statement
                .resource
                .iter()
                .map(|r| r.rsplit_once("/prod/").unwrap().1.to_string())
                .collect(),
            _ => Vec::new(),
        }
    }

    #[tokio::test]
    async fn each_role_gets_its_routes_and_the_self_rule_names_the_caller() {
        let source = StaticDocuments::new(vec![("orders1".into(), ORDERS.into())]);
        let permissions = Permissions::load(
            Box::new(source),
            roles("admin,customer,support"),
            SecondFactorRule::none(),
            60,
            0,
        )
        .await
        .unwrap();
        assert_eq!(
            resources(&permissions, "orders1", "support", 1).await,
            ["GET/orders", "POST/orders", "GET/customers/*/orders"]
        );
        assert_eq!(
            resources(&permissions, "orders1", "admin", 1).await,
            [
                "GET/orders",
                "POST/orders",
                format!("GET/customers/{ALICE}/orders").as_str()
            ]
        );
        assert_eq!(
            resources(&permissions, "orders1", "customer", 1).await,
            [
                "POST/orders",
                format!("GET/customers/{ALICE}/orders").as_str()
            ]
        );
    }

    #[tokio::test]
    async fn an_api_without_a_document_or_with_a_broken_one_gets_nothing() {
        let source = StaticDocuments::new(vec![
            ("orders1".into(), ORDERS.into()),
            (
                "broken1".into(),
                r#"{"version": 1, "routes": [{"route": "GET /*", "roles": "*"}]}"#.into(),
            ),
        ]);
        let permissions = Permissions::load(
            Box::new(source),
            roles("admin,customer,support"),
            SecondFactorRule::none(),
            60,
            0,
        )
        .await
        .unwrap();
        assert!(permissions.for_api("other1", 1).await.is_none());
        assert!(permissions.for_api("broken1", 1).await.is_none());
        assert!(permissions.for_api("orders1", 1).await.is_some());
    }

    #[tokio::test]
    async fn a_role_not_declared_gets_no_route_even_where_a_document_names_it() {
        let source = StaticDocuments::new(vec![("orders1".into(), ORDERS.into())]);
        // "support" is in the document but not declared by this deployment.
        let permissions = Permissions::load(
            Box::new(source),
            roles("admin,customer"),
            SecondFactorRule::none(),
            60,
            0,
        )
        .await
        .unwrap();
        assert_eq!(
            resources(&permissions, "orders1", "support", 1).await,
            Vec::<String>::new()
        );
        assert_eq!(
            resources(&permissions, "orders1", "auditor", 1).await,
            Vec::<String>::new()
        );
    }

    #[tokio::test]
    async fn a_changed_document_takes_effect_within_the_refresh_interval_and_not_before() {
        let source = StaticDocuments::new(vec![("orders1".into(), ORDERS.into())]);
        let permissions = Permissions::load(
            Box::new(source.clone()),
            roles("admin,customer,support"),
            SecondFactorRule::none(),
            60,
            1000,
        )
        .await
        .unwrap();
        // Support loses GET /orders: seen at the interval, not before.
        source.put(
            "orders1",
            r#"{"version": 1, "routes": [{"route": "GET /orders", "roles": ["admin"]}]}"#,
        );
        assert_eq!(
            resources(&permissions, "orders1", "support", 1059)
                .await
                .len(),
            3
        );
        assert_eq!(
            resources(&permissions, "orders1", "support", 1060).await,
            Vec::<String>::new()
        );
        // A new API registers: found within RETRY_SECS of a read, not a whole interval.
        source.put(
            "reports1",
            r#"{"version": 1, "routes": [{"route": "GET /r", "roles": "*"}]}"#,
        );
        assert!(permissions.for_api("reports1", 1061).await.is_none());
        assert!(permissions.for_api("reports1", 1065).await.is_some());
        // A document removed: its API is denied from the next read on (an interval after
        // the last read, at 1065).
        source.0.lock().unwrap().clear();
        assert!(permissions.for_api("reports1", 1124).await.is_some());
        assert!(permissions.for_api("reports1", 1125).await.is_none());
    }

    #[tokio::test]
    async fn requests_for_an_unregistered_api_read_the_registry_at_most_once_per_retry_interval() {
        let source = Arc::new(Failing(std::sync::atomic::AtomicU32::new(0)));
        struct Counting(Arc<Failing>);
        #[async_trait::async_trait]
        impl DocumentSource for Counting {
            async fn documents(&self) -> Result<Vec<(String, String)>, SourceError> {
                self.0.0.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                Ok(vec![("orders1".into(), ORDERS.into())])
            }
        }
        let permissions = Permissions::load(
            Box::new(Counting(source.clone())),
            roles("admin,customer"),
            SecondFactorRule::none(),
            3600,
            0,
        )
        .await
        .unwrap();
        for now in 0..=20 {
            for _ in 0..10 {
                assert!(permissions.for_api("nobody1", now).await.is_none());
            }
            // A known API never causes a read before its interval.
            assert!(permissions.for_api("orders1", now).await.is_some());
        }
        // The load, then one read at 5, 10, 15 and 20: not 210.
        assert_eq!(source.0.load(std::sync::atomic::Ordering::SeqCst), 5);
    }

    struct Failing(std::sync::atomic::AtomicU32);

    #[async_trait::async_trait]
    impl DocumentSource for Failing {
        async fn documents(&self) -> Result<Vec<(String, String)>, SourceError> {
            let calls = self.0.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            if calls == 0 {
                Ok(vec![("orders1".into(), ORDERS.into())])
            } else {
                Err(SourceError("down".into()))
            }
        }
    }

    #[tokio::test]
    async fn a_failed_re_read_keeps_the_last_documents_and_retries_soon_not_on_every_call() {
        let source = Arc::new(Failing(std::sync::atomic::AtomicU32::new(0)));
        struct Shared(Arc<Failing>);
        #[async_trait::async_trait]
        impl DocumentSource for Shared {
            async fn documents(&self) -> Result<Vec<(String, String)>, SourceError> {
                self.0.documents().await
            }
        }
        let permissions = Permissions::load(
            Box::new(Shared(source.clone())),
            roles("admin,customer,support"),
            SecondFactorRule::none(),
            60,
            0,
        )
        .await
        .unwrap();
        assert!(permissions.for_api("orders1", 60).await.is_some());
        assert!(permissions.for_api("orders1", 61).await.is_some());
        assert!(permissions.for_api("orders1", 64).await.is_some());
        // One read at load, one at 60, one at 65: not one per call.
        assert!(permissions.for_api("orders1", 65).await.is_some());
        assert_eq!(source.0.load(std::sync::atomic::Ordering::SeqCst), 3);
    }

    #[tokio::test]
    async fn a_source_down_at_cold_start_stops_the_start() {
        let source = Failing(std::sync::atomic::AtomicU32::new(1));
        assert!(
            Permissions::load(
                Box::new(source),
                roles("admin"),
                SecondFactorRule::none(),
                60,
                0
            )
            .await
            .is_err()
        );
    }
}
