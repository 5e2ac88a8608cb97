//! API tokens: 256 random bits with an `oms_` prefix, shown once, stored
//! as their SHA-256. A token's name is its client's identity (instances
//! belong to it), so a name belongs to one line of tokens: reusing it
//! needs the id of the token it continues, and a name nobody continues
//! cannot be taken by a stranger and see that client's instances.

use base64::Engine as _;
use chrono::Utc;
use rand::RngCore;
use secrecy::{ExposeSecret, SecretString};
use sha2::{Digest, Sha256};

use crate::model::{ApiToken, Role, new_id};
use crate::store::{Store, StoreError};

/// Prefix of every token, so leaked tokens are easy to scan for.
pub const TOKEN_PREFIX: &str = "oms_";

/// Hex SHA-256 of a token value.
pub fn hash_token(value: &str) -> String {
    Sha256::digest(value.as_bytes())
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// A new random token value.
pub fn generate_token() -> SecretString {
    let mut bytes = [0u8; 32];
    rand::rng().fill_bytes(&mut bytes);
    let encoded = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes);
    SecretString::from(format!("{TOKEN_PREFIX}{encoded}"))
}

/// What a new token should be.
#[derive(Debug, Clone)]
pub struct NewToken {
    /// Name, and so the client identity of its instances.
    pub name: String,
    /// Role.
    pub role: Role,
    /// Most instances its client may hold.
    pub instance_limit: Option<u32>,
    /// The id of an earlier token of the same name that this one
    /// continues (rotation): only then may a used name be taken again.
    pub continues: Option<String>,
}

/// Why a token cannot be issued or revoked.
#[derive(Debug, thiserror::Error)]
pub enum TokenError {
    /// The store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The ask is malformed.
    #[error("{0}")]
    Invalid(String),
    /// The name belongs to another line of tokens.
    #[error("{0}")]
    Conflict(String),
    /// No such token.
    #[error("token not found")]
    NotFound,
}

/// Decides whether `new` may be issued next to `existing` tokens.
pub fn check_new(existing: &[ApiToken], new: &NewToken) -> Result<(), TokenError> {
    crate::bounds::name("name", &new.name).map_err(TokenError::Invalid)?;
    let same_name: Vec<&ApiToken> = existing.iter().filter(|t| t.name == new.name).collect();
    match &new.continues {
        None => match same_name.first() {
            None => Ok(()),
            Some(t) if !t.revoked => Err(TokenError::Conflict(format!(
                "a live token ({}) already has the name {}; a name is a client's identity. \
                 To rotate it, pass continues: \"{}\"",
                t.id, new.name, t.id
            ))),
            Some(t) => Err(TokenError::Conflict(format!(
                "the name {} was used by token {} (revoked) and its instances keep that \
                 identity; to continue it pass continues: \"{}\", or choose another name",
                new.name, t.id, t.id
            ))),
        },
        Some(id) => {
            let Some(previous) = existing.iter().find(|t| t.id == *id) else {
                return Err(TokenError::Invalid(
                    "continues: no token has that id".into(),
                ));
            };
            if previous.name != new.name {
                return Err(TokenError::Invalid(format!(
                    "continues: that token is named {}, not {}",
                    previous.name, new.name
                )));
            }
            if previous.role != new.role {
                return Err(TokenError::Invalid(
                    "continues: a rotated token keeps its role".into(),
                ));
            }
            Ok(())
        }
    }
}

/// Serializes issuing so that two tokens of one new name cannot both pass
/// the check.
static ISSUING: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

/// Creates and stores a token; returns it with its value, which exists
/// nowhere else afterwards.
pub async fn issue(
    store: &dyn Store,
    new: NewToken,
) -> Result<(ApiToken, SecretString), TokenError> {
    let _one_at_a_time = ISSUING.lock().await;
    check_new(&store.list_tokens()?, &new)?;
    let value = generate_token();
    let token = ApiToken {
        id: new_id(),
        name: new.name,
        role: new.role,
        hash: hash_token(value.expose_secret()),
        instance_limit: new.instance_limit,
        revoked: false,
        created_at: Utc::now(),
    };
    store.put_token(&token)?;
    store.flush().await?;
    Ok((token, value))
}

