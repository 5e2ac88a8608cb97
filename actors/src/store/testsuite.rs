//! The behaviour every store must have, as a suite any backend runs:
//! `testsuite::run(&store)` (the `testsuite` feature exposes it to other
//! crates; the sled and memory stores run it in their own tests).

use std::collections::BTreeMap;

use chrono::Utc;
use secrecy::{ExposeSecret, SecretString};

use crate::model::{
    Account, AccountAuth, ApiToken, Attempt, Event, Instance, InstanceState, LaunchRequest,
    PlacementHints, Profile, RegionLimits, Role, new_id,
};
use crate::openstack::{Domain, IdentityVersion, Interface, Named};

use super::{Inserted, InstanceFilter, Store};

/// An account named `name` with a password (`s3cret-password`).
pub fn account(name: &str) -> Account {
    Account {
        id: new_id(),
        name: name.into(),
        auth_url: "http://127.0.0.1:5000/v3".parse().unwrap(),
        identity_version: IdentityVersion::V3,
        interface: Interface::Public,
        auth: AccountAuth::Password {
            user: Named::Name {
                name: "demo".into(),
                domain: Domain::Name("Default".into()),
            },
            project: Named::Id("p1".into()),
        },
        secret: SecretString::from("s3cret-password"),
        regions: vec![],
        networks: vec![],
        enabled: true,
        drain: false,
        priority: 0,
        limits: RegionLimits::default(),
        pins: BTreeMap::new(),
        created_at: Utc::now(),
    }
}

/// A request of `count` instances for `client`, with idempotency `key`.
pub fn request(client: &str, key: Option<&str>, count: u32) -> (LaunchRequest, Vec<Instance>) {
    let now = Utc::now();
    let request = LaunchRequest {
        id: new_id(),
        client: client.into(),
        idempotency_key: key.map(str::to_owned),
        body_digest: "d".into(),
        profile: "small".into(),
        count,
        name_prefix: "vm".into(),
        user_data: Some(b"#cloud-config".to_vec()),
        metadata: BTreeMap::new(),
        public_key: None,
        hints: PlacementHints::default(),
        expires_in_secs: None,
        deadline: now + chrono::Duration::minutes(10),
        max_attempts: 5,
        created_at: now,
        replace_lost: false,
        tags: Vec::new(),
    };
    let instances = (0..count)
        .map(|index| Instance::pending(&request, index, format!("vm-{index}")))
        .collect();
    (request, instances)
}

fn accounts_round_trip_with_secrets(store: &dyn Store) {
    let a = account("alpha");
    store.put_account(&a).unwrap();
    let read = store.get_account(&a.id).unwrap().unwrap();
    assert_eq!(read.name, "alpha");
    assert_eq!(read.secret.expose_secret(), "s3cret-password");
    assert_eq!(store.list_accounts().unwrap().len(), 1);
    assert_eq!(
        store.account_names().unwrap(),
        vec![(a.id.clone(), "alpha".to_owned())]
    );
    // Names follow renames and deletes (a store may keep them).
    let mut renamed = a.clone();
    renamed.name = "alpha-2".into();
    store.put_account(&renamed).unwrap();
    assert_eq!(
        store.account_names().unwrap(),
        vec![(a.id.clone(), "alpha-2".to_owned())]
    );
    assert!(store.delete_account(&a.id).unwrap());
    assert!(store.account_names().unwrap().is_empty());
    assert!(!store.delete_account(&a.id).unwrap());
    assert!(store.get_account(&a.id).unwrap().is_none());
}

fn profiles_round_trip(store: &dyn Store) {
    let profile = Profile {
        name: "small".into(),
        min_vcpus: 1,
        min_ram_mb: 1024,
        min_disk_gb: 10,
        image: "debian-12".into(),
        boot_timeout_secs: 600,
    };
    store.put_profile(&profile).unwrap();
    assert_eq!(store.get_profile("small").unwrap(), Some(profile));
    assert_eq!(store.list_profiles().unwrap().len(), 1);
    assert!(store.delete_profile("small").unwrap());
    assert!(store.get_profile("small").unwrap().is_none());
}

