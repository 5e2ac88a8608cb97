//! OpenMultiStack on etcd: several daemons share one store; one of them,
//! elected on a lease, runs the actors; every write and provider call it
//! makes is fenced by that lease.

mod etcd_store;
pub mod journal;
pub mod keys;
mod leadership;
#[cfg(feature = "testing")]
pub mod testing;

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use etcd_client::{
    Certificate, Compare, CompareOp, ConnectOptions, Identity, TlsOptions, Txn, TxnOp,
};
use oms_actors::cluster_view::{ClusterFuture, ClusterStatus, ClusterView, Member};
use oms_actors::store::Sealer;
use secrecy::{ExposeSecret, SecretString};

pub use etcd_store::{EtcdStore, WriteFence};
pub use keys::Keys;
pub use leadership::{CurrentLeader, LeaderRecord, Lost, Membership};

/// How to reach etcd.
#[derive(Debug, Clone)]
pub struct EtcdOptions {
    /// Client URLs of the etcd members (`https://` with TLS).
    pub endpoints: Vec<String>,
    /// Prefix of every key this cluster writes.
    pub prefix: String,
    /// etcd user, when etcd's authentication is on.
    pub user: Option<String>,
    /// Its password (from a credential file).
    pub password: Option<SecretString>,
    /// CA bundle that signed etcd's certificates.
    pub ca_file: Option<PathBuf>,
    /// Client certificate and key, for etcd's client-cert authentication.
    pub cert_file: Option<PathBuf>,
    /// The key of `cert_file`.
    pub key_file: Option<PathBuf>,
    /// Longest wait for a connection.
    pub dial_timeout: Duration,
    /// Longest wait for a commit before writes answer 503.
    pub request_timeout: Duration,
}

/// Why the cluster could not be joined.
#[derive(Debug, thiserror::Error)]
pub enum ClusterError {
    /// etcd refused or did not answer.
    #[error("etcd: {0}")]
    Etcd(#[from] etcd_client::Error),
    /// A file named in the options could not be read.
    #[error("{0}")]
    File(String),
    /// The store could not be opened.
    #[error(transparent)]
    Store(#[from] oms_actors::store::StoreError),
    /// This daemon's sealing key is not the cluster's.
    #[error(
        "this daemon's sealing key (secret.key) cannot open the cluster's secrets: \
         give every member the same key"
    )]
    SealingKey,
}

/// Connects to etcd with the options' TLS and credentials. Requests fail
/// fast when etcd has no leader (no quorum) instead of hanging.
pub async fn connect(options: &EtcdOptions) -> Result<etcd_client::Client, ClusterError> {
    let mut connect = ConnectOptions::new()
        .with_connect_timeout(options.dial_timeout)
        .with_timeout(options.request_timeout)
        .with_keep_alive(Duration::from_secs(5), Duration::from_secs(5))
        .with_require_leader(true);
    if let (Some(user), Some(password)) = (&options.user, &options.password) {
        // etcd's tokens end (after their TTL, or when etcd restarts):
        // authenticate again rather than fail every call after.
        connect = connect
            .with_user(user.clone(), password.expose_secret().to_owned())
            .with_auto_token_refresh(true);
    }
    let read = |path: &PathBuf| {
        std::fs::read(path).map_err(|e| ClusterError::File(format!("{}: {e}", path.display())))
    };
    if options.ca_file.is_some() || options.cert_file.is_some() {
        let mut tls = TlsOptions::new();
        if let Some(ca) = &options.ca_file {
            tls = tls.ca_certificate(Certificate::from_pem(read(ca)?));
        }
        if let (Some(cert), Some(key)) = (&options.cert_file, &options.key_file) {
            tls = tls.identity(Identity::from_pem(read(cert)?, read(key)?));
        }
        connect = connect.with_tls(tls);
    }
    Ok(etcd_client::Client::connect(&options.endpoints, Some(connect)).await?)
}

