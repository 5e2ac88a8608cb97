//! Where an instance should go: one pure function over a snapshot of every
//! account-region. Healthy regions with room come first, then operator
//! priority, then the most remaining room (spreading), then latency; a
//! region with a "not now" memory (builds failed there lately) comes last,
//! used only when nothing else has room. Every region left out is listed
//! with the reason, for the instance's timeline.

use std::cmp::Ordering;

use serde::{Deserialize, Serialize};

use crate::breaker::BreakerState;
use crate::model::PlacementHints;

/// How instances are placed. `Pooled` is OpenMultiStack's; `Naive` is
/// the strategy brokers commonly use (and the original OpenMultiStack did),
/// kept selectable so benchmarks can measure what the pooled one gains.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Policy {
    /// Health, quota ledger, "not now" memory and spreading.
    #[default]
    Pooled,
    /// Accounts in a fixed order; on any error, the next one; no quota
    /// knowledge and no health memory.
    Naive,
}

/// What placement knows of one account-region, for one instance's profile.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Candidate {
    /// Account id.
    pub account_id: String,
    /// Account name (what clients' hints name).
    pub account: String,
    /// Region name.
    pub region: String,
    /// Account enabled.
    pub enabled: bool,
    /// Account draining.
    pub drain: bool,
    /// Operator priority; higher first.
    pub priority: i32,
    /// Breaker state.
    pub health: BreakerState,
    /// Servers of this profile that still fit.
    pub headroom: i64,
    /// Why the profile cannot be used here, if it cannot.
    pub unresolvable: Option<String>,
    /// A "not now" memory that applies, with its reason.
    pub not_now: Option<String>,
    /// Recent latency, milliseconds.
    pub latency_ms: f64,
}

/// Why a candidate was not used.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case", tag = "reason", content = "detail")]
pub enum PassedOver {
    /// The client's hints exclude it.
    Hints,
    /// The account is disabled.
    Disabled,
    /// The account is draining.
    Draining,
    /// Its breaker is open.
    BreakerOpen,
    /// Its breaker is half-open: the region probes with its own calls, and
    /// a launch would only burn an attempt.
    Probing,
    /// No quota left for this profile.
    Full,
    /// The profile has no flavor or image here.
    Unresolvable(String),
    /// Recently failed in a way that makes it pointless now.
    NotNow(String),
    /// This request already failed there in a way that will repeat.
    Excluded,
}

impl std::fmt::Display for PassedOver {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            PassedOver::Hints => f.write_str("excluded by the request's placement hints"),
            PassedOver::Disabled => f.write_str("account disabled"),
            PassedOver::Draining => f.write_str("account draining"),
            PassedOver::BreakerOpen => f.write_str("circuit breaker open"),
            PassedOver::Probing => f.write_str("recovering: being probed"),
            PassedOver::Full => f.write_str("no quota left"),
            PassedOver::Unresolvable(why) => write!(f, "profile not available: {why}"),
            PassedOver::NotNow(why) => write!(f, "not now: {why}"),
            PassedOver::Excluded => f.write_str("already failed there for this request"),
        }
    }
}

/// The decision: candidates in order of preference, and the others. It
/// borrows the candidates: one decision per waiting instance over every
/// account-region must not copy them.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct Ranking<'a> {
    /// Usable candidates, best first.
    pub ranked: Vec<&'a Candidate>,
    /// Unusable candidates with why.
    pub passed_over: Vec<(&'a Candidate, PassedOver)>,
}

/// Regions named one by one in an explanation; the rest are counted, so a
/// pool of a thousand regions does not write a thousand reasons per event.
const EXPLAINED: usize = 8;

/// "account/region: reason; ...", the first few by name, then a count.
fn explain(named: &[(&Candidate, PassedOver)], total: usize) -> String {
    let mut text = named
        .iter()
        .take(EXPLAINED)
        .map(|(c, why)| format!("{}/{}: {why}", c.account, c.region))
        .collect::<Vec<_>>()
        .join("; ");
    if total > EXPLAINED {
        text.push_str(&format!("; and {} more", total - EXPLAINED));
    }
    text
}

impl PassedOver {
    /// A few words per kind, for summaries that count regions.
    fn kind(&self) -> &'static str {
        match self {
            PassedOver::Hints => "excluded by hints",
            PassedOver::Disabled => "disabled",
            PassedOver::Draining => "draining",
            PassedOver::BreakerOpen | PassedOver::Probing => "down",
            PassedOver::Full => "full",
            PassedOver::Unresolvable(_) => "cannot fit the profile",
            PassedOver::NotNow(_) => "failing builds lately",
            PassedOver::Excluded => "failed for this request",
        }
    }
}