fn keypairs_are_per_client(store: &dyn Store) {
    let key = |client: &str, name: &str| crate::model::KeyPair {
        client: client.into(),
        name: name.into(),
        public_key: format!("ssh-ed25519 AAAA {client}-{name}"),
        created_at: Utc::now(),
    };
    // A client whose name is another's prefix shares none of its keys.
    for (client, name) in [("ci", "k1"), ("ci", "k2"), ("ci-2", "k1"), ("other", "k1")] {
        store.put_keypair(&key(client, name)).unwrap();
    }
    let names = |client: &str| -> Vec<String> {
        store
            .list_keypairs(client)
            .unwrap()
            .into_iter()
            .map(|k| k.name)
            .collect()
    };
    assert_eq!(names("ci"), ["k1", "k2"]);
    assert_eq!(names("ci-2"), ["k1"]);
    assert_eq!(
        store
            .get_keypair("other", "k1")
            .unwrap()
            .unwrap()
            .public_key,
        "ssh-ed25519 AAAA other-k1"
    );
    assert!(store.get_keypair("ci", "k3").unwrap().is_none());
    assert!(store.delete_keypair("ci", "k1").unwrap());
    assert!(!store.delete_keypair("ci", "k1").unwrap());
    assert_eq!(names("ci"), ["k2"]);
    assert_eq!(names("other"), ["k1"]);
}

fn requests_are_idempotent_per_client(store: &dyn Store) {
    let (first, instances) = request("ci", Some("key-1"), 3);
    assert_eq!(
        store.insert_request(&first, &instances).unwrap(),
        Inserted::New
    );
    let (again, again_instances) = request("ci", Some("key-1"), 3);
    assert_eq!(
        store.insert_request(&again, &again_instances).unwrap(),
        Inserted::Existing(Box::new(first.clone()))
    );
    assert!(store.get_request(&again.id).unwrap().is_none());
    assert_eq!(
        store
            .find_request_by_key("ci", "key-1")
            .unwrap()
            .unwrap()
            .id,
        first.id
    );
    assert!(store.find_request_by_key("ci", "key-2").unwrap().is_none());
    // Another client may use the same key.
    let (other, other_instances) = request("other", Some("key-1"), 1);
    assert_eq!(
        store.insert_request(&other, &other_instances).unwrap(),
        Inserted::New
    );
    let (plain, plain_instances) = request("ci", None, 2);
    assert_eq!(
        store.insert_request(&plain, &plain_instances).unwrap(),
        Inserted::New
    );
    let ids: Vec<String> = store
        .list_requests()
        .unwrap()
        .into_iter()
        .map(|r| r.id)
        .collect();
    assert_eq!(ids, vec![first.id.clone(), other.id, plain.id]);
    let of_first = store.request_instances(&first.id).unwrap();
    assert_eq!(of_first.len(), 3);
    assert!(of_first.windows(2).all(|w| w[0].id < w[1].id));
}

fn instances_filter_and_paginate(store: &dyn Store) {
    let (request, mut instances) = request("filter-client", None, 5);
    instances[1].state = InstanceState::Active;
    instances[1].attempt = Some(Attempt {
        id: "a1".into(),
        account_id: "acc".into(),
        region: "r1".into(),
        server_id: Some("srv".into()),
        keypair: None,
        started_at: Utc::now(),
    });
    instances[3].state = InstanceState::Active;
    store.insert_request(&request, &instances).unwrap();
    let mine = InstanceFilter {
        client: Some("filter-client".into()),
        ..InstanceFilter::default()
    };
    assert_eq!(store.list_instances(&mine).unwrap().len(), 5);
    let active = InstanceFilter {
        states: vec![InstanceState::Active],
        ..mine.clone()
    };
    assert_eq!(store.list_instances(&active).unwrap().len(), 2);
    let in_region = InstanceFilter {
        region: Some("r1".into()),
        ..mine.clone()
    };
    assert_eq!(
        store.list_instances(&in_region).unwrap()[0].id,
        instances[1].id
    );
    let named = InstanceFilter {
        name_contains: Some("vm-4".into()),
        ..mine.clone()
    };
    assert_eq!(store.list_instances(&named).unwrap().len(), 1);
    let (other, others) = self::request("filter-client", None, 2);
    store.insert_request(&other, &others).unwrap();
    let of_request = |id: &str| InstanceFilter {
        request_id: Some(id.into()),
        ..mine.clone()
    };
    assert_eq!(
        store
            .list_instances(&of_request(&request.id))
            .unwrap()
            .len(),
        5
    );
    assert_eq!(
        store.list_instances(&of_request(&other.id)).unwrap().len(),
        2
    );
    let active_or_pending = InstanceFilter {
        states: vec![InstanceState::Active, InstanceState::Pending],
        ..of_request(&request.id)
    };
    assert_eq!(store.list_instances(&active_or_pending).unwrap().len(), 5);

    let mut seen = Vec::new();
    let mut after = None;
    loop {
        let page = store
            .list_instances(&InstanceFilter {
                after: after.clone(),
                limit: 2,
                ..of_request(&request.id)
            })
            .unwrap();
        if page.is_empty() {
            break;
        }
        after = page.last().map(|i| i.id.clone());
        seen.extend(page.into_iter().map(|i| i.id));
    }
    assert_eq!(
        seen,
        instances.iter().map(|i| i.id.clone()).collect::<Vec<_>>()
    );

    let mut changed = instances[0].clone();
    changed.state = InstanceState::Failed;
    store.put_instance(&changed).unwrap();
    assert_eq!(
        store.get_instance(&changed.id).unwrap().unwrap().state,
        InstanceState::Failed
    );
}

