//! Nova's key pairs: import, generation below 2.92, list, delete; per
//! user and per region, as in the real service.

use base64::Engine as _;
use serde_json::{Value, json};

use crate::http::{Reply, Request};
use crate::nova::{Call, bad_request, fault, not_found, unexpected_error};
use crate::world::KeypairRecord;

pub(crate) fn list_keypairs(call: &mut Call<'_>) -> Reply {
    let owner = call.user.id.clone();
    let keypairs: Vec<Value> = call
        .region()
        .keypairs
        .values()
        .filter(|k| k.user_id == owner)
        .map(|k| {
            json!({"keypair": {"name": k.name, "public_key": k.public_key,
                               "fingerprint": k.fingerprint, "type": "ssh"}})
        })
        .collect();
    Reply::json(200, &json!({ "keypairs": keypairs }))
}

pub(crate) fn create_keypair(call: &mut Call<'_>, request: &Request) -> Reply {
    let Ok(body) = serde_json::from_slice::<Value>(&request.body) else {
        return bad_request("Malformed request body");
    };
    let keypair = &body["keypair"];
    let Some(name) = keypair["name"].as_str().map(str::to_owned) else {
        return bad_request(
            "Invalid input for field/attribute keypair. 'name' is a required property",
        );
    };
    let (public_key, private_key) = match keypair["public_key"].as_str() {
        Some(key) => (key.to_owned(), None),
        None if call.mv >= (2, 92) => {
            let shown = serde_json::to_string(keypair)
                .unwrap_or_default()
                .replace('"', "'")
                .replace(':', ": ");
            return bad_request(&format!(
                "Invalid input for field/attribute keypair. Value: {shown}. 'public_key' is a required property"
            ));
        }
        None => match generate_key(&name) {
            Some(pair) => (pair.0, Some(pair.1)),
            None => return unexpected_error(),
        },
    };
    let Some(fingerprint) = fingerprint(&public_key) else {
        return bad_request("Keypair data is invalid: failed to generate fingerprint");
    };
    let owner = call.user.id.clone();
    let limit = call.region().config.quota.key_pairs;
    let region = call.region();
    if region.keypairs.contains_key(&(owner.clone(), name.clone())) {
        return fault(
            409,
            "conflictingRequest",
            &format!("Key pair '{name}' already exists."),
        );
    }
    if region.keypairs.keys().filter(|(u, _)| *u == owner).count() as i64 >= limit {
        return fault(403, "forbidden", "Quota exceeded, too many key pairs.");
    }
    region.keypairs.insert(
        (owner.clone(), name.clone()),
        KeypairRecord {
            name: name.clone(),
            public_key: public_key.clone(),
            fingerprint: fingerprint.clone(),
            user_id: owner.clone(),
        },
    );
    let mut answer = json!({"type": "ssh", "name": name, "public_key": public_key,
                            "fingerprint": fingerprint, "user_id": owner});
    if let Some(private_key) = private_key {
        answer["private_key"] = json!(private_key);
    }
    Reply::json(201, &json!({ "keypair": answer }))
}

pub(crate) fn generate_key(name: &str) -> Option<(String, String)> {
    let mut rng = ssh_key::rand_core::OsRng;
    let key = ssh_key::PrivateKey::random(&mut rng, ssh_key::Algorithm::Ed25519).ok()?;
    let public = key.public_key().to_openssh().ok()?;
    let private = key.to_openssh(ssh_key::LineEnding::LF).ok()?.to_string();
    Some((format!("{public} Generated-by-Nova-{name}"), private))
}

/// Nova's MD5 fingerprint of an OpenSSH public key.
pub(crate) fn fingerprint(public_key: &str) -> Option<String> {
    use md5::Digest;
    let blob = public_key.split_whitespace().nth(1)?;
    let bytes = base64::engine::general_purpose::STANDARD
        .decode(blob)
        .ok()?;
    let digest = md5::Md5::digest(&bytes);
    Some(
        digest
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect::<Vec<_>>()
            .join(":"),
    )
}

pub(crate) fn delete_keypair(call: &mut Call<'_>, name: &str) -> Reply {
    let owner = call.user.id.clone();
    match call
        .region()
        .keypairs
        .remove(&(owner.clone(), name.to_owned()))
    {
        Some(_) => {
            let deletion = crate::world::Deletion {
                kind: "keypair",
                id: name.to_owned(),
                name: name.to_owned(),
                tags: Vec::new(),
                by_user: call.user.name.clone(),
                owner,
            };
            call.region().counters.deleted(deletion);
            Reply::empty(204, "application/json")
        }
        None => not_found(&format!("Keypair {name} not found for user {owner}")),
    }
}