impl Ranking<'_> {
    /// "account/region: reason; ..." for events, the first few by name.
    pub fn explain(&self) -> String {
        explain(&self.passed_over, self.passed_over.len())
    }

    /// "4 regions full, 2 down, 1 cannot fit the profile" ([`Tally`]).
    pub fn summary(&self) -> String {
        let mut tally = Tally::default();
        for (_, why) in &self.passed_over {
            tally.add(why);
        }
        tally.summary()
    }
}

/// Regions passed over, counted by kind of reason.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Tally(Vec<(&'static str, usize)>);

impl Tally {
    fn add(&mut self, why: &PassedOver) {
        match self.0.iter_mut().find(|(kind, _)| *kind == why.kind()) {
            Some((_, n)) => *n += 1,
            None => self.0.push((why.kind(), 1)),
        }
    }

    /// "4 regions full, 2 down, 1 cannot fit the profile": why nothing was
    /// usable, most first, in a line that stays the same while the picture
    /// does (the per-region detail is [`Decision::explain`]).
    pub fn summary(&self) -> String {
        let mut counts = self.0.clone();
        counts.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(b.0)));
        counts
            .iter()
            .enumerate()
            .map(|(i, (kind, n))| {
                let noun = match (i, *n) {
                    (0, 1) => " region",
                    (0, _) => " regions",
                    _ => "",
                };
                format!("{n}{noun} {kind}")
            })
            .collect::<Vec<_>>()
            .join(", ")
    }
}

fn hinted_out(hints: &PlacementHints, c: &Candidate) -> bool {
    (!hints.allow_providers.is_empty() && !hints.allow_providers.contains(&c.account))
        || hints.deny_providers.contains(&c.account)
        || (!hints.allow_regions.is_empty() && !hints.allow_regions.contains(&c.region))
        || hints.deny_regions.contains(&c.region)
}

/// Why `policy` cannot use `c` for this request, or `None` if it can. The
/// naive policy looks only at what the client, the operator and this
/// request's own failures rule out.
fn why_not(
    policy: Policy,
    c: &Candidate,
    hints: &PlacementHints,
    excluded: &[(String, String)],
) -> Option<PassedOver> {
    if hinted_out(hints, c) {
        Some(PassedOver::Hints)
    } else if !c.enabled {
        Some(PassedOver::Disabled)
    } else if c.drain {
        Some(PassedOver::Draining)
    } else if excluded
        .iter()
        .any(|(a, r)| *a == c.account_id && *r == c.region)
    {
        Some(PassedOver::Excluded)
    } else if let Some(why) = &c.unresolvable {
        Some(PassedOver::Unresolvable(why.clone()))
    } else if policy == Policy::Naive {
        None
    } else if c.health == BreakerState::Open {
        Some(PassedOver::BreakerOpen)
    } else if c.health == BreakerState::HalfOpen {
        Some(PassedOver::Probing)
    } else if c.headroom < 1 {
        match &c.not_now {
            Some(why) => Some(PassedOver::NotNow(why.clone())),
            None => Some(PassedOver::Full),
        }
    } else {
        None
    }
}

/// Whether this request failed on `c` a moment ago (a soft exclusion).
fn avoided_in(avoided: &[(String, String)], c: &Candidate) -> bool {
    avoided
        .iter()
        .any(|(a, r)| *a == c.account_id && *r == c.region)
}

/// Which of two usable candidates `policy` prefers (`Less` = `a`); the
/// request avoids the ones in `avoided` unless nothing else has room.
fn order(policy: Policy, avoided: &[(String, String)], a: &Candidate, b: &Candidate) -> Ordering {
    let by_name = || (&a.account, &a.region).cmp(&(&b.account, &b.region));
    match policy {
        Policy::Naive => b.priority.cmp(&a.priority).then_with(by_name),
        Policy::Pooled => {
            let last_resort =
                |c: &Candidate| u8::from(c.not_now.is_some()) + u8::from(avoided_in(avoided, c));
            let health = |c: &Candidate| u8::from(c.health != BreakerState::Closed);
            last_resort(a)
                .cmp(&last_resort(b))
                .then(health(a).cmp(&health(b)))
                .then(b.priority.cmp(&a.priority))
                .then(b.headroom.cmp(&a.headroom))
                .then(a.latency_ms.total_cmp(&b.latency_ms))
                .then_with(by_name)
        }
    }
}

