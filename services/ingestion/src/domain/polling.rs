//! Koku's polling rules (`Orchestrator.get_polling_batch`, `Provider.polling_objects`,
//! `check_currently_processing`), as pure functions of the providers and the clock.

use chrono::{DateTime, Datelike as _, Months, NaiveDate, TimeDelta, Utc};
use uuid::Uuid;

/// The rules' settings, under Koku's names.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Rules {
    /// `POLLING_TIMER`: a provider polled this recently is not polled again.
    pub timer: TimeDelta,
    /// `POLLING_COUNT`: the eligible providers are spread over this many polls.
    pub count: u32,
    /// `PROCESSING_WAIT_TIMER`: how long a provider whose last poll produced no data yet is
    /// left alone.
    pub processing_wait: TimeDelta,
    /// `INITIAL_INGEST_NUM_MONTHS`: months read until the provider is set up.
    pub initial_months: u32,
    /// `INITIAL_INGEST_OVERRIDE`: always read the initial months.
    pub initial_override: bool,
}

impl Default for Rules {
    fn default() -> Self {
        Self {
            timer: TimeDelta::seconds(86_400),
            count: 21,
            processing_wait: TimeDelta::days(3),
            initial_months: 3,
            initial_override: false,
        }
    }
}

/// A provider the poll may pick: active, not paused, not OpenShift (the query's filter).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Candidate {
    pub uuid: Uuid,
    pub created: DateTime<Utc>,
    pub polling_timestamp: Option<DateTime<Utc>>,
    pub data_updated_timestamp: Option<DateTime<Utc>>,
    /// Its last run failed: it is not "processing", it is waiting for a retry.
    pub failed: bool,
}

/// What one poll does.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Batch {
    /// Every provider of the batch: its `polling_timestamp` becomes now.
    pub polled: Vec<Uuid>,
    /// The ones whose reports are checked (the batch less those still processing).
    pub checked: Vec<Uuid>,
}

/// The providers due (not polled within the timer), oldest poll first with never-polled ones
/// last (PostgreSQL's order for NULLs), limited to ceil(due / count) unless that is one or
/// less; each is checked unless it is still processing.
pub fn batch(candidates: &[Candidate], now: DateTime<Utc>, rules: &Rules) -> Batch {
    let mut due: Vec<&Candidate> = candidates
        .iter()
        .filter(|c| c.polling_timestamp.is_none_or(|p| p <= now - rules.timer))
        .collect();
    due.sort_by_key(|c| (c.polling_timestamp.is_none(), c.polling_timestamp, c.uuid));
    let limit = due.len().div_ceil(rules.count.max(1) as usize);
    if limit > 1 {
        due.truncate(limit);
    }
    Batch {
        polled: due.iter().map(|c| c.uuid).collect(),
        checked: due
            .iter()
            .filter(|c| !currently_processing(c, now, rules))
            .map(|c| c.uuid)
            .collect(),
    }
}

/// Koku's `check_currently_processing`: polled since its data last changed, and that change is
/// recent; or polled but never loaded, created between a day and the wait timer ago.
pub fn currently_processing(c: &Candidate, now: DateTime<Utc>, rules: &Rules) -> bool {
    let Some(polled) = c.polling_timestamp else {
        return false;
    };
    if c.failed {
        return false;
    }
    match c.data_updated_timestamp {
        Some(updated) => polled > updated && updated > now - rules.processing_wait,
        None => {
            let age = now - c.created;
            age >= TimeDelta::days(1) && age <= rules.processing_wait
        }
    }
}

