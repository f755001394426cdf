//! The handlers every resource has in the same shape, written once: a tenant's list, one row
//! by id, a delete. Each expands to an ordinary handler with its OpenAPI operation, so the
//! generated document is the same as if written out.

/// `GET <path>`: one page of the tenant's rows, from `$list(db, tenant, [filter,] query)`.
macro_rules! tenant_list {
    ($(#[doc = $doc:literal])* $name:ident: $path:literal, $tag:literal, $out:ident,
     $list:path $(, $filter:expr)?) => {
        $(#[doc = $doc])*
        #[utoipa::path(get, path = $path, tag = $tag, params(keel_sources_http::ListQueryDoc),
            responses((status = 200, body = keel_sources_http::Collection<$out>),
                (status = 400, body = keel_sources_http::ErrorDocument),
                (status = 401, body = keel_sources_http::ErrorDocument)))]
        async fn $name(
            axum::extract::State(state): axum::extract::State<crate::state::AppState>,
            tenant: crate::store::Tenant,
            params: keel_sources_http::ListParams,
        ) -> crate::error::Result<axum::Json<keel_sources_http::Collection<$out>>> {
            let page = $list(&state.db, &tenant, $($filter,)? &params.query).await?;
            Ok(axum::Json(crate::resources::collection(page, &params)))
        }
    };
}

/// `GET <path>` with `{id}`: the tenant's row, from `$find(db, tenant, id)`, or 404.
macro_rules! tenant_get {
    ($(#[doc = $doc:literal])* $name:ident: $path:literal, $tag:literal, $id:literal, $out:ident,
     $find:path) => {
        $(#[doc = $doc])*
        #[utoipa::path(get, path = $path, tag = $tag,
            params(("id" = String, Path, description = $id)),
            responses((status = 200, body = $out),
                (status = 400, body = keel_sources_http::ErrorDocument),
                (status = 401, body = keel_sources_http::ErrorDocument),
                (status = 404, body = keel_sources_http::ErrorDocument)))]
        async fn $name(
            keel_sources_http::PathId(id): keel_sources_http::PathId,
            axum::extract::State(state): axum::extract::State<crate::state::AppState>,
            tenant: crate::store::Tenant,
        ) -> crate::error::Result<axum::Json<$out>> {
            let row = $find(&state.db, &tenant, id.get()).await?;
            Ok(axum::Json(row.into()))
        }
    };
}

/// `DELETE <path>` with `{id}`: `$delete(write, id)`, committed with what it announces.
macro_rules! tenant_delete {
    ($(#[doc = $doc:literal])* $name:ident: $path:literal, $tag:literal, $id:literal,
     $delete:path) => {
        $(#[doc = $doc])*
        #[utoipa::path(delete, path = $path, tag = $tag,
            params(("id" = String, Path, description = $id)), security(("psk" = [])),
            responses((status = 204),
                (status = 400, body = keel_sources_http::ErrorDocument),
                (status = 401, body = keel_sources_http::ErrorDocument),
                (status = 404, body = keel_sources_http::ErrorDocument)))]
        async fn $name(
            keel_sources_http::PathId(id): keel_sources_http::PathId,
            axum::extract::State(state): axum::extract::State<crate::state::AppState>,
            crate::extract::Writer(tenant): crate::extract::Writer,
        ) -> crate::error::Result<axum::http::StatusCode> {
            let mut w = crate::store::Write::begin(&state.db, &tenant).await?;
            $delete(&mut w, id.get()).await?;
            w.commit().await?;
            Ok(axum::http::StatusCode::NO_CONTENT)
        }
    };
}

/// `POST <path>` pausing (or resuming) the tenant's resource `{$param}`: `$set(write, id,
/// paused)`, committed with what it announces.
macro_rules! tenant_pause {
    ($(#[doc = $doc:literal])* $name:ident: $path:literal, $tag:literal, $param:literal,
     $id:literal, $set:path, $paused:literal) => {
        $(#[doc = $doc])*
        #[utoipa::path(post, path = $path, tag = $tag,
            params(($param = String, Path, description = $id)),
            responses((status = 204),
                (status = 400, body = keel_sources_http::ErrorDocument),
                (status = 401, body = keel_sources_http::ErrorDocument),
                (status = 404, body = keel_sources_http::ErrorDocument)))]
        async fn $name(
            keel_sources_http::PathId(id): keel_sources_http::PathId,
            axum::extract::State(state): axum::extract::State<crate::state::AppState>,
            tenant: crate::store::Tenant,
        ) -> crate::error::Result<axum::http::StatusCode> {
            let mut w = crate::store::Write::begin(&state.db, &tenant).await?;
            $set(&mut w, id.get(), $paused).await?;
            w.commit().await?;
            Ok(axum::http::StatusCode::NO_CONTENT)
        }
    };
}

/// `GET <path>` with `{$param}`: 404 unless `$parent` (the parent exists for the tenant), then
/// one page of `$list(db, tenant, $filter, query)`; `$parent` and `$filter` see the tenant and
/// the parent's id under the names given.
macro_rules! tenant_sub_list {
    ($(#[doc = $doc:literal])* $name:ident: $path:literal, $tag:literal, $param:literal,
     $id_doc:literal, $out:ident,
     |$db:ident, $tenant:ident, $id:ident| $parent:expr => $list:path, $filter:expr) => {
        $(#[doc = $doc])*
        #[utoipa::path(get, path = $path, tag = $tag,
            params(($param = String, Path, description = $id_doc), keel_sources_http::ListQueryDoc),
            responses((status = 200, body = keel_sources_http::Collection<$out>),
                (status = 400, body = keel_sources_http::ErrorDocument),
                (status = 401, body = keel_sources_http::ErrorDocument),
                (status = 404, body = keel_sources_http::ErrorDocument)))]
        async fn $name(
            keel_sources_http::PathId(id): keel_sources_http::PathId,
            axum::extract::State(state): axum::extract::State<crate::state::AppState>,
            tenant: crate::store::Tenant,
            params: keel_sources_http::ListParams,
        ) -> crate::error::Result<axum::Json<keel_sources_http::Collection<$out>>> {
            let ($db, $tenant, $id) = (&state.db, &tenant, id.get());
            $parent.await?;
            let page = $list($db, $tenant, $filter, &params.query).await?;
            Ok(axum::Json(crate::resources::collection(page, &params)))
        }
    };
}
