//! Sealing at rest (envelope encryption). Security-sensitive.
//!
//! Values the store must not keep in the clear (token-signing private keys, the STS master key,
//! vault secret values) are sealed with AES-256-GCM under a *data key*; data keys are stored in the
//! `data_keys` table wrapped (AES-256-GCM again) by the *key-encryption key* (KEK), which never
//! touches the database: it comes from a file or the environment at start. A database copied
//! without its KEK yields nothing readable.
//!
//! A sealed value is `kite-sealed:v1:<data key id>:<base64(nonce ‖ ciphertext ‖ tag)>`. Each value
//! is bound to its place (the additional authenticated data names table and key), so a sealed value
//! moved to another row does not open. Nothing here prints a key or a clear value: `Debug` of
//! [`Kek`] and [`Keyring`] shows only where the key came from.

use std::collections::HashMap;

use aws_lc_rs::aead::{Aad, LessSafeKey, Nonce, UnboundKey, AES_256_GCM, NONCE_LEN};
use base64::Engine;
use sqlx::{AnyPool, Row};

use crate::sql::backend;
use crate::{Error, Result};

const PREFIX: &str = "kite-sealed:v1:";
const B64: base64::engine::GeneralPurpose = base64::engine::general_purpose::STANDARD;
/// The data key every replica seals with; an insert race on a fresh database is won by one of them.
const FIRST_DATA_KEY: &str = "1";

/// The key-encryption key, with where it came from (for messages: the source, never the key).
pub struct Kek {
    key: [u8; 32],
    source: String,
}

impl std::fmt::Debug for Kek {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Kek").field("source", &self.source).finish_non_exhaustive()
    }
}

impl Kek {
    /// Base64 of exactly 32 bytes (surrounding whitespace ignored); `source` names where it came
    /// from, e.g. `--kek-file /etc/kite/kek` or `KITE_KEK`.
    pub fn from_base64(text: &str, source: impl Into<String>) -> Result<Kek> {
        let source = source.into();
        let bytes = B64
            .decode(text.trim())
            .map_err(|_| Error::Locked(format!("the key-encryption key from {source} is not base64 (expected base64 of 32 random bytes)")))?;
        let key: [u8; 32] = bytes
            .try_into()
            .map_err(|b: Vec<u8>| Error::Locked(format!("the key-encryption key from {source} is {} bytes long; it must be 32 (AES-256)", b.len())))?;
        Ok(Kek { key, source })
    }

    /// 32 fresh random bytes.
    pub fn generate(source: impl Into<String>) -> Result<Kek> {
        let mut key = [0u8; 32];
        aws_lc_rs::rand::fill(&mut key).map_err(|_| Error::Backend("no randomness for a key-encryption key".into()))?;
        Ok(Kek { key, source: source.into() })
    }

    /// The form [`Kek::from_base64`] reads: what a KEK file holds.
    pub fn to_base64(&self) -> String {
        B64.encode(self.key)
    }

    pub fn source(&self) -> &str {
        &self.source
    }

    fn aead(&self) -> Result<LessSafeKey> {
        aead_key(&self.key)
    }
}

fn aead_key(bytes: &[u8]) -> Result<LessSafeKey> {
    Ok(LessSafeKey::new(UnboundKey::new(&AES_256_GCM, bytes).map_err(|_| Error::Backend("not an AES-256 key".into()))?))
}

fn seal_with(key: &LessSafeKey, aad: &str, clear: &[u8]) -> Result<Vec<u8>> {
    let mut nonce = [0u8; NONCE_LEN];
    aws_lc_rs::rand::fill(&mut nonce).map_err(|_| Error::Backend("no randomness for a nonce".into()))?;
    let mut body = clear.to_vec();
    key.seal_in_place_append_tag(Nonce::assume_unique_for_key(nonce), Aad::from(aad.as_bytes()), &mut body)
        .map_err(|_| Error::Backend("sealing failed".into()))?;
    let mut out = nonce.to_vec();
    out.extend_from_slice(&body);
    Ok(out)
}

