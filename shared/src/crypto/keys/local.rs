//! A stand-in for the Secrets Manager key-set secret, for local runs and tests: versions
//! with staging labels, kept in memory or in a JSON file, so that `serve` and the `keys`
//! command (another process) share one secret and the real rotation steps run against it.
//! Never used by a deployed stack.

use super::KeyRing;
use super::live::{KeySetSource, KeySourceError, ring_of_stored};
use super::rotation::{RotatedSecret, RotationError};
use crate::crypto::secret::{SecretError, SecretVersion};
use serde::{Deserialize, Serialize};
use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::Mutex;

#[derive(Default, Serialize, Deserialize)]
struct Versions {
    /// version id -> (staging labels, value)
    versions: HashMap<String, (Vec<String>, String)>,
}

/// The local key-set secret.
pub struct LocalSecret {
    /// Where it is kept between processes; in memory only when `None`.
    path: Option<PathBuf>,
    memory: Mutex<Versions>,
}

impl LocalSecret {
    /// A secret whose current version is `value`, in memory.
    pub fn in_memory(value: &str) -> Self {
        let secret = Self {
            path: None,
            memory: Mutex::new(Versions::default()),
        };
        secret.lock().versions.insert(
            "initial".into(),
            (vec!["AWSCURRENT".into()], value.to_string()),
        );
        secret
    }

