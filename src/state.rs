//! The state directory: the sled store and the key that seals secrets.

use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::sync::Arc;

use anyhow::Context as _;
use oms_actors::store::{Sealer, SledStore, Store};

/// Default state directory (systemd's `StateDirectory=openmultistack`).
pub const DEFAULT_STATE_DIR: &str = "/var/lib/openmultistack";

/// Opens (creating if needed) the store in `dir`. Fails if another process
/// holds it.
pub fn open_store(dir: &Path) -> anyhow::Result<Arc<dyn Store>> {
    ensure_dir(dir)?;
    if dir.join(CLUSTER_MARKER).exists() {
        anyhow::bail!(
            "{} belongs to a cluster member whose store is etcd: a sled store here would be \
             nobody's; use the REST API (POST /v1/tokens, or the pages) instead",
            dir.display()
        );
    }
    let sealer = Sealer::load_or_create(&dir.join("secret.key"))?;
    let store = SledStore::open(dir, sealer).with_context(|| {
        format!(
            "cannot open the store in {} (is another oms using it? then use the REST API)",
            dir.display()
        )
    })?;
    Ok(Arc::new(store))
}

/// Marks a state directory as a cluster member's: its store is etcd, and
/// commands that open a sled store there refuse.
pub const CLUSTER_MARKER: &str = "store-is-etcd";

/// Creates the state directory (0700) if it does not exist.
pub fn ensure_dir(dir: &Path) -> anyhow::Result<()> {
    if !dir.exists() {
        std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
        std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700))
            .with_context(|| format!("cannot restrict {}", dir.display()))?;
    }
    Ok(())
}

/// This installation's daemon id, kept in the state directory so that a
/// restarted daemon recognizes the servers it tagged before
/// (`oms-<daemon id>`). Created on first start.
pub fn daemon_id(dir: &Path) -> anyhow::Result<String> {
    let path = dir.join("daemon-id");
    match std::fs::read_to_string(&path) {
        Ok(id) if !id.trim().is_empty() => Ok(id.trim().to_owned()),
        _ => {
            let id = oms_actors::model::new_id()[20..].to_owned();
            std::fs::write(&path, format!("{id}\n"))
                .with_context(|| format!("cannot write {}", path.display()))?;
            Ok(id)
        }
    }
}