/// `None` when the key or the place does not match (or the bytes were altered).
fn open_with(key: &LessSafeKey, aad: &str, sealed: &[u8]) -> Option<Vec<u8>> {
    if sealed.len() < NONCE_LEN {
        return None;
    }
    let (nonce, body) = sealed.split_at(NONCE_LEN);
    let nonce = Nonce::try_assume_unique_for_key(nonce).ok()?;
    let mut body = body.to_vec();
    let clear = key.open_in_place(nonce, Aad::from(aad.as_bytes()), &mut body).ok()?;
    Some(clear.to_vec())
}

fn wrap_aad(id: &str) -> String {
    format!("kite data key {id}")
}

/// Whether a stored value is already sealed (an older kite stored some in the clear).
pub(crate) fn is_sealed(stored: &str) -> bool {
    stored.starts_with(PREFIX)
}

/// A data key, unwrapped: the AEAD key, and its bytes for re-wrapping.
struct DataKey {
    aead: LessSafeKey,
    bytes: [u8; 32],
}

impl DataKey {
    fn new(bytes: &[u8]) -> Result<DataKey> {
        let bytes: [u8; 32] = bytes.try_into().map_err(|_| Error::Backend("a stored data key is not 32 bytes".into()))?;
        Ok(DataKey { aead: aead_key(&bytes)?, bytes })
    }
}

/// The unwrapped data keys of one database.
pub(crate) struct Keyring {
    active: String,
    keys: HashMap<String, DataKey>,
}

impl std::fmt::Debug for Keyring {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Keyring").field("active", &self.active).field("data_keys", &self.keys.len()).finish()
    }
}

impl Keyring {
    /// Loads and unwraps every data key, creating the first one on a new database. A KEK that does
    /// not unwrap them is refused, naming its source.
    pub(crate) async fn load(pool: &AnyPool, kek: &Kek) -> Result<Keyring> {
        let wrapping = kek.aead()?;
        let mut dek = [0u8; 32];
        aws_lc_rs::rand::fill(&mut dek).map_err(|_| Error::Backend("no randomness for a data key".into()))?;
        let wrapped = B64.encode(seal_with(&wrapping, &wrap_aad(FIRST_DATA_KEY), &dek)?);
        match sqlx::query("INSERT INTO data_keys (id, wrapped) VALUES ($1, $2)").bind(FIRST_DATA_KEY).bind(wrapped).execute(pool).await {
            Ok(_) => {}
            Err(sqlx::Error::Database(db)) if db.is_unique_violation() => {}
            Err(e) => return Err(backend(e)),
        }
        let rows = sqlx::query("SELECT id, wrapped FROM data_keys ORDER BY id").fetch_all(pool).await.map_err(backend)?;
        let mut keys = HashMap::new();
        let mut active = String::new();
        for row in rows {
            let id: String = row.try_get("id").map_err(backend)?;
            let wrapped: String = row.try_get("wrapped").map_err(backend)?;
            keys.insert(id.clone(), DataKey::new(&unwrap(kek, &wrapping, &id, &wrapped)?)?);
            active = id;
        }
        Ok(Keyring { active, keys })
    }

    /// Seals `clear` for the place `context` (e.g. `signing_keys/<kid>`).
    pub(crate) fn seal(&self, context: &str, clear: &[u8]) -> Result<String> {
        let key = self.keys.get(&self.active).ok_or_else(|| Error::Backend("no data key loaded".into()))?;
        Ok(format!("{PREFIX}{}:{}", self.active, B64.encode(seal_with(&key.aead, context, clear)?)))
    }

    /// Opens what [`Keyring::seal`] made for the same `context`. The error names the place, never the value.
    pub(crate) fn open(&self, context: &str, stored: &str) -> Result<Vec<u8>> {
        let fail = |why: &str| Error::Backend(format!("the sealed value at {context} does not open: {why}"));
        let rest = stored.strip_prefix(PREFIX).ok_or_else(|| fail("it is not sealed"))?;
        let (id, body) = rest.split_once(':').ok_or_else(|| fail("malformed"))?;
        let key = self.keys.get(id).ok_or_else(|| fail(&format!("data key {id} is not in this database")))?;
        let sealed = B64.decode(body).map_err(|_| fail("malformed"))?;
        open_with(&key.aead, context, &sealed).ok_or_else(|| fail("altered, or moved from another place"))
    }

