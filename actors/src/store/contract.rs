//! The contract suite ([`super::testsuite`]) against the memory and sled
//! stores, and what only sled must do: keep flushed writes across a
//! reopen, seal secrets, migrate and refuse schemas.

use secrecy::ExposeSecret;

use crate::model::InstanceState;

use super::testsuite::{account, request, run};
use super::{Inserted, InstanceFilter, MemoryStore, Sealer, SledStore, Store};

#[tokio::test]
async fn memory_store_meets_the_contract() {
    run(&MemoryStore::new()).await;
}

#[tokio::test]
async fn sled_store_meets_the_contract() {
    let dir = tempfile::tempdir().unwrap();
    let store = SledStore::open(dir.path(), Sealer::from_key(&[3; 32])).unwrap();
    run(&store).await;
}

#[tokio::test]
async fn sled_store_keeps_flushed_writes_across_reopen_and_seals_secrets() {
    let dir = tempfile::tempdir().unwrap();
    let key = dir.path().join("secret.key");
    let a = account("persisted");
    let (req, instances) = request("ci", Some("k"), 2);
    {
        let store = SledStore::open(dir.path(), Sealer::load_or_create(&key).unwrap()).unwrap();
        store.put_account(&a).unwrap();
        store.insert_request(&req, &instances).unwrap();
        store.flush().await.unwrap();
    }
    let mut raw = Vec::new();
    for entry in walk(&dir.path().join("db")) {
        raw.extend(std::fs::read(entry).unwrap());
    }
    assert!(
        !raw.windows(15).any(|w| w == b"s3cret-password"),
        "secret on disk in clear"
    );

    // sled's background flusher holds the file lock a moment after drop.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    let store = loop {
        match SledStore::open(dir.path(), Sealer::load_or_create(&key).unwrap()) {
            Ok(store) => break store,
            Err(e) if std::time::Instant::now() < deadline && e.to_string().contains("lock") => {
                tokio::time::sleep(std::time::Duration::from_millis(50)).await;
            }
            Err(e) => panic!("{e}"),
        }
    };
    let read = store.get_account(&a.id).unwrap().unwrap();
    assert_eq!(read.secret.expose_secret(), "s3cret-password");
    assert_eq!(store.request_instances(&req.id).unwrap().len(), 2);
    let (again, again_instances) = request("ci", Some("k"), 2);
    assert!(matches!(
        store.insert_request(&again, &again_instances).unwrap(),
        Inserted::Existing(_)
    ));
}

#[tokio::test]
async fn sled_store_refuses_a_newer_schema() {
    let dir = tempfile::tempdir().unwrap();
    {
        let db = sled::open(dir.path().join("db")).unwrap();
        db.open_tree("meta")
            .unwrap()
            .insert(b"schema_version", &99u32.to_be_bytes())
            .unwrap();
        db.flush().unwrap();
    }
    let error = SledStore::open(dir.path(), Sealer::from_key(&[3; 32])).unwrap_err();
    assert!(error.to_string().contains("99"), "{error}");
}

#[test]
fn sled_store_reads_the_last_write_while_readers_race_writers() {
    let dir = tempfile::tempdir().unwrap();
    // A cache smaller than the instances: readers keep missing and
    // offering what they read while writers overwrite it.
    let store = std::sync::Arc::new(
        SledStore::open(dir.path(), Sealer::from_key(&[3; 32]))
            .unwrap()
            .with_cache_capacity(2),
    );
    let (req, instances) = request("race", None, 4);
    store.insert_request(&req, &instances).unwrap();
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    // Readers fill the decoded cache from what they read, as writes land.
    let readers: Vec<_> = (0..2)
        .map(|_| {
            let (store, stop) = (store.clone(), stop.clone());
            std::thread::spawn(move || {
                while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                    store.list_instances(&InstanceFilter::default()).unwrap();
                    store.list_instances(&InstanceFilter::live()).unwrap();
                }
            })
        })
        .collect();
    let writers: Vec<_> = instances
        .iter()
        .cloned()
        .map(|mut instance| {
            let store = store.clone();
            std::thread::spawn(move || {
                for n in 1..=300 {
                    instance.attempts = n;
                    instance.state = if n % 2 == 0 {
                        InstanceState::Failed
                    } else {
                        InstanceState::Active
                    };
                    store.put_instance(&instance).unwrap();
                    assert_eq!(
                        store.get_instance(&instance.id).unwrap().unwrap().attempts,
                        n
                    );
                }
            })
        })
        .collect();
    for writer in writers {
        writer.join().unwrap();
    }
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    for reader in readers {
        reader.join().unwrap();
    }
    for instance in store.list_instances(&InstanceFilter::default()).unwrap() {
        assert_eq!(instance.attempts, 300, "{} is stale", instance.id);
        assert_eq!(instance.state, InstanceState::Failed);
    }
    assert!(
        store
            .list_instances(&InstanceFilter::live())
            .unwrap()
            .is_empty()
    );
}

#[tokio::test]
async fn sled_store_of_schema_one_gains_the_live_index() {
    let dir = tempfile::tempdir().unwrap();
    let (_, mut instances) = request("old", None, 3);
    instances[0].state = InstanceState::Deleted;
    instances[1].state = InstanceState::Active;
    {
        // What a schema-1 binary wrote: instance records, no index.
        let db = sled::open(dir.path().join("db")).unwrap();
        let tree = db.open_tree("instances").unwrap();
        for instance in &instances {
            tree.insert(
                instance.id.as_bytes(),
                serde_json::to_vec(instance).unwrap(),
            )
            .unwrap();
        }
        db.open_tree("meta")
            .unwrap()
            .insert(b"schema_version", &1u32.to_be_bytes())
            .unwrap();
        db.flush().unwrap();
    }
    let store = SledStore::open(dir.path(), Sealer::from_key(&[3; 32])).unwrap();
    let live: Vec<String> = store
        .list_instances(&InstanceFilter::live())
        .unwrap()
        .into_iter()
        .map(|i| i.id)
        .collect();
    assert_eq!(live, vec![instances[1].id.clone(), instances[2].id.clone()]);
}

fn walk(dir: &std::path::Path) -> Vec<std::path::PathBuf> {
    let mut files = Vec::new();
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            files.extend(walk(&path));
        } else {
            files.push(path);
        }
    }
    files
}
