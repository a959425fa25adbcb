//! `jwt-auth keys …`: the token key set of a local deployment (`serve` with
//! `--dynamodb-endpoint`), kept in a local stand-in for its Secrets Manager secret
//! (`--key-file`) with its public half in the table. `rotate` runs the deployed rotation
//! function's four steps against them, so a person can watch a rotation happen: new tokens
//! carry the new `kid` once the running `serve` has re-read the set (`--key-refresh-secs`)
//! and the lead has passed, and earlier tokens keep working.

use jwt_auth_core::crypto::keys::local::LocalSecret;
use jwt_auth_core::crypto::keys::rotation::{self, KeyRotation, Step};
use jwt_auth_core::crypto::keys::{KeySetDocument, SigningAlgorithm};
use jwt_auth_core::crypto::token::TokenSettings;
use jwt_auth_core::startup::aws::local_dynamodb_client;
use jwt_auth_core::store::dynamodb::DynamoUserStore;
use std::path::PathBuf;
use std::sync::Arc;

#[derive(clap::Parser)]
#[command(name = "keys")]
pub struct KeysArgs {
    /// The file `serve` keeps the local key set in (its default for this table).
    #[arg(long)]
    key_file: Option<PathBuf>,
    /// DynamoDB Local, where `serve` reads users and the published public keys.
    #[arg(
        long,
        env = "DYNAMODB_ENDPOINT",
        default_value = "http://127.0.0.1:8000"
    )]
    dynamodb_endpoint: String,
    #[arg(long, default_value = "users-local")]
    table: String,
    #[command(subcommand)]
    action: KeysAction,
}

#[derive(clap::Subcommand)]
enum KeysAction {
    /// List the keys: kid, algorithm, created, retires.
    List,
    /// Rotate: a new current key, published first; the old one retires after its tokens.
    Rotate {
        /// The algorithm of the new key.
        #[arg(long, default_value = "ES256", value_parser = parse_algorithm)]
        algorithm: SigningAlgorithm,
        /// Access-token lifetime and authorizer cache TTL the retention must outlast.
        #[arg(long, default_value_t = 900)]
        token_ttl: u64,
        #[arg(long, default_value_t = 300)]
        cache_ttl: u64,
        /// Seconds the new key is published before it signs (as `KeyPublishLeadSeconds`;
        /// 60 to watch a rotation locally without waiting two hours).
        #[arg(long, default_value_t = jwt_auth_core::crypto::keys::DEFAULT_PUBLISH_LEAD_SECS,
              value_parser = clap::value_parser!(u64).range(60..=86_400))]
        publish_lead: u64,
    },
    /// Emergency: remove a leaked key now; its tokens stop verifying once re-read.
    Revoke {
        kid: String,
        /// The algorithm of the replacement, if the revoked key is the current one.
        #[arg(long, default_value = "ES256", value_parser = parse_algorithm)]
        algorithm: SigningAlgorithm,
    },
}

/// The key file `serve` uses for a DynamoDB table.
pub fn default_key_file(table: &str) -> PathBuf {
    PathBuf::from(".local").join(format!("keys-{table}.json"))
}

pub async fn run(args: KeysArgs) -> Result<String, String> {
    let path = args
        .key_file
        .unwrap_or_else(|| default_key_file(&args.table));
    if !path.exists() {
        return Err(format!(
            "{} does not exist: start `serve --dynamodb-endpoint ...` first",
            path.display()
        ));
    }
    let secret =
        Arc::new(LocalSecret::in_file(path.clone(), String::new).map_err(|err| err.to_string())?);
    let store = Arc::new(DynamoUserStore::new(
        local_dynamodb_client(&args.dynamodb_endpoint),
        args.table.clone(),
    ));
    let now = jwt_auth_core::startup::clock::unix_now();
    let current = || -> Result<KeySetDocument, String> {
        let json = secret
            .current()
            .map_err(|err| err.to_string())?
            .ok_or("the key file has no current version")?;
        KeySetDocument::from_json(&json).map_err(|err| err.to_string())
    };
    match args.action {
        KeysAction::List => Ok(describe(&current()?, now)),
        KeysAction::Rotate {
            algorithm,
            token_ttl,
            cache_ttl,
            publish_lead,
        } => {
            // The running `serve` chose its authorizer's key source (public keys, or the
            // secret for HS256) at start, as a deployment does from its template.
            let hs256 = |alg: SigningAlgorithm| alg == SigningAlgorithm::Hs256;
            let serving = current()?
                .current_key()
                .and_then(|key| SigningAlgorithm::parse(&key.alg))
                .ok_or("the key file has no current key")?;
            if hs256(serving) != hs256(algorithm) {
                return Err(format!(
                    "serve verifies {serving} keys; rotating to {algorithm} needs a restart of serve with --signing-algorithm {algorithm}"
                ));
            }
            let rotation = KeyRotation {
                secret: Box::new(secret.clone()),
                store,
                algorithm,
                retention_secs: rotation::retention_secs(token_ttl, cache_ttl, publish_lead),
                publish_lead_secs: publish_lead,
                tokens: TokenSettings::default(),
            };
            let token = format!("local-{now}-{}", std::process::id());
            for step in [
                Step::CreateSecret,
                Step::SetSecret,
                Step::TestSecret,
                Step::FinishSecret,
            ] {
                rotation
                    .run(step, &token, now)
                    .await
                    .map_err(|err| format!("{step:?}: {err}"))?;
            }
            Ok(format!("rotated.\n{}", describe(&current()?, now)))
        }
        KeysAction::Revoke { kid, algorithm } => {
            let next = rotation::revoke(&current()?, &kid, algorithm, now)
                .map_err(|err| err.to_string())?;
            // Published first, so that a replacement key verifies before anyone signs with it.
            rotation::publish(store.as_ref(), &next, now)
                .await
                .map_err(|err| err.to_string())?;
            secret
                .put_current(&next.to_json())
                .map_err(|err| err.to_string())?;
            Ok(format!("revoked {kid}.\n{}", describe(&next, now)))
        }
    }
}

fn describe(document: &KeySetDocument, now: u64) -> String {
    let mut out = String::from("kid                          alg    created     retires\n");
    for key in &document.keys {
        let retires = match key.retires_at {
            None if key.kid == document.current => "current".to_string(),
            None => "-".to_string(),
            Some(at) if at <= now => "retired".to_string(),
            Some(at) => format!("in {} s", at - now),
        };
        out.push_str(&format!(
            "{:<28} {:<6} {:>6} s ago {retires}\n",
            key.kid,
            key.alg,
            now.saturating_sub(key.created_at)
        ));
    }
    out
}

fn parse_algorithm(raw: &str) -> Result<SigningAlgorithm, String> {
    SigningAlgorithm::parse(raw).ok_or_else(|| "expected ES256, EdDSA or HS256".to_string())
}
