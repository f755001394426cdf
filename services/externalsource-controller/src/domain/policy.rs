//! Durations as the CRD writes them, the retry budget a source's request and hooks share,
//! the hook chain's policies, and the backoff between failed reconciliations.

use std::{future::Future, time::Duration};

use crate::crd::{HookSpec, RetryPolicy};

/// `1h30m`, `90s`, `1.5m`, `250ms`.
pub fn duration(text: &str) -> Option<Duration> {
    let mut total = 0f64;
    let mut rest = text;
    if rest.is_empty() {
        return None;
    }
    while !rest.is_empty() {
        let digits = rest
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .filter(|&i| i > 0)?;
        let number: f64 = rest[..digits].parse().ok()?;
        rest = &rest[digits..];
        let (seconds, unit) = [("ms", 0.001), ("s", 1.0), ("m", 60.0), ("h", 3600.0)]
            .into_iter()
            .find(|(u, _)| rest.starts_with(u))
            .map(|(u, s)| (s, u.len()))?;
        total += number * seconds;
        rest = &rest[unit..];
    }
    Duration::try_from_secs_f64(total).ok()
}

/// The shortest interval the controller honours.
pub const MIN_INTERVAL: Duration = Duration::from_secs(60);

/// A hook's failure as the chain sees it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum HookFailure {
    /// The whitelist refused it: never retried.
    #[error("hook {hook}: {reason}")]
    Denied { hook: String, reason: String },
    /// It ran and failed (exit status, timeout, no such program).
    #[error("hook {hook}: {reason}")]
    Failed { hook: String, reason: String },
}

/// Attempts left, shared by the request and every hook of one reconciliation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Budget {
    retries_left: u32,
}

impl Budget {
    pub fn new(max_retries: u32) -> Self {
        Self {
            retries_left: max_retries,
        }
    }

    /// Takes one retry; false when none is left.
    pub fn retry(&mut self) -> bool {
        let ok = self.retries_left > 0;
        self.retries_left = self.retries_left.saturating_sub(1);
        ok
    }
}

