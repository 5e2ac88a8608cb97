//! The provider calls a region actor makes, each in its own task so the
//! actor's mailbox never waits on a provider. Every call first takes its
//! turn from the region's pacer.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use ractor::ActorRef;
use tokio::time::Instant;

use crate::ledger::Ticket;
use crate::messages::{LaunchOrder, RegionMsg};
use crate::openstack::{
    AbsoluteLimits, Class, ComputeClient, CreateServer, Flavor, Image, ImageClient, Networks,
    ProviderError, Server, ServerFilter, Session,
};
use crate::pacer::{CallKind, Pacer};

/// Tells the pacer about a 429 at once, before the actor hears of it, so
/// that calls of other tasks already waiting for a turn hold back too.
fn heed<T>(pacer: &Pacer, result: Result<T, ProviderError>) -> Result<T, ProviderError> {
    if let Err(error) = &result
        && error.class == crate::openstack::Class::RateLimited
    {
        pacer.rate_limited(error.retry_after);
    }
    result
}

/// What a create task reports.
#[derive(Debug)]
pub(crate) struct CreateDone {
    pub order: LaunchOrder,
    pub ticket: Ticket,
    pub flavor_id: String,
    pub keypair: Option<String>,
    /// Whether the create call was sent (false: held back before it).
    pub sent: bool,
    pub result: Result<String, ProviderError>,
    pub elapsed: Duration,
    pub times: CreateTimes,
}

/// How long the provider took to answer a create's calls.
#[derive(Debug, Default, Clone, Copy)]
pub(crate) struct CreateTimes {
    pub import: Option<Duration>,
    pub create: Duration,
}

impl CreateTimes {
    /// For the timeline: the provider's share and the rest (waiting for
    /// the call budget), of `elapsed` in all.
    pub fn describe(&self, elapsed: Duration) -> String {
        let provider = self.import.unwrap_or_default() + self.create;
        let import = self
            .import
            .map(|i| format!(" and the key pair import in {:.2} s", i.as_secs_f64()))
            .unwrap_or_default();
        format!(
            "the provider answered the create in {:.2} s{import}; {:.2} s waiting for the call budget",
            self.create.as_secs_f64(),
            elapsed.saturating_sub(provider).as_secs_f64(),
        )
    }
}

/// What a refresh brings back.
#[derive(Debug)]
pub(crate) struct Refreshed {
    pub clients: Option<(ComputeClient, ImageClient)>,
    pub result: Result<Discovery, ProviderError>,
    pub elapsed: Duration,
}

/// Limits of a region, and its flavors and images on a full refresh.
#[derive(Debug)]
pub(crate) struct Discovery {
    pub catalog: Option<(Vec<Flavor>, Vec<Image>)>,
    pub limits: AbsoluteLimits,
    pub asked_at: Instant,
}

/// Everything a create needs besides the order.
pub(crate) struct CreateJob {
    pub compute: ComputeClient,
    pub pacer: Pacer,
    /// Whether the region's breaker is closed: checked after each wait
    /// for the pacer, so a create queued before the region went down is
    /// not sent into it.
    pub calls_open: Arc<AtomicBool>,
    pub order: LaunchOrder,
    pub ticket: Ticket,
    pub flavor_id: String,
    pub image_id: String,
    /// Every tag of the server ([`crate::ownership::Owner::server_tags`]).
    pub tags: Vec<String>,
    pub networks: Vec<String>,
}

fn held_back() -> ProviderError {
    ProviderError::local(Class::Transport, "held back: the region is down")
}

/// Servers per page of a region's listings. Nova asks Neutron for the
/// ports of every server of a page in one GET; past about 150 server ids
/// that URL is longer than Neutron accepts, and Nova answers 500. A
/// periodic task of Nova that touches many deleted servers at once put
/// that many into a `changes-since` window on the conformance cloud.
pub(crate) const LISTING_PAGE: u32 = 100;