fn live_filter_follows_state_changes(store: &dyn Store) {
    let (request, mut instances) = request("live-client", None, 4);
    instances[0].state = InstanceState::Active;
    instances[1].state = InstanceState::Failed;
    instances[2].state = InstanceState::Deleting;
    store.insert_request(&request, &instances).unwrap();
    let live = |after: Option<String>| {
        store
            .list_instances(&InstanceFilter {
                client: Some("live-client".into()),
                after,
                ..InstanceFilter::live()
            })
            .unwrap()
            .into_iter()
            .map(|i| i.id)
            .collect::<Vec<_>>()
    };
    let ids = |picked: &[usize]| {
        picked
            .iter()
            .map(|&i| instances[i].id.clone())
            .collect::<Vec<_>>()
    };
    assert_eq!(live(None), ids(&[0, 2, 3]));
    assert_eq!(live(Some(instances[0].id.clone())), ids(&[2, 3]));
    // Finished: no longer live. Revived (never happens, but the index
    // must follow whatever is written): live again.
    let mut done = instances[2].clone();
    done.state = InstanceState::Deleted;
    store.put_instance(&done).unwrap();
    assert_eq!(live(None), ids(&[0, 3]));
    let mut back = instances[1].clone();
    back.state = InstanceState::Pending;
    store.put_instance(&back).unwrap();
    assert_eq!(live(None), ids(&[0, 1, 3]));
    // A filter that admits finished states still sees everything.
    let all = store
        .list_instances(&InstanceFilter {
            client: Some("live-client".into()),
            states: vec![InstanceState::Deleted, InstanceState::Active],
            ..InstanceFilter::default()
        })
        .unwrap();
    assert_eq!(all.len(), 2);
}

fn events_keep_their_order(store: &dyn Store) {
    for n in 0..20 {
        store
            .append_event(
                "inst-1",
                &Event {
                    at: Utc::now(),
                    state: InstanceState::Pending,
                    account_region: None,
                    message: format!("event {n}"),
                    detail: None,
                    repeated: 0,
                    last_at: None,
                },
            )
            .unwrap();
    }
    store
        .append_event(
            "inst-2",
            &Event {
                at: Utc::now(),
                state: InstanceState::Active,
                account_region: Some("alpha/r1".into()),
                message: "other".into(),
                detail: Some("why, region by region".into()),
                repeated: 0,
                last_at: None,
            },
        )
        .unwrap();
    let events = store.events("inst-1").unwrap();
    assert_eq!(events.len(), 20);
    assert_eq!(events[19].message, "event 19");
    assert_eq!(store.events("inst-2").unwrap().len(), 1);
    assert!(store.events("inst-3").unwrap().is_empty());
}