    /// The secret kept in `path`; when the file does not exist yet, it is created with
    /// `initial` as the current version.
    pub fn in_file(path: PathBuf, initial: impl FnOnce() -> String) -> std::io::Result<Self> {
        let secret = Self {
            path: Some(path),
            memory: Mutex::new(Versions::default()),
        };
        let path = secret.path.as_ref().expect("just set");
        if !path.exists() {
            if let Some(dir) = path.parent() {
                std::fs::create_dir_all(dir)?;
            }
            let mut versions = Versions::default();
            versions
                .versions
                .insert("initial".into(), (vec!["AWSCURRENT".into()], initial()));
            secret.save(&versions)?;
        }
        Ok(secret)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Versions> {
        self.memory.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn load(&self) -> std::io::Result<Versions> {
        match &self.path {
            None => Ok(Versions {
                versions: self.lock().versions.clone(),
            }),
            Some(path) => {
                let json = std::fs::read_to_string(path)?;
                serde_json::from_str(&json).map_err(std::io::Error::other)
            }
        }
    }

    fn save(&self, versions: &Versions) -> std::io::Result<()> {
        match &self.path {
            None => {
                self.lock().versions = versions.versions.clone();
                Ok(())
            }
            Some(path) => {
                // Written whole then renamed: a reader never sees half a file.
                let json = serde_json::to_string_pretty(versions).map_err(std::io::Error::other)?;
                let partial = path.with_extension("partial");
                let _ = std::fs::remove_file(&partial);
                write_owner_only(&partial, json.as_bytes())?;
                std::fs::rename(partial, path)
            }
        }
    }

    /// The value of `AWSCURRENT`.
    pub fn current(&self) -> std::io::Result<Option<String>> {
        Ok(self
            .load()?
            .versions
            .into_values()
            .find(|(labels, _)| labels.iter().any(|label| label == "AWSCURRENT"))
            .map(|(_, value)| value))
    }

    /// Replaces the current value with a new version (what `put-secret-value` does).
    pub fn put_current(&self, value: &str) -> std::io::Result<()> {
        let mut versions = self.load()?;
        for (labels, _) in versions.versions.values_mut() {
            labels.retain(|label| label != "AWSCURRENT");
        }
        let id = format!("v{}", versions.versions.len() + 1);
        versions
            .versions
            .insert(id, (vec!["AWSCURRENT".into()], value.to_string()));
        self.save(&versions)
    }
}

/// Creates `path` readable by its owner only, from the start (it holds private keys).
fn write_owner_only(path: &std::path::Path, bytes: &[u8]) -> std::io::Result<()> {
    use std::io::Write;
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    options.open(path)?.write_all(bytes)
}

fn io(err: std::io::Error) -> RotationError {
    RotationError::Secret(SecretError::SecretsManager(Box::new(err)))
}

#[async_trait::async_trait]
impl RotatedSecret for LocalSecret {
    async fn stages(&self) -> Result<HashMap<String, Vec<String>>, RotationError> {
        Ok(self
            .load()
            .map_err(io)?
            .versions
            .into_iter()
            .map(|(id, (labels, _))| (id, labels))
            .collect())
    }

    async fn read(&self, version: SecretVersion<'_>) -> Result<Option<String>, RotationError> {
        match version {
            SecretVersion::Current => self.current().map_err(io),
            SecretVersion::Pending(token) => Ok(self
                .load()
                .map_err(io)?
                .versions
                .remove(token)
                .filter(|(labels, _)| labels.iter().any(|label| label == "AWSPENDING"))
                .map(|(_, value)| value)),
        }
    }

    async fn put_pending(&self, token: &str, value: &str) -> Result<(), RotationError> {
        let mut versions = self.load().map_err(io)?;
        if let Some((_, existing)) = versions.versions.get(token) {
            // As Secrets Manager: the same token again must carry the same value.
            return if existing == value {
                Ok(())
            } else {
                Err(RotationError::Refused(
                    "this version already holds another value".into(),
                ))
            };
        }
        for (labels, _) in versions.versions.values_mut() {
            labels.retain(|label| label != "AWSPENDING");
        }
        versions.versions.insert(
            token.to_string(),
            (vec!["AWSPENDING".into()], value.to_string()),
        );
        self.save(&versions).map_err(io)
    }

    async fn make_current(
        &self,
        token: &str,
        _previous: Option<&str>,
    ) -> Result<(), RotationError> {
        let mut versions = self.load().map_err(io)?;
        if !versions.versions.contains_key(token) {
            return Err(RotationError::Refused("no such version".into()));
        }
        for (id, (labels, _)) in versions.versions.iter_mut() {
            labels.retain(|label| label != "AWSCURRENT" && label != "AWSPENDING");
            if id == token {
                labels.push("AWSCURRENT".into());
            }
        }
        // Versions with no label left are gone, as Secrets Manager deprecates them.
        versions
            .versions
            .retain(|_, (labels, _)| !labels.is_empty());
        self.save(&versions).map_err(io)
    }

    async fn cancel_pending(&self, token: &str) -> Result<(), RotationError> {
        let mut versions = self.load().map_err(io)?;
        if let Some((labels, _)) = versions.versions.get_mut(token) {
            labels.retain(|label| label != "AWSPENDING");
        }
        versions
            .versions
            .retain(|_, (labels, _)| !labels.is_empty());
        self.save(&versions).map_err(io)
    }
}

#[async_trait::async_trait]
impl KeySetSource for LocalSecret {
    async fn read(&self) -> Result<Option<KeyRing>, KeySourceError> {
        match self.current() {
            Ok(Some(json)) => ring_of_stored(&json),
            Ok(None) => Ok(None),
            Err(err) => Err(KeySourceError::Unavailable(Box::new(err))),
        }
    }
}

// One local secret is the signer's source and the rotation's secret at once.
#[async_trait::async_trait]
impl KeySetSource for std::sync::Arc<LocalSecret> {
    async fn read(&self) -> Result<Option<KeyRing>, KeySourceError> {
        KeySetSource::read(self.as_ref()).await
    }
}

#[async_trait::async_trait]
impl RotatedSecret for std::sync::Arc<LocalSecret> {
    async fn stages(&self) -> Result<HashMap<String, Vec<String>>, RotationError> {
        self.as_ref().stages().await
    }
    async fn read(&self, version: SecretVersion<'_>) -> Result<Option<String>, RotationError> {
        RotatedSecret::read(self.as_ref(), version).await
    }
    async fn put_pending(&self, token: &str, value: &str) -> Result<(), RotationError> {
        self.as_ref().put_pending(token, value).await
    }
    async fn make_current(&self, token: &str, previous: Option<&str>) -> Result<(), RotationError> {
        self.as_ref().make_current(token, previous).await
    }
    async fn cancel_pending(&self, token: &str) -> Result<(), RotationError> {
        self.as_ref().cancel_pending(token).await
    }
}
