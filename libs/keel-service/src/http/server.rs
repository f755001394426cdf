use std::net::SocketAddr;

use anyhow::Context as _;
use axum::{Router, extract::Request, http::Uri};
use tokio::net::TcpListener;
use tower::ServiceExt as _;

use super::HttpOptions;
use crate::Shutdown;

/// A bound listener and the router it serves: bound at build time so port 0 works in tests
/// and the address is known before the service runs.
pub struct HttpServer {
    listener: TcpListener,
    router: Router,
    options: HttpOptions,
}

impl HttpServer {
    pub async fn bind(
        addr: SocketAddr,
        router: Router,
        options: &HttpOptions,
    ) -> anyhow::Result<Self> {
        let listener = TcpListener::bind(addr)
            .await
            .with_context(|| format!("cannot listen on {addr}"))?;
        Ok(Self {
            listener,
            router,
            options: options.clone(),
        })
    }

    pub fn local_addr(&self) -> SocketAddr {
        self.listener
            .local_addr()
            .expect("a bound listener has an address")
    }

    /// Serves until `shutdown` starts, then stops accepting and lets in-flight requests finish
    /// (the caller bounds how long by the drain deadline).
    pub async fn serve(self, shutdown: &Shutdown) -> anyhow::Result<()> {
        let addr = self.local_addr();
        let (trim, keep) = (
            self.options.trim_trailing_slash,
            self.options.keep_trailing_slash,
        );
        let app = self.router.map_request(move |req: Request| {
            if trim {
                trim_trailing_slash(req, &keep)
            } else {
                req
            }
        });
        let stop = shutdown.clone();
        axum::serve(
            self.listener,
            // The peer's address, for what limits or logs per client.
            axum::ServiceExt::<Request>::into_make_service_with_connect_info::<SocketAddr>(app),
        )
        .with_graceful_shutdown(async move { stop.triggered().await })
        .await
        .with_context(|| format!("serving HTTP on {addr}"))
    }
}

/// A service's listeners: its API, and the operations port (/metrics, /livez, /readyz) when
/// one is configured.
pub struct Listeners {
    api: HttpServer,
    ops: Option<HttpServer>,
}

impl Listeners {
    /// Binds `listen`'s ports: `api` on the API port, `ops` on the operations port.
    pub async fn bind(
        listen: crate::config::Listen,
        api: Router,
        ops: Router,
        options: &HttpOptions,
    ) -> anyhow::Result<Self> {
        let api = HttpServer::bind((listen.host, listen.port).into(), api, options).await?;
        let ops = match listen.metrics_port {
            Some(port) => Some(HttpServer::bind((listen.host, port).into(), ops, options).await?),
            None => None,
        };
        Ok(Self { api, ops })
    }

    pub fn api_addr(&self) -> SocketAddr {
        self.api.local_addr()
    }

    pub fn ops_addr(&self) -> Option<SocketAddr> {
        self.ops.as_ref().map(HttpServer::local_addr)
    }

    /// Serves both until shutdown, then drains both.
    pub async fn serve(self, shutdown: &Shutdown) -> anyhow::Result<()> {
        match self.ops {
            Some(ops) => {
                // One server failing stops the other, so the error comes back at once.
                let both = shutdown.child();
                let stop_on_error = |served: anyhow::Result<()>| {
                    if served.is_err() {
                        both.trigger();
                    }
                    served
                };
                let (api, ops) = tokio::join!(
                    async { stop_on_error(self.api.serve(&both).await) },
                    async { stop_on_error(ops.serve(&both).await) },
                );
                api.and(ops)
            }
            None => self.api.serve(shutdown).await,
        }
    }
}

/// Strips one trailing slash before routing, except under the prefixes in `keep` (the
/// interactive docs need theirs).
fn trim_trailing_slash(mut req: Request, keep: &[String]) -> Request {
    let path = req.uri().path();
    if path.len() > 1 && path.ends_with('/') && !keep.iter().any(|k| path.starts_with(k.as_str())) {
        let trimmed = path.trim_end_matches('/');
        let trimmed = if trimmed.is_empty() { "/" } else { trimmed };
        let rebuilt = match req.uri().query() {
            Some(q) => format!("{trimmed}?{q}"),
            None => trimmed.to_owned(),
        };
        if let Ok(uri) = rebuilt.parse::<Uri>() {
            *req.uri_mut() = uri;
        }
    }
    req
}

#[cfg(test)]
mod tests {
    use super::*;

    fn trimmed(uri: &str) -> String {
        let req = Request::builder()
            .uri(uri)
            .body(axum::body::Body::empty())
            .unwrap();
        trim_trailing_slash(req, &["/docs/".to_owned()])
            .uri()
            .to_string()
    }

    #[test]
    fn trailing_slashes_are_trimmed_except_under_kept_prefixes() {
        assert_eq!(
            trimmed("/api/sources/v3.1/sources/"),
            "/api/sources/v3.1/sources"
        );
        assert_eq!(trimmed("/a/?x=1"), "/a?x=1");
        assert_eq!(trimmed("/"), "/");
        assert_eq!(trimmed("/docs/"), "/docs/");
    }
}