fn tokens_found_by_hash(store: &dyn Store) {
    let token = ApiToken {
        id: new_id(),
        name: "ci".into(),
        role: Role::Client,
        hash: "ab".repeat(32),
        instance_limit: Some(10),
        revoked: false,
        created_at: Utc::now(),
    };
    store.put_token(&token).unwrap();
    assert_eq!(
        store.token_by_hash(&token.hash).unwrap(),
        Some(token.clone())
    );
    assert!(store.token_by_hash(&"cd".repeat(32)).unwrap().is_none());
    let revoked = ApiToken {
        revoked: true,
        ..token.clone()
    };
    store.put_token(&revoked).unwrap();
    assert!(store.token_by_hash(&token.hash).unwrap().unwrap().revoked);
    assert_eq!(store.list_tokens().unwrap().len(), 1);
}

fn a_transition_writes_the_instance_and_its_event(store: &dyn Store) {
    let (request, mut instances) = request("trans", None, 1);
    store.insert_request(&request, &instances).unwrap();
    let instance = &mut instances[0];
    let read = instance.updated_at;
    instance.state = InstanceState::Failed;
    instance.updated_at = read + chrono::Duration::seconds(1);
    let event = Event {
        at: Utc::now(),
        state: InstanceState::Failed,
        account_region: None,
        message: "gave up".into(),
        detail: None,
        repeated: 0,
        last_at: None,
    };
    store.transition(read, instance, &event).unwrap();
    assert_eq!(
        store.get_instance(&instance.id).unwrap().unwrap().state,
        InstanceState::Failed
    );
    assert_eq!(store.events(&instance.id).unwrap(), vec![event.clone()]);
    // The same thing again is counted into that event, not appended.
    let again = Event {
        at: Utc::now(),
        ..event.clone()
    };
    let current = instance.updated_at;
    store.transition(current, instance, &again).unwrap();
    store.transition(current, instance, &again).unwrap();
    let events = store.events(&instance.id).unwrap();
    assert_eq!(events.len(), 1, "{events:?}");
    assert_eq!(events[0].repeated, 2);
    assert_eq!(events[0].last_at, Some(again.at));
    let other = Event {
        message: "something else".into(),
        ..again
    };
    store.transition(current, instance, &other).unwrap();
    assert_eq!(store.events(&instance.id).unwrap().len(), 2);
    let live = store.list_instances(&InstanceFilter::live()).unwrap();
    assert!(live.iter().all(|i| i.id != instance.id));
}

/// A transition from a version that is no longer the stored one (or of
/// an instance that is gone) writes nothing: neither the record nor its
/// event.
pub fn a_transition_from_a_stale_version_writes_nothing(store: &dyn Store) {
    let (stale, instances) = request("stale", None, 1);
    store.insert_request(&stale, &instances).unwrap();
    let read = instances[0].updated_at;
    let event = |message: &str| Event {
        at: Utc::now(),
        state: InstanceState::Scheduled,
        account_region: None,
        message: message.into(),
        detail: None,
        repeated: 0,
        last_at: None,
    };
    // One writer moves it on.
    let mut first = instances[0].clone();
    first.state = InstanceState::Scheduled;
    first.updated_at = read + chrono::Duration::seconds(1);
    store.transition(read, &first, &event("first")).unwrap();
    // Another, which read the older version, is refused.
    let mut second = instances[0].clone();
    second.state = InstanceState::Failed;
    second.updated_at = read + chrono::Duration::seconds(2);
    let refused = store.transition(read, &second, &event("second"));
    assert!(
        matches!(refused, Err(super::StoreError::Stale(_))),
        "{refused:?}"
    );
    let stored = store.get_instance(&first.id).unwrap().unwrap();
    assert_eq!(stored.state, InstanceState::Scheduled);
    let events = store.events(&first.id).unwrap();
    assert_eq!(events.len(), 1);
    assert_eq!(events[0].message, "first");
    // An instance that is not there is not created by a transition.
    let (_, ghosts) = request("stale", None, 1);
    let refused = store.transition(read, &ghosts[0], &event("ghost"));
    assert!(
        matches!(refused, Err(super::StoreError::Stale(_))),
        "{refused:?}"
    );
    assert!(store.get_instance(&ghosts[0].id).unwrap().is_none());
    assert!(store.events(&ghosts[0].id).unwrap().is_empty());
}