/// Ranks `candidates` for one instance with `policy`. `excluded` lists
/// (account id, region) pairs this request must not use again; `avoided`
/// those it failed on lately, used only when nothing else has room.
pub fn rank_with<'a>(
    policy: Policy,
    candidates: &'a [Candidate],
    hints: &PlacementHints,
    excluded: &[(String, String)],
    avoided: &[(String, String)],
) -> Ranking<'a> {
    let mut ranking = Ranking::default();
    for c in candidates {
        match why_not(policy, c, hints, excluded) {
            Some(why) => ranking.passed_over.push((c, why)),
            None => ranking.ranked.push(c),
        }
    }
    ranking.ranked.sort_by(|a, b| order(policy, avoided, a, b));
    ranking
}

/// [`rank_with`] the pooled policy.
pub fn rank<'a>(
    candidates: &'a [Candidate],
    hints: &PlacementHints,
    excluded: &[(String, String)],
) -> Ranking<'a> {
    rank_with(Policy::Pooled, candidates, hints, excluded, &[])
}

/// One placement decision: what [`rank_with`] would put first, found in
/// one pass without sorting, and enough of the rest to explain it.
#[derive(Debug, Clone, PartialEq)]
pub struct Decision<'a> {
    /// The chosen candidate, if any can be used.
    pub best: Option<&'a Candidate>,
    /// The first candidates passed over, with why.
    named: Vec<(&'a Candidate, PassedOver)>,
    /// How many were passed over in all.
    passed_over: usize,
    /// Them all, counted by kind.
    tally: Tally,
}

impl Decision<'_> {
    /// The same explanation as [`Ranking::explain`].
    pub fn explain(&self) -> String {
        explain(&self.named, self.passed_over)
    }

    /// The same summary as [`Ranking::summary`].
    pub fn summary(&self) -> String {
        self.tally.summary()
    }
}