/// Revokes token `id`; it authenticates no more, and sessions signed in
/// with it end.
pub async fn revoke(store: &dyn Store, id: &str) -> Result<ApiToken, TokenError> {
    let mut token = find(store, id)?.ok_or(TokenError::NotFound)?;
    token.revoked = true;
    store.put_token(&token)?;
    store.flush().await?;
    Ok(token)
}

/// The live token whose value is `value`; the stored hash is compared
/// in constant time.
pub fn live_by_value(store: &dyn Store, value: &str) -> Result<Option<ApiToken>, StoreError> {
    use subtle::ConstantTimeEq;
    let hash = hash_token(value);
    Ok(store
        .token_by_hash(&hash)?
        .filter(|t| bool::from(t.hash.as_bytes().ct_eq(hash.as_bytes())))
        .filter(|t| !t.revoked))
}

/// Token `id`, revoked or not.
pub fn find(store: &dyn Store, id: &str) -> Result<Option<ApiToken>, StoreError> {
    Ok(store.list_tokens()?.into_iter().find(|t| t.id == id))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn token(id: &str, name: &str, revoked: bool) -> ApiToken {
        ApiToken {
            id: id.into(),
            name: name.into(),
            role: Role::Client,
            hash: String::new(),
            instance_limit: None,
            revoked,
            created_at: Utc::now(),
        }
    }

    fn new(name: &str, continues: Option<&str>) -> NewToken {
        NewToken {
            name: name.into(),
            role: Role::Client,
            instance_limit: None,
            continues: continues.map(Into::into),
        }
    }

    #[test]
    fn a_name_belongs_to_one_line_of_tokens() {
        let live = [token("a", "ci", false)];
        assert!(check_new(&live, &new("other", None)).is_ok());
        assert!(matches!(
            check_new(&live, &new("ci", None)),
            Err(TokenError::Conflict(_))
        ));
        assert!(check_new(&live, &new("ci", Some("a"))).is_ok());
        let revoked = [token("a", "ci", true)];
        assert!(matches!(
            check_new(&revoked, &new("ci", None)),
            Err(TokenError::Conflict(_))
        ));
        assert!(check_new(&revoked, &new("ci", Some("a"))).is_ok());
    }

    #[test]
    fn continuing_needs_the_same_name_and_role() {
        let existing = [token("a", "ci", false), token("b", "build", false)];
        for bad in [new("ci", Some("b")), new("ci", Some("zzz"))] {
            assert!(matches!(
                check_new(&existing, &bad),
                Err(TokenError::Invalid(_))
            ));
        }
        let mut admin = new("ci", Some("a"));
        admin.role = Role::Admin;
        assert!(matches!(
            check_new(&existing, &admin),
            Err(TokenError::Invalid(_))
        ));
    }

    #[tokio::test]
    async fn issued_tokens_are_stored_hashed_and_revocable() {
        let store = crate::store::MemoryStore::new();
        let (token, value) = issue(&store, new("ci", None)).await.unwrap();
        assert!(value.expose_secret().starts_with(TOKEN_PREFIX));
        assert_eq!(value.expose_secret().len(), TOKEN_PREFIX.len() + 43);
        assert_eq!(token.hash, hash_token(value.expose_secret()));
        assert!(!token.hash.contains(value.expose_secret()));
        assert!(revoke(&store, &token.id).await.unwrap().revoked);
        assert!(find(&store, &token.id).unwrap().unwrap().revoked);
        assert!(matches!(
            revoke(&store, "nope").await,
            Err(TokenError::NotFound)
        ));
    }
}
