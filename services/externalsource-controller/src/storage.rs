//! Where artifacts are kept, through `object_store`: memory, a local directory, or S3 (real
//! SigV4, any S3-compatible endpoint). Whatever the backend, consumers download from the
//! controller's own artifact server, so the `url` needs no credentials.

use std::sync::{Arc, OnceLock};

use futures::TryStreamExt as _;
use object_store::{ObjectStore, ObjectStoreExt as _, PutPayload, path::Path};

use crate::error::{Error, Result};

#[derive(Clone)]
pub struct Storage {
    store: Arc<dyn ObjectStore>,
    /// `http://host[:port]` the artifacts are served from (known once the server is bound).
    base_url: Arc<OnceLock<String>>,
}

fn failed(e: object_store::Error) -> Error {
    Error::Storage(e.to_string())
}

impl Storage {
    pub fn new(store: Arc<dyn ObjectStore>) -> Self {
        Self {
            store,
            base_url: Arc::default(),
        }
    }

    /// Sets where artifacts are served from (once).
    pub fn serve_from(&self, base_url: &str) {
        let _ = self.base_url.set(base_url.trim_end_matches('/').to_owned());
    }

    pub fn url(&self, key: &str) -> String {
        let base = self.base_url.get().map_or("", String::as_str);
        format!("{base}/{key}")
    }

    pub async fn exists(&self, key: &str) -> Result<bool> {
        match self.store.head(&Path::from(key)).await {
            Ok(_) => Ok(true),
            Err(object_store::Error::NotFound { .. }) => Ok(false),
            Err(e) => Err(failed(e)),
        }
    }

    pub async fn put(&self, key: &str, bytes: Vec<u8>) -> Result<()> {
        self.store
            .put(&Path::from(key), PutPayload::from(bytes))
            .await
            .map(|_| ())
            .map_err(failed)
    }

    pub async fn get(&self, key: &str) -> Result<Option<bytes::Bytes>> {
        match self.store.get(&Path::from(key)).await {
            Ok(r) => r.bytes().await.map(Some).map_err(failed),
            Err(object_store::Error::NotFound { .. }) => Ok(None),
            Err(e) => Err(failed(e)),
        }
    }

    /// The objects under `prefix` with when each was written (milliseconds).
    pub async fn list(&self, prefix: &str) -> Result<Vec<(String, i64)>> {
        let prefix = Path::from(prefix.trim_end_matches('/'));
        self.store
            .list(Some(&prefix))
            .map_ok(|m| (m.location.to_string(), m.last_modified.timestamp_millis()))
            .try_collect()
            .await
            .map_err(failed)
    }

    pub async fn delete(&self, key: &str) -> Result<()> {
        match self.store.delete(&Path::from(key)).await {
            Ok(()) | Err(object_store::Error::NotFound { .. }) => Ok(()),
            Err(e) => Err(failed(e)),
        }
    }
}