/// Reads the value at `key`, writing `value` first if there is none: the
/// first daemon decides, the others read what it wrote.
async fn first_writer_wins(
    client: &etcd_client::Client,
    key: String,
    value: Vec<u8>,
) -> Result<Vec<u8>, ClusterError> {
    let txn = Txn::new()
        .when(vec![Compare::version(key.as_str(), CompareOp::Equal, 0)])
        .and_then(vec![TxnOp::put(key.as_str(), value.clone(), None)])
        .or_else(vec![TxnOp::get(key.as_str(), None)]);
    let answer = client.clone().txn(txn).await?;
    if answer.succeeded() {
        return Ok(value);
    }
    // The read ran in the same transaction as the failed compare: the
    // key is there.
    answer
        .op_responses()
        .into_iter()
        .find_map(|response| match response {
            etcd_client::TxnOpResponse::Get(get) => get.kvs().first().map(|kv| kv.value().to_vec()),
            _ => None,
        })
        .ok_or_else(|| {
            ClusterError::Store(oms_actors::store::StoreError::Backend(format!(
                "etcd answered a failed compare on {key} without the key"
            )))
        })
}

/// The cluster's id (what server tags carry), created by the first daemon.
pub async fn cluster_id(client: &etcd_client::Client, keys: &Keys) -> Result<String, ClusterError> {
    let fresh = oms_actors::model::new_id()[20..].to_owned();
    let id = first_writer_wins(client, keys.cluster_id(), fresh.into_bytes()).await?;
    Ok(String::from_utf8_lossy(&id).into_owned())
}

/// Refuses a sealing key that cannot open what the cluster's first daemon
/// sealed.
pub async fn check_sealing_key(
    client: &etcd_client::Client,
    keys: &Keys,
    sealer: &Sealer,
) -> Result<(), ClusterError> {
    const KNOWN: &str = "openmultistack sealing check";
    let sealed = sealer.seal(&SecretString::from(KNOWN))?;
    let kept = first_writer_wins(client, keys.seal_check(), sealed).await?;
    match sealer.open(&kept) {
        Ok(text) if text.expose_secret() == KNOWN => Ok(()),
        _ => Err(ClusterError::SealingKey),
    }
}

/// One daemon's view of its cluster: its membership and the store.
#[derive(Debug)]
pub struct Cluster {
    /// The cluster's id.
    pub id: String,
    /// This daemon's membership.
    pub membership: Membership,
    /// The shared store.
    pub store: EtcdStore,
}

impl Cluster {
    /// Joins: checks the sealing key, reads (or creates) the cluster's id,
    /// opens the store's replica and announces this member.
    pub async fn join(
        options: &EtcdOptions,
        sealer: Sealer,
        me: Member,
        ttl: Duration,
    ) -> Result<Arc<Cluster>, ClusterError> {
        let client = connect(options).await?;
        let keys = Keys::new(&options.prefix);
        check_sealing_key(&client, &keys, &sealer).await?;
        let id = cluster_id(&client, &keys).await?;
        let store = EtcdStore::open(
            client.clone(),
            keys.clone(),
            sealer,
            options.request_timeout,
        )
        .await?;
        let membership = Membership::join(client, keys, me, ttl).await?;
        Ok(Arc::new(Cluster {
            id,
            membership,
            store,
        }))
    }

    /// Campaigns until this daemon leads, then makes the store take its
    /// writes, fenced by the leader key.
    pub async fn lead(&self) -> Result<(), ClusterError> {
        let revision = self.membership.campaign().await;
        self.store
            .lead(WriteFence {
                revision,
                member: self.membership.me().name.clone(),
            })
            .await?;
        self.membership.begin_leading();
        Ok(())
    }

    /// Resolves when this daemon must start over: its lease ended, or its
    /// store was fenced off. Answers why.
    pub async fn ended(&self) -> String {
        tokio::select! {
            lost = self.membership.lost() => lost.to_string(),
            failed = self.store.wait_failed() => failed,
        }
    }
}

impl ClusterView for Cluster {
    fn status(&self) -> ClusterFuture<'_, Result<ClusterStatus, String>> {
        Box::pin(self.membership.status(&self.id, self.store.revision()))
    }

    fn leader_url(&self) -> Option<String> {
        if self.membership.leads() {
            return None;
        }
        self.membership.leader().map(|l| l.record.member.url)
    }

    fn leads(&self) -> bool {
        self.membership.leads()
    }

    fn revision(&self) -> i64 {
        self.store.revision()
    }

    fn member(&self) -> String {
        self.membership.me().name.clone()
    }

    fn lease_remaining(&self) -> Duration {
        self.membership.lease_remaining()
    }

    fn caught_up(&self, revision: i64, wait: Duration) -> ClusterFuture<'_, bool> {
        Box::pin(self.store.caught_up(revision, wait))
    }
}
