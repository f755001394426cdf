//! Object stores: the customers' S3 buckets (one client per bucket, configured the way AWS
//! tools are) and the store uploaded payloads are kept in (a bucket, or a local directory).

use std::{
    collections::HashMap,
    sync::{Arc, Mutex},
};

use object_store::{ObjectStore, aws::AmazonS3Builder, local::LocalFileSystem, memory::InMemory};

use crate::config::{PayloadStore, S3Settings};

/// Bucket clients by (bucket, region).
type Buckets = HashMap<(String, String), Arc<dyn ObjectStore>>;

/// Every object store the service reads or writes.
#[derive(Clone)]
pub struct Objects {
    s3: S3Settings,
    buckets: Arc<Mutex<Buckets>>,
    payloads: Arc<dyn ObjectStore>,
}

impl Objects {
    pub fn new(s3: S3Settings, payloads: &PayloadStore) -> anyhow::Result<Self> {
        let payloads: Arc<dyn ObjectStore> = match payloads {
            PayloadStore::Bucket(bucket) => Arc::new(s3_builder(&s3, bucket, None).build()?),
            PayloadStore::Directory(dir) => {
                std::fs::create_dir_all(dir)?;
                Arc::new(LocalFileSystem::new_with_prefix(dir)?)
            }
            PayloadStore::Memory => Arc::new(InMemory::new()),
        };
        Ok(Self {
            s3,
            buckets: Arc::default(),
            payloads,
        })
    }

    /// The client of a customer's bucket (`region`: the billing source's `bucket_region`).
    pub fn bucket(
        &self,
        bucket: &str,
        region: Option<&str>,
    ) -> object_store::Result<Arc<dyn ObjectStore>> {
        let key = (bucket.to_owned(), region.unwrap_or_default().to_owned());
        let mut buckets = self.buckets.lock().expect("bucket map lock");
        if let Some(store) = buckets.get(&key) {
            return Ok(store.clone());
        }
        let store: Arc<dyn ObjectStore> = Arc::new(s3_builder(&self.s3, bucket, region).build()?);
        buckets.insert(key, store.clone());
        Ok(store)
    }

    /// Where uploaded payloads are kept.
    pub fn payloads(&self) -> Arc<dyn ObjectStore> {
        self.payloads.clone()
    }
}

fn s3_builder(s3: &S3Settings, bucket: &str, region: Option<&str>) -> AmazonS3Builder {
    let mut b = AmazonS3Builder::new()
        .with_bucket_name(bucket)
        .with_region(region.unwrap_or(&s3.region));
    if let Some(endpoint) = &s3.endpoint {
        b = b
            .with_endpoint(endpoint)
            .with_allow_http(endpoint.starts_with("http://"))
            .with_virtual_hosted_style_request(false);
    }
    if let (Some(id), Some(secret)) = (&s3.access_key_id, &s3.secret_access_key) {
        b = b
            .with_access_key_id(id)
            .with_secret_access_key(secret.expose());
    }
    if let Some(token) = &s3.session_token {
        b = b.with_token(token.expose());
    }
    b
}