/// Imports the key (if any) and creates the server; reports to `region`.
pub(crate) fn spawn_create(job: CreateJob, region: ActorRef<RegionMsg>) {
    tokio::spawn(async move {
        let started = Instant::now();
        let CreateJob {
            compute,
            pacer,
            calls_open,
            order,
            ticket,
            flavor_id,
            image_id,
            tags,
            networks,
        } = job;
        let attempt = order
            .instance
            .attempt
            .clone()
            .expect("a launch order carries its attempt");
        let mut keypair = None;
        let mut sent = false;
        let mut times = CreateTimes::default();
        let result = async {
            // The dispatcher named the key pair when it wrote the attempt.
            if let (Some(public_key), Some(name)) = (&order.request.public_key, &attempt.keypair) {
                let name = name.clone();
                pacer.acquire(CallKind::Import).await;
                if !calls_open.load(Ordering::Relaxed) {
                    return Err(held_back());
                }
                let import = Instant::now();
                let imported = compute.import_keypair(&name, public_key).await;
                times.import = Some(import.elapsed());
                match heed(&pacer, imported) {
                    Ok(_) => {}
                    // Imported by an earlier run of this same attempt.
                    Err(e) if e.status == Some(409) => {}
                    Err(e) => return Err(e),
                }
                keypair = Some(name);
            }
            let mut metadata: BTreeMap<String, String> = order.request.metadata.clone();
            metadata.insert("oms-attempt".into(), attempt.id.clone());
            metadata.insert("oms-instance".into(), order.instance.id.clone());
            let request = CreateServer {
                name: format!(
                    "oms-{}-{}",
                    &attempt.id[attempt.id.len().saturating_sub(8)..],
                    order.instance.name
                ),
                flavor_ref: flavor_id.clone(),
                image_ref: image_id,
                key_name: keypair.clone(),
                user_data: order.request.user_data.clone(),
                metadata,
                networks: if networks.is_empty() {
                    Networks::Auto
                } else {
                    Networks::Uuids(networks)
                },
                tags,
            };
            pacer.acquire(CallKind::Mutating).await;
            if !calls_open.load(Ordering::Relaxed) {
                return Err(held_back());
            }
            sent = true;
            let create = Instant::now();
            let created = compute.create_server(&request).await;
            times.create = create.elapsed();
            let id = heed(&pacer, created)?;
            if !compute.tags_at_create() {
                for tag in &request.tags {
                    pacer.acquire(CallKind::Mutating).await;
                    heed(&pacer, compute.add_tag(&id, tag).await)?;
                }
            }
            Ok(id)
        }
        .await;
        let done = CreateDone {
            order,
            ticket,
            flavor_id,
            keypair,
            sent,
            result,
            elapsed: started.elapsed(),
            times,
        };
        let _ = region.send_message(RegionMsg::CreateDone(Box::new(done)));
    });
}

/// Lists the servers a poll plans for ([`crate::region::PollPlan`]).
pub(crate) fn spawn_poll(
    compute: ComputeClient,
    pacer: Pacer,
    plan: crate::region::PollPlan,
    region: ActorRef<RegionMsg>,
) {
    tokio::spawn(async move {
        pacer.acquire(CallKind::Read).await;
        let asked = PollAsked {
            at: Instant::now(),
            wall: chrono::Utc::now(),
            full: plan.is_full(),
        };
        let result = heed(
            &pacer,
            compute
                .list_servers_dated(&ServerFilter {
                    tags: plan.tags,
                    changes_since: plan.changes_since,
                    limit: Some(LISTING_PAGE),
                    ..ServerFilter::default()
                })
                .await,
        );
        let _ = region.send_message(RegionMsg::PollDone(result, asked));
    });
}

/// When a poll was asked, and whether it lists every server of ours.
#[derive(Debug, Clone, Copy)]
pub(crate) struct PollAsked {
    /// For the latency average.
    pub at: Instant,
    /// For the next poll's `changes-since`.
    pub wall: chrono::DateTime<chrono::Utc>,
    /// Not a `changes-since` listing.
    pub full: bool,
}

