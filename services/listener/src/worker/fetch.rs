//! Reading a source from sources-api: the whole source, or only its cost-management
//! application when nothing else can have changed.

use uuid::Uuid;

use super::Worker;
use crate::{
    domain::{CredentialParts, Desired, ProviderType, Synced, Truth, provider_type},
    sources_client::{Caller, ClientError},
    store::SourceRow,
};

/// What was read from sources-api for one source.
#[derive(Debug, Clone)]
pub(super) struct Fetched {
    pub(super) truth: Truth,
    pub(super) uid: Option<Uuid>,
    pub(super) application_id: Option<i64>,
}

impl Fetched {
    pub(super) fn gone() -> Self {
        Self {
            truth: Truth::Gone,
            uid: None,
            application_id: None,
        }
    }
}

impl Worker {
    async fn type_name(
        &self,
        caller: Caller<'_>,
        type_id: i64,
    ) -> Result<Option<String>, ClientError> {
        if let Some(name) = self.type_names.read().await.get(&type_id) {
            return Ok(name.clone());
        }
        let name = self.client.source_type_name(caller, type_id).await?;
        self.type_names.write().await.insert(type_id, name.clone());
        Ok(name)
    }

    /// Reads the source from sources-api: details, the cost-management application, and
    /// the credentials its type needs.
    pub(super) async fn fetch(
        &self,
        caller: Caller<'_>,
        row: &SourceRow,
    ) -> Result<Fetched, ClientError> {
        let id = row.source_id;
        // Independent reads, sent together. The authentications are read unless the source
        // is known to be of a type without them; before its type is known, all of them (the
        // one of its type is picked below).
        let known = ProviderType::parse(&row.source_type);
        let read_authentications = known.is_none_or(|t| t.authtype().is_some());
        let (details, app, authentications) = tokio::join!(
            self.client.source(caller, id),
            self.client.cost_application(caller, id, self.cost_type_id),
            async {
                match read_authentications {
                    true => self
                        .client
                        .authentications(caller, id, known.and_then(ProviderType::authtype))
                        .await
                        .map(Some),
                    false => Ok(None),
                }
            }
        );
        let details = match details {
            Ok(d) => d,
            Err(ClientError::SourceNotFound) => return Ok(Fetched::gone()),
            Err(e) => return Err(e),
        };
        let Some(app) = app? else {
            return Ok(Fetched::gone());
        };
        let uid = details.uid.as_deref().and_then(|u| Uuid::parse_str(u).ok());
        let type_name = self.type_name(caller, details.source_type_id).await?;
        let Some(ty) = type_name
            .as_deref()
            .and_then(ProviderType::from_source_type_name)
        else {
            return Ok(Fetched {
                truth: Truth::Unsupported(type_name.unwrap_or_default()),
                uid,
                application_id: Some(app.id),
            });
        };
        let mut parts = CredentialParts {
            app_extra: app.extra.clone(),
            source_ref: details.source_ref.clone(),
            ..Default::default()
        };
        let authentications = match (authentications?, ty.authtype()) {
            (Some(read), _) => read,
            // Read only when a type needs them (a source's type never changes).
            (None, Some(authtype)) => {
                self.client
                    .authentications(caller, id, Some(authtype))
                    .await?
            }
            (None, None) => Vec::new(),
        };
        let of_type = ty.authtype().and_then(|authtype| {
            authentications
                .into_iter()
                .find_map(|(t, auth)| (t == authtype).then_some(auth))
        });
        if let Some(auth) = of_type {
            let needs_password = match ty.family() {
                provider_type::Family::Azure => true,
                provider_type::Family::Aws => auth.username.as_deref().is_none_or(str::is_empty),
                _ => false,
            };
            if needs_password {
                parts.password = self.client.password(caller, auth.id).await?;
            }
            parts.username = auth.username;
            parts.auth_extra = auth.extra;
        }
        let desired = Desired {
            name: details.name,
            ty,
            credentials: provider_type::credentials(ty, &parts),
            data_source: provider_type::data_source(ty, &app.extra),
            paused: app.paused,
        };
        Ok(Fetched {
            truth: Truth::Present(desired),
            uid,
            application_id: Some(app.id),
        })
    }

    /// Reads only the application, for triggers that change nothing else: the rest is what
    /// the provider was built from. Azure's subscription id lives in the application but
    /// belongs to the credentials, so Azure sources are read whole.
    pub(super) async fn fetch_application(
        &self,
        caller: Caller<'_>,
        row: &SourceRow,
        synced: &Synced,
    ) -> Result<Fetched, ClientError> {
        let ty = ProviderType::parse(&row.source_type);
        let Some(ty) = ty.filter(|t| t.family() != provider_type::Family::Azure) else {
            return self.fetch(caller, row).await;
        };
        let Some(app) = self
            .client
            .cost_application(caller, row.source_id, self.cost_type_id)
            .await?
        else {
            return Ok(Fetched::gone());
        };
        let desired = Desired {
            name: synced.name.clone(),
            ty,
            credentials: synced.credentials.clone(),
            data_source: provider_type::data_source(ty, &app.extra),
            paused: app.paused,
        };
        Ok(Fetched {
            truth: Truth::Present(desired),
            uid: row.source_uuid,
            application_id: Some(app.id),
        })
    }
}
