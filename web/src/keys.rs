//! OpenSSH keys as clients give them and as we generate them, for the REST
//! API's launches and the façade's key pairs alike.

use secrecy::SecretString;

use crate::error::ApiError;

/// Longest public key line (an RSA 16384-bit key is about 2.8 KiB).
const MAX_PUBLIC_KEY: usize = 8 * 1024;

/// Whether `key` is exactly one OpenSSH public key: one line, which
/// parses. A second line would be a second key in `authorized_keys`.
pub(crate) fn one_public_key(key: &str) -> bool {
    let line = key.trim_end_matches(['\n', '\r']);
    line.len() <= MAX_PUBLIC_KEY
        && !line.chars().any(char::is_control)
        && ssh_key::PublicKey::from_openssh(line).is_ok()
}

/// A fresh ed25519 key pair: (public OpenSSH line, private OpenSSH PEM).
pub(crate) fn generate_key(comment: &str) -> Result<(String, SecretString), ApiError> {
    let mut rng = ssh_key::rand_core::OsRng;
    let mut key = ssh_key::PrivateKey::random(&mut rng, ssh_key::Algorithm::Ed25519)
        .map_err(|_| ApiError::internal("key generation failed"))?;
    key.set_comment(comment);
    let public = key
        .public_key()
        .to_openssh()
        .map_err(|_| ApiError::internal("key encoding failed"))?;
    let private = key
        .to_openssh(ssh_key::LineEnding::LF)
        .map_err(|_| ApiError::internal("key encoding failed"))?;
    Ok((public, SecretString::from(private.to_string())))
}

/// Nova's fingerprint of a public key: the MD5 of its blob, in hex pairs.
pub(crate) fn fingerprint(key: &str) -> String {
    use base64::Engine as _;
    use md5::Digest as _;
    let blob = key
        .split_whitespace()
        .nth(1)
        .and_then(|b| base64::engine::general_purpose::STANDARD.decode(b).ok())
        .unwrap_or_default();
    md5::Md5::digest(&blob)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect::<Vec<_>>()
        .join(":")
}
