//! Requests per minute per client address on `/v1` routes (the seed's suggestion, 100), by
//! governor's GCRA: a client may spend its minute's quota at once, then gets one request per
//! 60/N seconds. Refusals are the seed's error body with `Retry-After`.

use std::{
    net::{IpAddr, Ipv6Addr, SocketAddr},
    num::NonZeroU32,
    sync::Arc,
};

use axum::{
    extract::{ConnectInfo, Request, State},
    middleware::Next,
    response::{IntoResponse as _, Response},
};
use governor::{Quota, RateLimiter, clock::Clock as _};

use super::AppState;
use crate::error::Error;

pub type Limiter = governor::DefaultKeyedRateLimiter<IpAddr>;

/// A limiter allowing `per_minute` requests a minute to each address.
pub fn limiter(per_minute: u32) -> Arc<Limiter> {
    let quota = Quota::per_minute(NonZeroU32::new(per_minute).unwrap_or(NonZeroU32::MIN));
    Arc::new(RateLimiter::keyed(quota))
}

pub(super) async fn limit(State(s): State<AppState>, request: Request, next: Next) -> Response {
    // Requests handed to the router without a socket (none in production) share one key.
    let client = request
        .extensions()
        .get::<ConnectInfo<SocketAddr>>()
        .map_or(IpAddr::V6(Ipv6Addr::UNSPECIFIED), |c| c.0.ip());
    match s.limiter.check_key(&client) {
        Ok(()) => next.run(request).await,
        Err(not_until) => {
            let wait = not_until.wait_time_from(governor::clock::DefaultClock::default().now());
            let seconds = wait.as_secs() + u64::from(wait.subsec_nanos() > 0);
            let mut response = Error::RateLimited(format!(
                "more than {} requests a minute from {client}; retry in {seconds} s",
                s.rate_limit_per_minute
            ))
            .into_response();
            response
                .headers_mut()
                .insert(http::header::RETRY_AFTER, seconds.into());
            metrics::counter!("broker_rate_limited_total").increment(1);
            response
        }
    }
}
