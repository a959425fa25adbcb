//! Where a deployment registers permissions documents: SSM parameters under one path
//! (`PERMISSIONS_PATH`, e.g. `/my-auth-stack/permissions`), one `String` parameter per API,
//! named by the API's id (`/my-auth-stack/permissions/a1b2c3d4e5`), holding the document.
//!
//! Each stack declares its own parameter (`AWS::SSM::Parameter`) beside its API, so adding
//! a route is a change to that stack only; this stack's template registers its own API's
//! the same way. SSM rather than the users table: a parameter is a resource any template
//! can declare with no code run at deploy time, and the authorizer reads them all in one
//! paged call at cold start and once per refresh interval, off DynamoDB entirely.

use crate::access::registry::{DocumentSource, SourceError};
use std::time::Duration;

/// Most documents read (beyond, the rest are ignored and the fact is logged): bounds the
/// work of one read and the memory the authorizer holds.
pub const MAX_DOCUMENTS: usize = 500;

/// A whole read, every page, gives up after this: well inside the authorizer's timeout, so
/// a slow SSM is a failed read (the last documents kept), not a timed-out authorization.
pub const READ_TIMEOUT: Duration = Duration::from_secs(5);

/// The documents under one SSM path.
pub struct SsmDocuments {
    client: aws_sdk_ssm::Client,
    path: String,
}

impl SsmDocuments {
    pub fn new(client: aws_sdk_ssm::Client, path: &str) -> Self {
        Self {
            client,
            path: path.trim_end_matches('/').to_string(),
        }
    }
}

#[async_trait::async_trait]
impl DocumentSource for SsmDocuments {
    async fn documents(&self) -> Result<Vec<(String, String)>, SourceError> {
        tokio::time::timeout(READ_TIMEOUT, self.read_all())
            .await
            .unwrap_or_else(|_| {
                tracing::error!(path = %self.path, "reading permissions documents timed out");
                Err(SourceError("timed out".into()))
            })
    }
}

impl SsmDocuments {
    async fn read_all(&self) -> Result<Vec<(String, String)>, SourceError> {
        let mut documents = Vec::new();
        let mut next_token: Option<String> = None;
        loop {
            let page = self
                .client
                .get_parameters_by_path()
                .path(&self.path)
                .recursive(false)
                .max_results(10)
                .set_next_token(next_token.take())
                .send()
                .await
                .map_err(|err| {
                    let reason = crate::web::error::error_chain(&err);
                    tracing::error!(path = %self.path, error = %reason, "reading permissions documents failed");
                    SourceError(reason)
                })?;
            for parameter in page.parameters() {
                let (Some(name), Some(value)) = (parameter.name(), parameter.value()) else {
                    continue;
                };
                // `{path}/{api id}`; the API id is what API Gateway puts in a methodArn.
                let Some(api_id) = name
                    .strip_prefix(&self.path)
                    .and_then(|rest| rest.strip_prefix('/'))
                else {
                    continue;
                };
                documents.push((api_id.to_string(), value.to_string()));
            }
            next_token = page.next_token().map(str::to_owned);
            if next_token.is_none() {
                break;
            }
            if documents.len() >= MAX_DOCUMENTS {
                tracing::error!(path = %self.path, "more than {MAX_DOCUMENTS} permissions documents: the rest are not read (their APIs are denied)");
                break;
            }
        }
        Ok(documents)
    }
}
