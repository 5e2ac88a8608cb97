//! The store contract suite (`oms_actors::store::testsuite`, the
//! `testsuite` feature) from outside its crate, as another backend will
//! run it: against the store the daemon opens in its state directory, and
//! through the failing wrapper the tests use while it passes through.

use std::sync::Arc;

use oms_actors::store::{MemoryStore, Store, testsuite};

use crate::support::failing_store::FailingStore;

#[tokio::test]
async fn the_daemons_store_meets_the_contract() {
    let dir = tempfile::tempdir().unwrap();
    let store = openmultistack::state::open_store(&dir.path().join("state")).unwrap();
    testsuite::run(store.as_ref()).await;
}

#[tokio::test]
async fn the_failing_wrapper_passes_the_contract_while_it_does_not_fail() {
    let store: Arc<dyn Store> = FailingStore::new(Arc::new(MemoryStore::new()));
    testsuite::run(store.as_ref()).await;
}