/// The first days of the months to read, newest first: the initial count until the provider
/// is set up (or always, with the override), else the current and the previous month.
pub fn months(today: NaiveDate, setup_complete: bool, rules: &Rules) -> Vec<NaiveDate> {
    let count = if !setup_complete || rules.initial_override {
        rules.initial_months.max(1)
    } else {
        2
    };
    let first = today.with_day(1).expect("every month has a first day");
    (0..count)
        .filter_map(|back| first.checked_sub_months(Months::new(back)))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(s: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(s).unwrap().to_utc()
    }

    fn id(n: u128) -> Uuid {
        Uuid::from_u128(n)
    }

    fn candidate(n: u128, polled: Option<&str>) -> Candidate {
        Candidate {
            uuid: id(n),
            created: at("2026-01-01T00:00:00Z"),
            polling_timestamp: polled.map(at),
            data_updated_timestamp: polled.map(at),
            failed: false,
        }
    }

    #[test]
    fn recently_polled_providers_wait_for_the_timer() {
        let now = at("2026-12-02T12:00:00Z");
        let c = [
            candidate(1, Some("2026-12-02T00:00:00Z")),
            candidate(2, Some("2026-12-01T11:00:00Z")),
            candidate(3, None),
        ];
        let b = batch(&c, now, &Rules::default());
        assert_eq!(b.polled, vec![id(2), id(3)]);
    }

    #[test]
    fn the_batch_is_a_share_of_the_due_providers_oldest_first_never_polled_last() {
        let now = at("2026-12-02T12:00:00Z");
        let mut c: Vec<Candidate> = (0..40)
            .map(|n| candidate(n, Some(&format!("2026-11-{:02}T00:00:00Z", 1 + n % 28))))
            .collect();
        c.push(candidate(100, None));
        let rules = Rules {
            count: 21,
            ..Rules::default()
        };
        // 41 due over 21 polls: 2 per poll, the two oldest.
        let b = batch(&c, now, &rules);
        assert_eq!(b.polled.len(), 2);
        assert!(b.polled.iter().all(|u| [id(0), id(28)].contains(u)));
        // Few providers: all of them.
        let b = batch(&c[..5], now, &rules);
        assert_eq!(b.polled.len(), 5);
        let only_new = [
            candidate(7, None),
            candidate(8, Some("2026-10-01T00:00:00Z")),
        ];
        assert_eq!(batch(&only_new, now, &rules).polled, vec![id(8), id(7)]);
    }

    #[test]
    fn currently_processing_rules() {
        let now = at("2026-12-10T00:00:00Z");
        let rules = Rules::default();
        let case = |created: &str, polled: Option<&str>, updated: Option<&str>, failed: bool| {
            currently_processing(
                &Candidate {
                    uuid: id(1),
                    created: at(created),
                    polling_timestamp: polled.map(at),
                    data_updated_timestamp: updated.map(at),
                    failed,
                },
                now,
                &rules,
            )
        };
        let old = "2026-01-01T00:00:00Z";
        // Never polled: not processing.
        assert!(!case(old, None, None, false));
        // Polled after its last data, which is recent: processing.
        assert!(case(
            old,
            Some("2026-12-09T00:00:00Z"),
            Some("2026-12-08T00:00:00Z"),
            false
        ));
        // ...unless that run failed.
        assert!(!case(
            old,
            Some("2026-12-09T00:00:00Z"),
            Some("2026-12-08T00:00:00Z"),
            true
        ));
        // Data older than the wait timer: polled again.
        assert!(!case(
            old,
            Some("2026-12-09T00:00:00Z"),
            Some("2026-12-01T00:00:00Z"),
            false
        ));
        // Data newer than the last poll: done, polled again.
        assert!(!case(
            old,
            Some("2026-12-08T00:00:00Z"),
            Some("2026-12-09T00:00:00Z"),
            false
        ));
        // Polled, never loaded: under a day old it is retried, between a day and the timer
        // it waits, older than the timer it is retried.
        assert!(!case(
            "2026-12-09T12:00:00Z",
            Some("2026-12-09T13:00:00Z"),
            None,
            false
        ));
        assert!(case(
            "2026-12-08T00:00:00Z",
            Some("2026-12-09T00:00:00Z"),
            None,
            false
        ));
        assert!(!case(
            "2026-12-01T00:00:00Z",
            Some("2026-12-09T00:00:00Z"),
            None,
            false
        ));
    }

    #[test]
    fn processing_providers_are_polled_but_not_checked() {
        let now = at("2026-12-10T00:00:00Z");
        let mut busy = candidate(1, Some("2026-12-08T00:00:00Z"));
        busy.data_updated_timestamp = Some(at("2026-12-07T12:00:00Z"));
        let idle = candidate(2, Some("2026-12-08T00:00:00Z"));
        let b = batch(&[busy, idle], now, &Rules::default());
        assert_eq!(b.polled, vec![id(1), id(2)]);
        assert_eq!(b.checked, vec![id(2)]);
    }

    #[test]
    fn months_read_until_and_after_setup() {
        let d = |s: &str| NaiveDate::parse_from_str(s, "%Y-%m-%d").unwrap();
        let rules = Rules::default();
        assert_eq!(
            months(d("2026-01-15"), false, &rules),
            vec![d("2026-01-01"), d("2025-12-01"), d("2025-11-01")]
        );
        assert_eq!(
            months(d("2026-03-31"), true, &rules),
            vec![d("2026-03-01"), d("2026-02-01")]
        );
        let always = Rules {
            initial_override: true,
            initial_months: 4,
            ..rules
        };
        assert_eq!(months(d("2026-03-31"), true, &always).len(), 4);
    }
}
