//! The store on an etcd that serves TLS and wants client certificates,
//! and on one with authentication on: joined with the CA, a client
//! certificate, a user and a password; refused without them.

use std::time::Duration;

use oms_actors::store::{Sealer, Store};
use oms_cluster::testing::{EtcdCluster, Tls, member, options};
use oms_cluster::{Cluster, EtcdOptions};
use secrecy::SecretString;

async fn join_and_write(options: &EtcdOptions) -> Result<(), String> {
    let cluster = Cluster::join(
        options,
        Sealer::from_key(&[4; 32]),
        member("a"),
        Duration::from_secs(3),
    )
    .await
    .map_err(|e| e.to_string())?;
    cluster.lead().await.map_err(|e| e.to_string())?;
    cluster
        .store
        .put_shared("probe", b"1")
        .map_err(|e| e.to_string())?;
    cluster.store.flush().await.map_err(|e| e.to_string())
}

#[tokio::test]
async fn the_store_joins_an_etcd_that_wants_tls_and_a_client_certificate() {
    if !oms_cluster::testing::available() {
        return;
    }
    let certs = tempfile::tempdir().unwrap();
    let tls = Tls::make(certs.path());
    let etcd = EtcdCluster::start_tls(tls.clone()).await;
    let mut good = options(etcd.endpoints(), "/secure");
    good.ca_file = Some(tls.ca.clone());
    good.cert_file = Some(tls.client.0.clone());
    good.key_file = Some(tls.client.1.clone());
    // etcd takes a moment to listen: retry the first join.
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    loop {
        match join_and_write(&good).await {
            Ok(()) => break,
            Err(e) if std::time::Instant::now() < deadline => {
                eprintln!("not yet: {e}");
                tokio::time::sleep(Duration::from_millis(300)).await;
            }
            Err(e) => panic!("{e}"),
        }
    }
    // Without a client certificate, etcd refuses.
    let mut anonymous = good.clone();
    anonymous.cert_file = None;
    anonymous.key_file = None;
    assert!(join_and_write(&anonymous).await.is_err());
}

#[tokio::test]
async fn the_store_joins_an_etcd_with_authentication_as_its_user() {
    if !oms_cluster::testing::available() {
        return;
    }
    let etcd = EtcdCluster::start(1).await;
    let mut admin = etcd_client::Client::connect(etcd.endpoints(), None)
        .await
        .unwrap();
    admin.user_add("root", "root-pw", None).await.unwrap();
    admin.user_grant_role("root", "root").await.unwrap();
    admin.user_add("oms", "oms-pw", None).await.unwrap();
    admin.role_add("oms").await.unwrap();
    admin
        .role_grant_permission(
            "oms",
            etcd_client::Permission::read_write("/secure").with_prefix(),
        )
        .await
        .unwrap();
    admin.user_grant_role("oms", "oms").await.unwrap();
    admin.auth_enable().await.unwrap();

    let mut good = options(etcd.endpoints(), "/secure");
    good.user = Some("oms".into());
    good.password = Some(SecretString::from("oms-pw"));
    join_and_write(&good).await.unwrap();

    let mut wrong = good.clone();
    wrong.password = Some(SecretString::from("not-it"));
    let refused = join_and_write(&wrong).await.unwrap_err();
    assert!(
        !refused.contains("not-it"),
        "the password is never said: {refused}"
    );
    let anonymous = options(etcd.endpoints(), "/secure");
    assert!(join_and_write(&anonymous).await.is_err());
}
