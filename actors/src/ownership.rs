//! Ownership: what proves that a server or key pair at a provider is ours.
//!
//! A project is shared: other accounts registered on it, other deployments
//! of OpenMultiStack (or an earlier one with another id), people. Anything
//! that deletes or adopts asks here first. A server is this account's only
//! if it carries both the deployment tag and the account tag; a key pair
//! only if its name starts with this deployment's and this account's
//! prefix. Resources of the older format (deployment tag alone, `oms-k-`
//! names without owner) are never collected: they cannot be proven to be
//! this account's.

/// Who creates a resource: this deployment, through this account.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Owner {
    deployment: String,
    account_id: String,
}

/// Prefix of every tag and name we write.
const PREFIX: &str = "oms-";

impl Owner {
    /// The owner of what `account_id` creates for deployment `deployment`.
    pub fn new(deployment: &str, account_id: &str) -> Owner {
        Owner {
            deployment: deployment.to_owned(),
            account_id: account_id.to_owned(),
        }
    }

    /// The tag of every server of this deployment (`oms-<deployment>`).
    pub fn deployment_tag(&self) -> String {
        format!("{PREFIX}{}", self.deployment)
    }

    /// The tag of every server this account made (`oms-acct-<account>`).
    pub fn account_tag(&self) -> String {
        format!("{PREFIX}acct-{}", self.account_id)
    }

    /// Both owner tags: a listing filtered by them (Nova ANDs `tags`)
    /// returns only this account's servers of this deployment.
    pub fn tags(&self) -> Vec<String> {
        vec![self.deployment_tag(), self.account_tag()]
    }

    /// Every tag a server of `attempt_id` is created with.
    pub fn server_tags(&self, attempt_id: &str) -> Vec<String> {
        let mut tags = self.tags();
        tags.push(attempt_tag(attempt_id));
        tags
    }

    fn keypair_prefix(&self) -> String {
        format!("{PREFIX}k-{}-{}-", self.deployment, self.account_id)
    }

    /// The name of the key pair imported for `attempt_id`.
    pub fn keypair_name(&self, attempt_id: &str) -> String {
        format!("{}{attempt_id}", self.keypair_prefix())
    }

    /// If the tags prove the server is ours, the attempt it carries (if
    /// any); `None` when it is not provably ours.
    pub fn server_attempt(&self, tags: &[String]) -> Option<Option<String>> {
        let owned = tags.contains(&self.deployment_tag()) && tags.contains(&self.account_tag());
        owned.then(|| {
            tags.iter()
                .find_map(|t| t.strip_prefix(ATTEMPT_PREFIX))
                .map(str::to_owned)
        })
    }

    /// Whether a server listed under our deployment tag is the one of
    /// `attempt_id`, to adopt after a restart. The attempt id is unique and
    /// the store holds it for this account, so the deployment and attempt
    /// tags prove it (servers tagged before account tags existed carry no
    /// account tag); one that names another account is not ours.
    pub fn may_adopt(&self, tags: &[String], attempt_id: &str) -> bool {
        let account_prefix = format!("{PREFIX}acct-");
        tags.contains(&self.deployment_tag())
            && tags.contains(&attempt_tag(attempt_id))
            && tags
                .iter()
                .filter(|t| t.starts_with(&account_prefix))
                .all(|t| *t == self.account_tag())
    }

    /// If the name proves the key pair is ours, the attempt it was made
    /// for.
    pub fn keypair_attempt(&self, name: &str) -> Option<String> {
        name.strip_prefix(&self.keypair_prefix())
            // Attempt ids have no dash: a longer account id sharing our
            // prefix (`acct1-x`) is another owner.
            .filter(|attempt| !attempt.is_empty() && !attempt.contains('-'))
            .map(str::to_owned)
    }
}

const ATTEMPT_PREFIX: &str = "oms-a-";

/// The tag that finds an attempt's server (attempt ids are unique, so it
/// also tells which instance a server belongs to).
pub(crate) fn attempt_tag(attempt_id: &str) -> String {
    format!("{ATTEMPT_PREFIX}{attempt_id}")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tags(list: &[&str]) -> Vec<String> {
        list.iter().map(|t| (*t).to_owned()).collect()
    }

    #[test]
    fn a_server_is_ours_only_with_both_owner_tags() {
        let me = Owner::new("dep1", "acct1");
        let mine = me.server_tags("att1");
        assert_eq!(me.server_attempt(&mine), Some(Some("att1".into())));
        // Another account of the same deployment on the same project.
        let sibling = Owner::new("dep1", "acct2").server_tags("att2");
        assert_eq!(me.server_attempt(&sibling), None);
        // Another deployment through an account of the same id.
        let other = Owner::new("dep2", "acct1").server_tags("att3");
        assert_eq!(me.server_attempt(&other), None);
        // The older format: deployment tag and attempt only.
        assert_eq!(me.server_attempt(&tags(&["oms-dep1", "oms-a-att4"])), None);
        // A person's server, and one that copies only our attempt tag.
        assert_eq!(me.server_attempt(&[]), None);
        assert_eq!(me.server_attempt(&tags(&["oms-a-att1"])), None);
        // Ours without an attempt tag (tagging was cut short).
        assert_eq!(me.server_attempt(&me.tags()), Some(None));
    }

    #[test]
    fn adoption_needs_our_deployment_and_the_attempt_and_no_other_account() {
        let me = Owner::new("dep1", "acct1");
        assert!(me.may_adopt(&me.server_tags("att1"), "att1"));
        assert!(!me.may_adopt(&me.server_tags("att1"), "att2"));
        assert!(me.may_adopt(&tags(&["oms-dep1", "oms-a-att1"]), "att1"));
        assert!(!me.may_adopt(&tags(&["oms-a-att1"]), "att1"));
        let sibling = Owner::new("dep1", "acct2").server_tags("att1");
        assert!(!me.may_adopt(&sibling, "att1"));
        let other = Owner::new("dep2", "acct1").server_tags("att1");
        assert!(!me.may_adopt(&other, "att1"));
    }

    #[test]
    fn a_key_pair_is_ours_only_with_our_prefix() {
        let me = Owner::new("dep1", "acct1");
        let name = me.keypair_name("att1");
        assert_eq!(me.keypair_attempt(&name), Some("att1".into()));
        for foreign in [
            Owner::new("dep1", "acct2").keypair_name("att1"),
            Owner::new("dep2", "acct1").keypair_name("att1"),
            // Prefixes that extend ours are other owners too.
            Owner::new("dep1x", "acct1").keypair_name("att1"),
            Owner::new("dep1", "acct1x").keypair_name("att1"),
            Owner::new("dep1", "acct1-x").keypair_name("att1"),
            "oms-k-att1".to_owned(),
            "my-laptop".to_owned(),
            me.keypair_name(""),
        ] {
            assert_eq!(me.keypair_attempt(&foreign), None, "{foreign}");
        }
    }

    #[test]
    fn names_fit_novas_limits() {
        // Real ids: 12-hex deployment, 32-hex account and attempt ids.
        let me = Owner::new(&"d".repeat(12), &"a".repeat(32));
        for tag in me.server_tags(&"t".repeat(32)) {
            assert!(tag.len() <= 60, "{tag}");
            assert!(!tag.contains(['/', ',']));
        }
        assert!(me.keypair_name(&"t".repeat(32)).len() <= 255);
    }
}
