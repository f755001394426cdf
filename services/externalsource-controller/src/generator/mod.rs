//! Generators make a source's data. They are registered by name in a [`Factory`]; the
//! reconciler asks the factory for the spec's `generator.type`, so another kind of source is
//! one more registration, not a change to the reconciler.

pub mod http;

use std::{collections::BTreeMap, collections::HashMap, sync::Arc};

use futures::future::BoxFuture;

use crate::{crd::GeneratorSpec, error::Result};

/// What a generator got.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Fetched {
    /// The source says nothing changed since `etag` (HTTP 304).
    Unchanged,
    New {
        data: Vec<u8>,
        etag: Option<String>,
        /// Kept with the artifact (`contentType`, `url`).
        metadata: BTreeMap<String, String>,
    },
}

/// What a generator is given.
pub struct Input<'a> {
    pub spec: &'a GeneratorSpec,
    pub namespace: &'a str,
    /// The ETag of the data last packaged.
    pub last_etag: Option<&'a str>,
    /// Reads the Secrets the spec names, in the source's namespace.
    pub client: &'a kube::Client,
}

pub trait Generator: Send + Sync {
    fn generate<'a>(&'a self, input: Input<'a>) -> BoxFuture<'a, Result<Fetched>>;
}

/// The generators, by the name `generator.type` uses.
#[derive(Clone, Default)]
pub struct Factory {
    generators: HashMap<String, Arc<dyn Generator>>,
}

impl Factory {
    pub fn register(&mut self, name: &str, generator: Arc<dyn Generator>) {
        self.generators.insert(name.to_owned(), generator);
    }

    pub fn get(&self, name: &str) -> Result<Arc<dyn Generator>> {
        self.generators.get(name).cloned().ok_or_else(|| {
            crate::error::Error::Configuration(format!(
                "no generator of type {name:?} is registered"
            ))
        })
    }

    pub fn types(&self) -> Vec<&str> {
        let mut names: Vec<&str> = self.generators.keys().map(String::as_str).collect();
        names.sort_unstable();
        names
    }
}
