//! Account secrets sealed at rest with XChaCha20-Poly1305, under a key
//! kept in a 0600 file in the state directory and created on first start.

use std::io::Write;
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::Path;

use chacha20poly1305::aead::{Aead, KeyInit, OsRng};
use chacha20poly1305::{AeadCore, XChaCha20Poly1305, XNonce};
use secrecy::{ExposeSecret, SecretString};

use serde::{Deserialize, Serialize};

use crate::model::Account;

use super::StoreError;

/// An account as every durable store keeps it: the public part and its
/// sealed secret (the account's own `secret` is never serialized).
#[derive(Serialize, Deserialize)]
pub struct AccountRecord {
    /// Everything but the secret.
    pub account: Account,
    /// What [`Sealer::seal`] made of the secret.
    pub sealed_secret: Vec<u8>,
}

const KEY_LEN: usize = 32;
const NONCE_LEN: usize = 24;

/// Seals and opens secrets. `Debug` shows nothing of the key.
#[derive(Clone)]
pub struct Sealer {
    cipher: XChaCha20Poly1305,
}

impl std::fmt::Debug for Sealer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Sealer([REDACTED])")
    }
}

impl Sealer {
    /// Reads the key file, or creates it (mode 0600) if it does not exist.
    /// A key file readable by group or others is refused.
    pub fn load_or_create(path: &Path) -> Result<Sealer, StoreError> {
        let io = |what: &str, e: std::io::Error| {
            StoreError::Seal(format!("{what} {}: {e}", path.display()))
        };
        match std::fs::read(path) {
            Ok(bytes) => {
                let mode = std::fs::metadata(path)
                    .map_err(|e| io("cannot stat", e))?
                    .permissions()
                    .mode();
                if mode & 0o077 != 0 {
                    return Err(StoreError::Seal(format!(
                        "{} is accessible to other users (mode {:o}); chmod 600 it",
                        path.display(),
                        mode & 0o777
                    )));
                }
                let key: [u8; KEY_LEN] = bytes.as_slice().try_into().map_err(|_| {
                    StoreError::Seal(format!("{} is not a {KEY_LEN}-byte key", path.display()))
                })?;
                Ok(Sealer::from_key(&key))
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                let key = XChaCha20Poly1305::generate_key(&mut OsRng);
                let mut file = std::fs::OpenOptions::new()
                    .write(true)
                    .create_new(true)
                    .mode(0o600)
                    .open(path)
                    .map_err(|e| io("cannot create", e))?;
                file.write_all(&key).map_err(|e| io("cannot write", e))?;
                file.sync_all().map_err(|e| io("cannot sync", e))?;
                Ok(Sealer {
                    cipher: XChaCha20Poly1305::new(&key),
                })
            }
            Err(e) => Err(io("cannot read", e)),
        }
    }

    /// A sealer with a given key (tests, in-memory stores).
    pub fn from_key(key: &[u8; KEY_LEN]) -> Sealer {
        Sealer {
            cipher: XChaCha20Poly1305::new(key.into()),
        }
    }

    /// Nonce followed by ciphertext and tag.
    pub fn seal(&self, secret: &SecretString) -> Result<Vec<u8>, StoreError> {
        let nonce = XChaCha20Poly1305::generate_nonce(&mut OsRng);
        let sealed = self
            .cipher
            .encrypt(&nonce, secret.expose_secret().as_bytes())
            .map_err(|_| StoreError::Seal("encryption failed".into()))?;
        Ok([nonce.as_slice(), &sealed].concat())
    }

    /// The record of `account`, its secret sealed.
    pub fn seal_account(&self, account: &Account) -> Result<AccountRecord, StoreError> {
        Ok(AccountRecord {
            account: account.clone(),
            sealed_secret: self.seal(&account.secret)?,
        })
    }

    /// The account a record holds, its secret opened.
    pub fn open_account(&self, record: AccountRecord) -> Result<Account, StoreError> {
        let mut account = record.account;
        account.secret = self.open(&record.sealed_secret)?;
        Ok(account)
    }

    /// Opens what [`Sealer::seal`] produced.
    pub fn open(&self, sealed: &[u8]) -> Result<SecretString, StoreError> {
        if sealed.len() < NONCE_LEN {
            return Err(StoreError::Seal("sealed secret too short".into()));
        }
        let (nonce, ciphertext) = sealed.split_at(NONCE_LEN);
        let plain = self
            .cipher
            .decrypt(XNonce::from_slice(nonce), ciphertext)
            .map_err(|_| StoreError::Seal("wrong key or damaged secret".into()))?;
        let text =
            String::from_utf8(plain).map_err(|_| StoreError::Seal("secret is not text".into()))?;
        Ok(SecretString::from(text))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seals_and_opens_and_refuses_another_key() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("secret.key");
        let sealer = Sealer::load_or_create(&path).unwrap();
        let mode = std::fs::metadata(&path).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
        let sealed = sealer.seal(&SecretString::from("hunter2")).unwrap();
        assert!(!sealed.windows(7).any(|w| w == b"hunter2"));
        let again = Sealer::load_or_create(&path).unwrap();
        assert_eq!(again.open(&sealed).unwrap().expose_secret(), "hunter2");
        let other = Sealer::from_key(&[7; 32]);
        assert!(other.open(&sealed).is_err());
        assert_eq!(format!("{sealer:?}"), "Sealer([REDACTED])");
    }

    #[test]
    fn a_key_file_others_can_read_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("secret.key");
        std::fs::write(&path, [1u8; 32]).unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).unwrap();
        let error = Sealer::load_or_create(&path).unwrap_err();
        assert!(error.to_string().contains("chmod 600"), "{error}");
    }
}