fn finished_instances_are_purged_after_their_retention(store: &dyn Store) {
    let now = Utc::now();
    let long_ago = now - chrono::Duration::days(40);
    let event = |message: &str| Event {
        at: long_ago,
        state: InstanceState::Deleted,
        account_region: None,
        message: message.into(),
        detail: None,
        repeated: 0,
        last_at: None,
    };
    // One request all finished long ago, with an idempotency key.
    let (old, mut old_instances) = request("purge", Some("k-old"), 2);
    store.insert_request(&old, &old_instances).unwrap();
    for (i, instance) in old_instances.iter_mut().enumerate() {
        let read = instance.updated_at;
        instance.state = [InstanceState::Deleted, InstanceState::Lost][i];
        instance.updated_at = long_ago;
        store.transition(read, instance, &event("gone")).unwrap();
    }
    // One with a finished and a live instance; one finished lately.
    let (mixed, mut mixed_instances) = request("purge", Some("k-mixed"), 2);
    store.insert_request(&mixed, &mixed_instances).unwrap();
    let read = mixed_instances[0].updated_at;
    mixed_instances[0].state = InstanceState::Failed;
    mixed_instances[0].updated_at = long_ago;
    store
        .transition(read, &mixed_instances[0], &event("failed"))
        .unwrap();
    mixed_instances[1].state = InstanceState::Active;
    mixed_instances[1].updated_at = long_ago;
    store.put_instance(&mixed_instances[1]).unwrap();
    let (recent, mut recent_instances) = request("purge", None, 1);
    store.insert_request(&recent, &recent_instances).unwrap();
    recent_instances[0].state = InstanceState::Deleted;
    store.put_instance(&recent_instances[0]).unwrap();

    let cutoff = now - chrono::Duration::days(30);
    // At most `limit` per call.
    assert_eq!(store.purge_finished(cutoff, 1).unwrap(), 1);
    assert_eq!(store.purge_finished(cutoff, 100).unwrap(), 2);
    assert_eq!(store.purge_finished(cutoff, 100).unwrap(), 0);

    for instance in old_instances.iter().chain(&mixed_instances[..1]) {
        assert!(store.get_instance(&instance.id).unwrap().is_none());
        assert!(store.events(&instance.id).unwrap().is_empty());
    }
    assert!(store.get_request(&old.id).unwrap().is_none());
    assert!(
        store
            .find_request_by_key("purge", "k-old")
            .unwrap()
            .is_none(),
        "its idempotency key is free again"
    );
    // A request with an instance left stays, and so do the live and the
    // recent instances.
    assert!(store.get_request(&mixed.id).unwrap().is_some());
    assert!(
        store
            .find_request_by_key("purge", "k-mixed")
            .unwrap()
            .is_some()
    );
    assert!(
        store
            .get_instance(&mixed_instances[1].id)
            .unwrap()
            .is_some()
    );
    assert!(
        store
            .get_instance(&recent_instances[0].id)
            .unwrap()
            .is_some()
    );
    assert!(store.get_request(&recent.id).unwrap().is_some());
}

/// Runs every check of the contract against `store`, which must be empty.
pub async fn run(store: &dyn Store) {
    accounts_round_trip_with_secrets(store);
    profiles_round_trip(store);
    keypairs_are_per_client(store);
    requests_are_idempotent_per_client(store);
    instances_filter_and_paginate(store);
    live_filter_follows_state_changes(store);
    events_keep_their_order(store);
    tokens_found_by_hash(store);
    a_transition_writes_the_instance_and_its_event(store);
    a_transition_from_a_stale_version_writes_nothing(store);
    finished_instances_are_purged_after_their_retention(store);
    shared_documents_round_trip(store);
    store.flush().await.unwrap();
}

/// Shared documents are replaced whole and read back by name.
pub fn shared_documents_round_trip(store: &dyn Store) {
    assert_eq!(store.get_shared("regions").unwrap(), None);
    store.put_shared("regions", b"[1]").unwrap();
    store.put_shared("regions", b"[1,2]").unwrap();
    store.put_shared("other", b"{}").unwrap();
    assert_eq!(store.get_shared("regions").unwrap().unwrap(), b"[1,2]");
    assert_eq!(store.get_shared("other").unwrap().unwrap(), b"{}");
}