/// The dispatcher's fast path: the first of [`rank_with`]'s order, in
/// linear time, copying nothing but the few reasons it names.
pub fn choose<'a>(
    policy: Policy,
    candidates: &'a [Candidate],
    hints: &PlacementHints,
    excluded: &[(String, String)],
    avoided: &[(String, String)],
) -> Decision<'a> {
    let mut decision = Decision {
        best: None,
        named: Vec::new(),
        passed_over: 0,
        tally: Tally::default(),
    };
    for c in candidates {
        match why_not(policy, c, hints, excluded) {
            Some(why) => {
                decision.passed_over += 1;
                decision.tally.add(&why);
                if decision.named.len() < EXPLAINED {
                    decision.named.push((c, why));
                }
            }
            None => {
                if decision
                    .best
                    .is_none_or(|best| order(policy, avoided, c, best) == Ordering::Less)
                {
                    decision.best = Some(c);
                }
            }
        }
    }
    decision
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_summary_counts_regions_by_why_most_first() {
        let c = |region: &str| Candidate {
            account_id: "a".into(),
            account: "acme".into(),
            region: region.into(),
            enabled: true,
            drain: false,
            priority: 0,
            health: BreakerState::Closed,
            headroom: 0,
            unresolvable: None,
            not_now: None,
            latency_ms: 1.0,
        };
        let list: Vec<Candidate> = (0..7).map(|i| c(&format!("r{i}"))).collect();
        let ranking = Ranking {
            ranked: vec![],
            passed_over: vec![
                (&list[0], PassedOver::Full),
                (&list[1], PassedOver::BreakerOpen),
                (&list[2], PassedOver::Full),
                (&list[3], PassedOver::Unresolvable("no image".into())),
                (&list[4], PassedOver::Full),
                (&list[5], PassedOver::BreakerOpen),
                (&list[6], PassedOver::Full),
            ],
        };
        assert_eq!(
            ranking.summary(),
            "4 regions full, 2 down, 1 cannot fit the profile"
        );
    }
    use proptest::prelude::*;

    fn candidate(account: &str, region: &str) -> Candidate {
        Candidate {
            account_id: format!("id-{account}"),
            account: account.into(),
            region: region.into(),
            enabled: true,
            drain: false,
            priority: 0,
            health: BreakerState::Closed,
            headroom: 10,
            unresolvable: None,
            not_now: None,
            latency_ms: 50.0,
        }
    }

    fn arb_candidate() -> impl Strategy<Value = Candidate> {
        (
            0..4usize,
            0..3usize,
            any::<bool>(),
            any::<bool>(),
            -2..3i32,
            0..3u8,
            -1..25i64,
            any::<bool>(),
            any::<bool>(),
            0.0..500.0f64,
        )
            .prop_map(
                |(a, r, enabled, drain, priority, health, headroom, unres, notnow, latency)| {
                    Candidate {
                        account_id: format!("id-{a}"),
                        account: format!("acct-{a}"),
                        region: format!("region-{r}"),
                        enabled: enabled || a % 2 == 0,
                        drain: drain && a == 3,
                        priority,
                        health: [
                            BreakerState::Closed,
                            BreakerState::HalfOpen,
                            BreakerState::Open,
                        ][health as usize],
                        headroom,
                        unresolvable: unres.then(|| "no image".to_owned()).filter(|_| r == 2),
                        not_now: notnow
                            .then(|| "flavor failed".to_owned())
                            .filter(|_| r == 1 && a == 1),
                        latency_ms: latency,
                    }
                },
            )
    }

    fn arb_hints() -> impl Strategy<Value = PlacementHints> {
        (
            proptest::collection::vec(0..4usize, 0..2),
            proptest::collection::vec(0..4usize, 0..2),
            proptest::collection::vec(0..3usize, 0..2),
            proptest::collection::vec(0..3usize, 0..2),
        )
            .prop_map(|(ap, dp, ar, dr)| PlacementHints {
                allow_providers: ap.into_iter().map(|a| format!("acct-{a}")).collect(),
                deny_providers: dp.into_iter().map(|a| format!("acct-{a}")).collect(),
                allow_regions: ar.into_iter().map(|r| format!("region-{r}")).collect(),
                deny_regions: dr.into_iter().map(|r| format!("region-{r}")).collect(),
            })
    }

    proptest! {
        #[test]
        fn never_ranks_unhealthy_or_full_above_healthy_with_room(
            candidates in proptest::collection::vec(arb_candidate(), 0..24),
            hints in arb_hints(),
        ) {
            let ranking = rank(&candidates, &hints, &[]);
            // Nothing open or full is ranked at all.
            for c in &ranking.ranked {
                prop_assert!(c.health != BreakerState::Open);
                prop_assert!(c.headroom >= 1);
                prop_assert!(c.enabled && !c.drain);
                prop_assert!(c.unresolvable.is_none());
                prop_assert!(!hinted_out(&hints, c));
            }
            // A region with a "not now" memory comes after every other.
            let first_not_now = ranking.ranked.iter().position(|c| c.not_now.is_some());
            if let Some(i) = first_not_now {
                prop_assert!(ranking.ranked[i..].iter().all(|c| c.not_now.is_some()));
            }
            // Within each of those tiers, closed ones come before half-open ones.
            for tier in [false, true] {
                let members: Vec<&Candidate> =
                    ranking.ranked.iter().copied().filter(|c| c.not_now.is_some() == tier).collect();
                if let Some(i) = members.iter().position(|c| c.health == BreakerState::HalfOpen) {
                    prop_assert!(members[i..].iter().all(|c| c.health == BreakerState::HalfOpen));
                }
            }
            // Everything is either ranked or explained.
            prop_assert_eq!(ranking.ranked.len() + ranking.passed_over.len(), candidates.len());
        }

        #[test]
        fn the_fast_choice_is_the_first_of_the_ranking(
            candidates in proptest::collection::vec(arb_candidate(), 0..24),
            hints in arb_hints(),
            naive in any::<bool>(),
        ) {
            let policy = if naive { Policy::Naive } else { Policy::Pooled };
            let excluded = [("id-1".to_owned(), "region-0".to_owned())];
            let avoided = [("id-2".to_owned(), "region-1".to_owned())];
            let ranking = rank_with(policy, &candidates, &hints, &excluded, &avoided);
            let decision = choose(policy, &candidates, &hints, &excluded, &avoided);
            prop_assert_eq!(decision.best, ranking.ranked.first().copied());
            prop_assert_eq!(decision.explain(), ranking.explain());
            prop_assert_eq!(decision.summary(), ranking.summary());
        }

        #[test]
        fn equal_priority_and_health_spread_by_remaining_quota(
            candidates in proptest::collection::vec(arb_candidate(), 0..24),
        ) {
            let ranking = rank(&candidates, &PlacementHints::default(), &[]);
            for pair in ranking.ranked.windows(2) {
                let same_tier = pair[0].health == pair[1].health
                    && pair[0].not_now.is_some() == pair[1].not_now.is_some();
                if same_tier && pair[0].priority == pair[1].priority {
                    prop_assert!(pair[0].headroom >= pair[1].headroom);
                }
                if same_tier {
                    prop_assert!(pair[0].priority >= pair[1].priority);
                }
            }
        }
    }

    #[test]
    fn explains_every_candidate_passed_over() {
        let mut open = candidate("a", "r1");
        open.health = BreakerState::Open;
        let mut full = candidate("b", "r1");
        full.headroom = 0;
        let mut off = candidate("c", "r1");
        off.enabled = false;
        let ok = candidate("d", "r1");
        let pool = [open, full, off, ok];
        let ranking = rank(&pool, &PlacementHints::default(), &[]);
        assert_eq!(ranking.ranked.len(), 1);
        assert_eq!(
            ranking.explain(),
            "a/r1: circuit breaker open; b/r1: no quota left; c/r1: account disabled"
        );
    }

    #[test]
    fn excluded_pairs_and_hints_are_respected() {
        let candidates = [
            candidate("a", "r1"),
            candidate("a", "r2"),
            candidate("b", "r1"),
        ];
        let hints = PlacementHints {
            deny_regions: vec!["r2".into()],
            ..PlacementHints::default()
        };
        let ranking = rank(&candidates, &hints, &[("id-a".into(), "r1".into())]);
        assert_eq!(ranking.ranked.len(), 1);
        assert_eq!(ranking.ranked[0].account, "b");
    }

    #[test]
    fn priority_then_room_then_latency() {
        let mut high = candidate("high", "r");
        high.priority = 5;
        high.headroom = 1;
        let mut roomy = candidate("roomy", "r");
        roomy.headroom = 20;
        let mut fast = candidate("fast", "r");
        fast.latency_ms = 5.0;
        let slow = candidate("slow", "r");
        let pool = [slow, fast, roomy, high];
        let ranking = rank(&pool, &PlacementHints::default(), &[]);
        let order: Vec<&str> = ranking.ranked.iter().map(|c| c.account.as_str()).collect();
        assert_eq!(order, vec!["high", "roomy", "fast", "slow"]);
    }

    #[test]
    fn a_region_that_failed_builds_lately_is_the_last_resort() {
        let mut failing = candidate("a", "r1");
        failing.not_now = Some("flavor failed to build recently".into());
        failing.headroom = 20;
        let mut tight = candidate("b", "r1");
        tight.headroom = 1;
        let pool = [failing.clone(), tight.clone()];
        let ranking = rank(&pool, &PlacementHints::default(), &[]);
        let order: Vec<&str> = ranking.ranked.iter().map(|c| c.account.as_str()).collect();
        assert_eq!(
            order,
            vec!["b", "a"],
            "room elsewhere first, however little"
        );
        tight.headroom = 0;
        let pool = [failing, tight];
        let ranking = rank(&pool, &PlacementHints::default(), &[]);
        assert_eq!(
            ranking.ranked[0].account, "a",
            "used when nothing else has room"
        );
    }

    #[test]
    fn a_region_this_request_failed_on_lately_is_retried_only_without_alternatives() {
        let failed = candidate("a", "r1");
        let mut other = candidate("b", "r1");
        other.headroom = 1;
        let avoided = [("id-a".to_owned(), "r1".to_owned())];
        let pool = [failed, other];
        let hints = PlacementHints::default();
        let first = choose(Policy::Pooled, &pool, &hints, &[], &avoided)
            .best
            .unwrap();
        assert_eq!(first.account, "b");
        let mut pool = pool;
        pool[1].headroom = 0;
        let first = choose(Policy::Pooled, &pool, &hints, &[], &avoided)
            .best
            .unwrap();
        assert_eq!(first.account, "a", "tried again when nothing else has room");
    }

    #[test]
    fn the_naive_policy_ignores_health_and_quota_in_a_fixed_order() {
        let mut broken = candidate("a", "r1");
        broken.health = BreakerState::Open;
        broken.headroom = 0;
        broken.not_now = Some("builds fail".into());
        let roomy = candidate("b", "r1");
        let tried = candidate("a", "r2");
        let pool = [roomy, tried, broken];
        let ranking = rank_with(
            Policy::Naive,
            &pool,
            &PlacementHints::default(),
            &[("id-a".into(), "r2".into())],
            &[],
        );
        let order: Vec<&str> = ranking.ranked.iter().map(|c| c.account.as_str()).collect();
        assert_eq!(order, vec!["a", "b"], "fixed order, the broken one first");
        assert_eq!(ranking.passed_over[0].1, PassedOver::Excluded);
    }
}