    /// [`Keyring::open`] for values that are UTF-8 text.
    pub(crate) fn open_text(&self, context: &str, stored: &str) -> Result<String> {
        String::from_utf8(self.open(context, stored)?).map_err(|_| Error::Backend(format!("the sealed value at {context} is not text")))
    }
}

fn unwrap(kek: &Kek, wrapping: &LessSafeKey, id: &str, wrapped: &str) -> Result<Vec<u8>> {
    let refused = || {
        Error::Locked(format!(
            "the key-encryption key from {} does not open this database's data key {id}: it is not the key the database was sealed with. \
             Start with that key (or, after 'kite keys rewrap', with the new one)",
            kek.source
        ))
    };
    let bytes = B64.decode(wrapped).map_err(|_| refused())?;
    open_with(wrapping, &wrap_aad(id), &bytes).ok_or_else(refused)
}

impl Keyring {
    /// Re-wraps every data key under `new` in one transaction. The sealed values do not change, so
    /// nothing else is rewritten, and servers already running (which hold the unwrapped data keys)
    /// go on serving; the next start needs `new`.
    pub(crate) async fn rewrap(&self, pool: &AnyPool, new: &Kek) -> Result<u64> {
        let to = new.aead()?;
        let mut tx = pool.begin().await.map_err(backend)?;
        let rows = sqlx::query("SELECT id FROM data_keys ORDER BY id").fetch_all(&mut *tx).await.map_err(backend)?;
        for row in &rows {
            let id: String = row.try_get("id").map_err(backend)?;
            let key = self.keys.get(&id).ok_or_else(|| Error::Conflict(format!("data key {id} was added after this process started; run the rewrap again")))?;
            let rewrapped = B64.encode(seal_with(&to, &wrap_aad(&id), &key.bytes)?);
            sqlx::query("UPDATE data_keys SET wrapped = $1 WHERE id = $2").bind(rewrapped).bind(&id).execute(&mut *tx).await.map_err(backend)?;
        }
        tx.commit().await.map_err(backend)?;
        Ok(rows.len() as u64)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_kek_must_be_32_bytes_of_base64_and_its_debug_shows_only_the_source() {
        let kek = Kek::generate("test").unwrap();
        let again = Kek::from_base64(&format!("{}\n", kek.to_base64()), "--kek-file k").unwrap();
        assert_eq!(again.key, kek.key);
        let dbg = format!("{again:?}");
        assert!(dbg.contains("--kek-file k") && !dbg.contains(&kek.to_base64()), "{dbg}");
        let short = Kek::from_base64(&B64.encode([1u8; 16]), "KITE_KEK").unwrap_err().to_string();
        assert!(short.contains("KITE_KEK") && short.contains("16 bytes"), "{short}");
        assert!(Kek::from_base64("not base64!", "KITE_KEK").unwrap_err().to_string().contains("not base64"));
    }

    #[test]
    fn a_sealed_value_opens_only_in_its_own_place_and_with_its_own_key() {
        let ring = Keyring { active: "1".into(), keys: HashMap::from([("1".to_string(), DataKey::new(&[7u8; 32]).unwrap())]) };
        let sealed = ring.seal("signing_keys/a", b"private").unwrap();
        assert!(is_sealed(&sealed) && !sealed.contains("private"));
        assert_eq!(ring.open("signing_keys/a", &sealed).unwrap(), b"private");
        let moved = ring.open("signing_keys/b", &sealed).unwrap_err().to_string();
        assert!(moved.contains("signing_keys/b") && !moved.contains("private"), "{moved}");
        let other = Keyring { active: "1".into(), keys: HashMap::from([("1".to_string(), DataKey::new(&[8u8; 32]).unwrap())]) };
        assert!(other.open("signing_keys/a", &sealed).is_err());
    }
}