/// Deletes a server (a 404 means it is already gone) and then its key pair.
pub(crate) fn spawn_delete(
    compute: ComputeClient,
    pacer: Pacer,
    server_id: String,
    region: ActorRef<RegionMsg>,
) {
    tokio::spawn(async move {
        pacer.acquire(CallKind::Mutating).await;
        let result = match heed(&pacer, compute.delete_server(&server_id).await) {
            Err(e) if e.is_not_found() => Ok(()),
            other => other,
        };
        let _ = region.send_message(RegionMsg::DeleteDone { server_id, result });
    });
}

/// Asks for one server (a 404 is `None`); `reply` says which question
/// it answers (a building server, or whether a deleted one is gone).
pub(crate) fn spawn_show(
    compute: ComputeClient,
    pacer: Pacer,
    server_id: String,
    region: ActorRef<RegionMsg>,
    reply: fn(String, Result<Option<Server>, ProviderError>) -> RegionMsg,
) {
    tokio::spawn(async move {
        pacer.acquire(CallKind::Read).await;
        let result = match heed(&pacer, compute.get_server(&server_id).await) {
            Ok(server) => Ok(Some(server)),
            Err(e) if e.is_not_found() => Ok(None),
            Err(e) => Err(e),
        };
        let _ = region.send_message(reply(server_id, result));
    });
}

/// Deletes a key pair, best effort (leak collection catches the rest).
pub(crate) fn spawn_delete_keypair(compute: ComputeClient, pacer: Pacer, name: String) {
    tokio::spawn(async move {
        pacer.acquire(CallKind::Import).await;
        if let Err(error) = heed(&pacer, compute.delete_keypair(&name).await)
            && !error.is_not_found()
        {
            tracing::warn!(keypair = %name, %error, "key pair delete failed");
        }
    });
}

/// Connects (first time) and reads limits, and flavors and images when
/// `full`.
pub(crate) fn spawn_refresh(
    session: Arc<Session>,
    region_name: String,
    clients: Option<(ComputeClient, ImageClient)>,
    pacer: Pacer,
    full: bool,
    region: ActorRef<RegionMsg>,
) {
    tokio::spawn(async move {
        let started = Instant::now();
        let mut connected = clients;
        let result = async {
            let (compute, images) = match &connected {
                Some(clients) => clients.clone(),
                None => {
                    pacer.acquire(CallKind::Read).await;
                    let compute = ComputeClient::connect(session.clone(), &region_name).await?;
                    let images = ImageClient::connect(session.clone(), &region_name).await?;
                    connected = Some((compute.clone(), images.clone()));
                    (compute, images)
                }
            };
            pacer.acquire(CallKind::Read).await;
            let asked_at = Instant::now();
            let limits = heed(&pacer, compute.limits().await)?;
            let catalog = if full {
                pacer.acquire(CallKind::Read).await;
                let flavors = heed(&pacer, compute.flavors().await)?;
                pacer.acquire(CallKind::Read).await;
                let image_list = heed(&pacer, images.active_images(None).await)?;
                Some((flavors, image_list))
            } else {
                None
            };
            Ok(Discovery {
                catalog,
                limits,
                asked_at,
            })
        }
        .await;
        let refreshed = Refreshed {
            clients: connected,
            result,
            elapsed: started.elapsed(),
        };
        let _ = region.send_message(RegionMsg::Refreshed(Box::new(refreshed)));
    });
}

/// Lists the servers carrying all of `owner_tags` and every key pair,
/// for leak detection.
pub(crate) fn spawn_leak_scan(
    compute: ComputeClient,
    pacer: Pacer,
    owner_tags: Vec<String>,
    region: ActorRef<RegionMsg>,
) {
    tokio::spawn(async move {
        let mut asked = Instant::now();
        let result = async {
            pacer.acquire(CallKind::Read).await;
            asked = Instant::now();
            let servers = heed(
                &pacer,
                compute
                    .list_servers(&ServerFilter {
                        tags: owner_tags,
                        limit: Some(LISTING_PAGE),
                        ..ServerFilter::default()
                    })
                    .await,
            )?;
            pacer.acquire(CallKind::Read).await;
            let keypairs = heed(&pacer, compute.list_keypairs().await)?;
            Ok((servers, keypairs.into_iter().map(|k| k.name).collect()))
        }
        .await;
        let _ = region.send_message(RegionMsg::LeakScanned(result, asked));
    });
}