/// What the chain did with each hook, for metrics: (hook, outcome).
pub type Record = Vec<(String, &'static str)>;

/// Runs `hooks` in order, each one's output the next one's input: `fail` stops the chain on
/// the first failure, `retry` tries again while the budget allows, `ignore` passes the input
/// on. A denied hook stops the chain whatever its policy.
pub async fn run_chain<F, Fut>(
    hooks: &[HookSpec],
    mut data: Vec<u8>,
    budget: &mut Budget,
    record: &mut Record,
    mut run: F,
) -> Result<Vec<u8>, HookFailure>
where
    F: FnMut(&HookSpec, Vec<u8>) -> Fut,
    Fut: Future<Output = Result<Vec<u8>, HookFailure>>,
{
    for hook in hooks {
        loop {
            match run(hook, data.clone()).await {
                Ok(out) => {
                    record.push((hook.name.clone(), "success"));
                    data = out;
                    break;
                }
                Err(e @ HookFailure::Denied { .. }) => {
                    record.push((hook.name.clone(), "denied"));
                    return Err(e);
                }
                Err(e) => match hook.retry_policy {
                    RetryPolicy::Ignore => {
                        record.push((hook.name.clone(), "ignored"));
                        tracing::warn!(error = %e, "hook failed; its input goes on");
                        break;
                    }
                    RetryPolicy::Retry if budget.retry() => {
                        record.push((hook.name.clone(), "retried"));
                    }
                    _ => {
                        record.push((hook.name.clone(), "failed"));
                        return Err(e);
                    }
                },
            }
        }
    }
    Ok(data)
}

/// The wait after `failures` failed reconciliations in a row: 1 s doubling to 5 min, with
/// jitter (the seed's schedule).
pub fn backoff(failures: u32) -> Duration {
    use backon::BackoffBuilder as _;
    let mut delays = backon::ExponentialBuilder::default()
        .with_min_delay(Duration::from_secs(1))
        .with_max_delay(Duration::from_secs(300))
        .with_factor(2.0)
        .with_jitter()
        .without_max_times()
        .build();
    delays
        .nth(failures.saturating_sub(1) as usize)
        .unwrap_or(Duration::from_secs(300))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations() {
        let table = [
            ("1m", Some(60_000)),
            ("1h30m", Some(5_400_000)),
            ("1.5m", Some(90_000)),
            ("250ms", Some(250)),
            ("10s", Some(10_000)),
            ("", None),
            ("m", None),
            ("5", None),
            ("5d", None),
            ("-1m", None),
        ];
        for (text, ms) in table {
            assert_eq!(duration(text).map(|d| d.as_millis() as u64), ms, "{text:?}");
        }
    }

    fn hook(name: &str, policy: RetryPolicy) -> HookSpec {
        HookSpec {
            name: name.into(),
            command: "x".into(),
            args: vec![],
            timeout: "1s".into(),
            retry_policy: policy,
            env: vec![],
        }
    }

    /// Runs the chain where hook `name` fails its first `fails[name]` runs (or is denied).
    async fn chain(
        hooks: &[HookSpec],
        budget: u32,
        fails: &[(&str, u32)],
        denied: &str,
    ) -> (Result<Vec<u8>, HookFailure>, Record) {
        let mut counts = std::collections::HashMap::new();
        let mut budget = Budget::new(budget);
        let mut record = Record::new();
        let result = run_chain(
            hooks,
            b"in".to_vec(),
            &mut budget,
            &mut record,
            |h, data| {
                let n = counts.entry(h.name.clone()).or_insert(0u32);
                *n += 1;
                let failing = fails.iter().any(|(name, k)| *name == h.name && *n <= *k);
                let name = h.name.clone();
                let is_denied = name == denied;
                async move {
                    if is_denied {
                        Err(HookFailure::Denied {
                            hook: name,
                            reason: "no".into(),
                        })
                    } else if failing {
                        Err(HookFailure::Failed {
                            hook: name,
                            reason: "exit 1".into(),
                        })
                    } else {
                        Ok([data, format!("+{name}").into_bytes()].concat())
                    }
                }
            },
        )
        .await;
        (result, record)
    }

    #[tokio::test]
    async fn hooks_pipe_and_their_policies_hold() {
        use RetryPolicy::*;
        let (out, _) = chain(&[hook("a", Fail), hook("b", Fail)], 3, &[], "").await;
        assert_eq!(out.unwrap(), b"in+a+b");
        let (out, rec) = chain(&[hook("a", Ignore), hook("b", Fail)], 3, &[("a", 9)], "").await;
        assert_eq!(
            out.unwrap(),
            b"in+b",
            "an ignored failure passes its input on"
        );
        assert_eq!(rec, [("a".into(), "ignored"), ("b".into(), "success")]);
        let (out, rec) = chain(&[hook("a", Retry)], 3, &[("a", 2)], "").await;
        assert_eq!(out.unwrap(), b"in+a");
        assert_eq!(rec.iter().filter(|r| r.1 == "retried").count(), 2);
        // The budget is shared: two retries for a, then b has one left of three.
        let (out, _) = chain(
            &[hook("a", Retry), hook("b", Retry)],
            3,
            &[("a", 2), ("b", 2)],
            "",
        )
        .await;
        assert!(matches!(out, Err(HookFailure::Failed { hook, .. }) if hook == "b"));
        let (out, _) = chain(&[hook("a", Fail)], 3, &[("a", 1)], "").await;
        assert!(out.is_err(), "fail means one attempt");
        let (out, rec) = chain(&[hook("a", Ignore)], 3, &[], "a").await;
        assert!(
            matches!(out, Err(HookFailure::Denied { .. })),
            "denied even when ignored"
        );
        assert_eq!(rec, [("a".into(), "denied")]);
    }

    #[test]
    fn backoff_grows_to_five_minutes() {
        let first = backoff(1);
        assert!(
            first >= Duration::from_secs(1) && first < Duration::from_secs(3),
            "{first:?}"
        );
        let fifth = backoff(5);
        assert!(fifth >= Duration::from_secs(16), "{fifth:?}");
        assert!(backoff(40) <= Duration::from_secs(600));
    }
}
