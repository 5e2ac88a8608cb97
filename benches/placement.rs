//! Placement decisions per second over 1,000 account-regions: the
//! dispatcher's decision (`choose`: the best candidate and the start of its
//! explanation, in one pass) and the full ordered ranking (`rank_with`, for
//! operators' views), with each policy. Criterion reports the throughput
//! in decisions (elements) per second.
//!
//! `cargo bench --bench placement`

use std::hint::black_box;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use oms_actors::breaker::BreakerState;
use oms_actors::model::PlacementHints;
use oms_actors::placement::{Candidate, Policy, choose, rank_with};

/// A pool like a busy day's: most regions healthy with varied room, some
/// full, some with an open breaker, a few with failed builds or disabled.
fn pool(regions: usize) -> Vec<Candidate> {
    (0..regions)
        .map(|i| Candidate {
            account_id: format!("account-{:04}", i / 4),
            account: format!("provider-{:04}", i / 4),
            region: format!("region-{}", i % 4),
            enabled: i % 97 != 0,
            drain: i % 89 == 0,
            priority: (i % 3) as i32,
            health: match i % 20 {
                0 => BreakerState::Open,
                1 => BreakerState::HalfOpen,
                _ => BreakerState::Closed,
            },
            headroom: if i % 5 == 0 { 0 } else { (i * 7 % 40) as i64 },
            unresolvable: (i % 50 == 3).then(|| "no image cirros".to_owned()),
            not_now: (i % 30 == 7).then(|| "flavor failed to build recently".to_owned()),
            latency_ms: (i * 13 % 300) as f64,
        })
        .collect()
}

fn placement(c: &mut Criterion) {
    let candidates = pool(1_000);
    let excluded = vec![("account-0010".to_owned(), "region-2".to_owned())];
    let hints = PlacementHints {
        deny_providers: vec!["provider-0042".into()],
        ..PlacementHints::default()
    };
    let mut group = c.benchmark_group("placement over 1000 account-regions");
    group.throughput(Throughput::Elements(1));
    for (name, policy) in [("pooled", Policy::Pooled), ("naive", Policy::Naive)] {
        group.bench_function(format!("choose, {name}"), |b| {
            b.iter(|| {
                let decision = choose(policy, black_box(&candidates), &hints, &excluded, &[]);
                black_box((decision.best.map(|c| c.headroom), decision.explain()))
            })
        });
        group.bench_function(format!("full ranking, {name}"), |b| {
            b.iter(|| {
                let ranking = rank_with(policy, black_box(&candidates), &hints, &excluded, &[]);
                black_box(ranking.ranked.first().map(|c| c.headroom))
            })
        });
    }
    group.finish();
}

criterion_group!(benches, placement);
criterion_main!(benches);
