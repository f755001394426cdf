//! The broker's rules with no I/O: specs and their validation, the lifecycle and the answers
//! to repeated requests, drift, prices, the callback document.

pub mod callback;
pub mod catalogue;
pub mod cost;
pub mod drift;
pub mod phase;
pub mod spec;

/// A new deployment id: `deploy-` and 32 hex digits, as the KIDP broker makes them.
pub fn new_deployment_id() -> String {
    format!("deploy-{}", uuid::Uuid::new_v4().simple())
}

/// Whether `id` has the shape of a deployment id.
pub fn is_deployment_id(id: &str) -> bool {
    id.strip_prefix("deploy-").is_some_and(|hex| {
        hex.len() == 32
            && hex
                .bytes()
                .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn deployment_ids() {
        let id = new_deployment_id();
        assert!(is_deployment_id(&id), "{id}");
        assert_ne!(id, new_deployment_id());
        assert!(is_deployment_id("deploy-fc8fc917314e2b8b698427458cd35342"));
        for bad in [
            "deploy-abc123",
            "fc8fc917314e2b8b698427458cd35342",
            "deploy-FC8FC917314E2B8B698427458CD35342",
            "deploy-fc8fc917314e2b8b698427458cd3534g",
        ] {
            assert!(!is_deployment_id(bad), "{bad}");
        }
    }
}
