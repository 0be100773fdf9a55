//! Service-principal credentials: client secrets and certificates.
//!
//! Security-sensitive. kite generates every client secret itself with 256 bits of entropy, so a
//! salted SHA-256 is the right storage: a password KDF would only make the token endpoint slow.
//! The secret text exists once, in the value returned to the caller; it is never stored or logged.

use base64::Engine;
use rand::RngCore;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use time::OffsetDateTime;
use uuid::Uuid;

use crate::{Error, Result};

/// Entra ID refuses client secrets that live longer than this.
pub const MAX_SECRET_LIFETIME_MONTHS: u32 = 24;

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct PasswordCredential {
    pub key_id: Uuid,
    pub display_name: Option<String>,
    /// First three characters of the secret, as Entra shows, so people can tell secrets apart.
    pub hint: String,
    pub salt: String,
    pub hash: String,
    #[serde(with = "time::serde::rfc3339")]
    pub start_date_time: OffsetDateTime,
    #[serde(with = "time::serde::rfc3339")]
    pub end_date_time: OffsetDateTime,
}

/// A freshly generated secret: the text to show once, and the credential to store.
pub struct NewSecret {
    pub secret_text: String,
    pub credential: PasswordCredential,
}

fn add_months(t: OffsetDateTime, months: u32) -> OffsetDateTime {
    let total = t.month() as i32 - 1 + months as i32;
    let year = t.year() + total / 12;
    let month = time::Month::try_from((total % 12 + 1) as u8).unwrap_or(time::Month::December);
    let last_day = time::util::days_in_month(month, year);
    let date = time::Date::from_calendar_date(year, month, t.day().min(last_day)).unwrap_or(t.date());
    t.replace_date(date)
}

/// The end date of a new secret: `years` from now (default 1), or an explicit `end_date`; never more
/// than 24 months away, never in the past.
pub fn secret_end_date(now: OffsetDateTime, years: Option<u32>, end_date: Option<OffsetDateTime>) -> Result<OffsetDateTime> {
    let limit = add_months(now, MAX_SECRET_LIFETIME_MONTHS);
    let end = match (years, end_date) {
        (Some(_), Some(_)) => {
            return Err(Error::InvalidArgument("give either --years or --end-date, not both".into()));
        }
        (Some(0), None) => return Err(Error::InvalidArgument("--years must be 1 or 2".into())),
        (Some(y), None) => {
            // Compared before multiplying: a huge --years must not wrap into a short, valid lifetime.
            if y > MAX_SECRET_LIFETIME_MONTHS / 12 {
                return Err(Error::InvalidArgument(format!(
                    "a client secret may live at most {MAX_SECRET_LIFETIME_MONTHS} months; --years {y} asks for {} months. \
                     Use --years 1 or --years 2, and rotate with 'kite ad sp credential reset' before it expires \
                     (or use a certificate or a federated credential instead)",
                    u64::from(y) * 12
                )));
            }
            add_months(now, y * 12)
        }
        (None, Some(end)) => end,
        (None, None) => add_months(now, 12),
    };
    if end <= now {
        return Err(Error::InvalidArgument(format!("--end-date {end} is not in the future")));
    }
    if end > limit {
        return Err(Error::InvalidArgument(format!(
            "a client secret may live at most {MAX_SECRET_LIFETIME_MONTHS} months (until {limit}); {end} is later. Pick an earlier --end-date"
        )));
    }
    Ok(end)
}

fn digest(salt: &[u8], secret: &str) -> Vec<u8> {
    let mut h = Sha256::new();
    h.update(salt);
    h.update(secret.as_bytes());
    h.finalize().to_vec()
}

/// Comparison whose time does not depend on where the inputs first differ.
fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

impl PasswordCredential {
    pub fn generate(now: OffsetDateTime, end: OffsetDateTime, display_name: Option<String>) -> NewSecret {
        // A secret that starts with '-' reads as a flag on every command line (`kite login -p -W…`);
        // drawing again costs a fraction of a bit of the 256.
        let body = loop {
            let mut raw = [0u8; 32];
            rand::rng().fill_bytes(&mut raw);
            let body = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(raw);
            if body.starts_with(|c: char| c.is_ascii_alphanumeric()) {
                break body;
            }
        };
        // Entra secrets carry a '~' after a short prefix; keep that look so people recognise them.
        let secret_text = format!("{}~{}", &body[..3], &body[3..]);
        let mut salt = [0u8; 16];
        rand::rng().fill_bytes(&mut salt);
        let credential = PasswordCredential {
            key_id: Uuid::new_v4(),
            display_name,
            hint: secret_text[..3].to_string(),
            salt: hex::encode(salt),
            hash: hex::encode(digest(&salt, &secret_text)),
            start_date_time: now,
            end_date_time: end,
        };
        NewSecret { secret_text, credential }
    }

    pub fn matches(&self, presented: &str) -> bool {
        let (Ok(salt), Ok(hash)) = (hex::decode(&self.salt), hex::decode(&self.hash)) else {
            return false;
        };
        constant_time_eq(&digest(&salt, presented), &hash)
    }

    pub fn is_expired(&self, now: OffsetDateTime) -> bool {
        now >= self.end_date_time
    }
}

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct CertificateCredential {
    pub key_id: Uuid,
    /// The certificate's subject, shown as the credential's display name.
    pub display_name: String,
    /// Upper-case hex SHA-1 of the DER certificate (az's `customKeyIdentifier`).
    pub thumbprint: String,
    #[serde(with = "time::serde::rfc3339")]
    pub start_date_time: OffsetDateTime,
    #[serde(with = "time::serde::rfc3339")]
    pub end_date_time: OffsetDateTime,
    /// The certificate itself, PEM; its public key verifies client assertions.
    pub pem: String,
}

impl CertificateCredential {
    /// base64url SHA-1 and SHA-256 of the DER certificate: what a client assertion's `x5t` and
    /// `x5t#S256` headers carry.
    pub fn header_thumbprints(&self) -> (String, String) {
        let b64 = base64::engine::general_purpose::URL_SAFE_NO_PAD;
        let der = hex::decode(&self.thumbprint).unwrap_or_default();
        let sha256 = x509_parser::pem::parse_x509_pem(self.pem.as_bytes()).map(|(_, pem)| b64.encode(Sha256::digest(&pem.contents))).unwrap_or_default();
        (b64.encode(der), sha256)
    }

    /// The RSA modulus and exponent of the certificate's public key (big-endian), which verify
    /// client assertions signed with its private key.
    pub fn rsa_public_key(&self) -> Result<(Vec<u8>, Vec<u8>)> {
        let bad = |why: String| Error::InvalidArgument(format!("certificate {}: {why}", self.thumbprint));
        let (_, pem) = x509_parser::pem::parse_x509_pem(self.pem.as_bytes()).map_err(|e| bad(e.to_string()))?;
        let cert = pem.parse_x509().map_err(|e| bad(e.to_string()))?;
        match cert.public_key().parsed() {
            // DER integers carry a leading zero byte when the top bit is set; key material does not.
            Ok(x509_parser::public_key::PublicKey::RSA(rsa)) => {
                let unsigned = |b: &[u8]| b.iter().skip_while(|&&x| x == 0).copied().collect::<Vec<u8>>();
                Ok((unsigned(rsa.modulus), unsigned(rsa.exponent)))
            }
            Ok(_) => Err(bad("only RSA certificates can sign client assertions".into())),
            Err(e) => Err(bad(e.to_string())),
        }
    }

    /// Reads one PEM certificate, refusing anything that is not a certificate or is already expired.
    pub fn from_pem(pem_text: &str, now: OffsetDateTime) -> Result<CertificateCredential> {
        let bad = |why: String| Error::InvalidArgument(format!("invalid certificate: {why}; give a PEM file ('-----BEGIN CERTIFICATE-----')"));
        let (_, pem) = x509_parser::pem::parse_x509_pem(pem_text.as_bytes()).map_err(|e| bad(e.to_string()))?;
        if pem.label != "CERTIFICATE" {
            return Err(bad(format!("found a '{}' block, not a CERTIFICATE", pem.label)));
        }
        let cert = pem.parse_x509().map_err(|e| bad(e.to_string()))?;
        let validity = cert.validity();
        let start = OffsetDateTime::from_unix_timestamp(validity.not_before.timestamp()).map_err(|e| bad(e.to_string()))?;
        let end = OffsetDateTime::from_unix_timestamp(validity.not_after.timestamp()).map_err(|e| bad(e.to_string()))?;
        if end <= now {
            return Err(Error::InvalidArgument(format!("the certificate expired on {end}; upload a current one")));
        }
        let thumbprint = hex::encode_upper(<sha1::Sha1 as sha1::Digest>::digest(&pem.contents));
        let block = base64::engine::general_purpose::STANDARD.encode(&pem.contents);
        let lines: Vec<&str> = block.as_bytes().chunks(64).map(|c| std::str::from_utf8(c).unwrap_or("")).collect();
        Ok(CertificateCredential {
            key_id: Uuid::new_v4(),
            display_name: cert.subject().to_string(),
            thumbprint,
            start_date_time: start,
            end_date_time: end,
            pem: format!("-----BEGIN CERTIFICATE-----\n{}\n-----END CERTIFICATE-----\n", lines.join("\n")),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use time::macros::datetime;

    const NOW: OffsetDateTime = datetime!(2026-02-28 12:00 UTC);

    #[test]
    fn secrets_default_to_one_year_and_refuse_more_than_24_months() {
        assert_eq!(secret_end_date(NOW, None, None).unwrap(), datetime!(2027-02-28 12:00 UTC));
        assert_eq!(secret_end_date(NOW, Some(2), None).unwrap(), datetime!(2028-02-28 12:00 UTC));
        let err = secret_end_date(NOW, Some(3), None).unwrap_err().to_string();
        assert!(err.contains("at most 24 months") && err.contains("--years 2"), "{err}");
        let err = secret_end_date(NOW, None, Some(datetime!(2028-03-01 00:00 UTC))).unwrap_err().to_string();
        assert!(err.contains("at most 24 months"), "{err}");
        assert!(secret_end_date(NOW, None, Some(datetime!(2025-01-01 00:00 UTC))).is_err());
        // 357913942 × 12 wraps a u32 to 8: refused, not an 8-month secret.
        let err = secret_end_date(NOW, Some(357_913_942), None).unwrap_err().to_string();
        assert!(err.contains("4294967304 months"), "{err}");
        assert!(secret_end_date(NOW, Some(u32::MAX), None).is_err());
    }

    #[test]
    fn secrets_never_start_like_a_command_line_flag() {
        for _ in 0..2000 {
            let s = PasswordCredential::generate(NOW, datetime!(2027-01-01 0:00 UTC), None).secret_text;
            assert!(s.starts_with(|c: char| c.is_ascii_alphanumeric()), "{s}");
        }
    }

    #[test]
    fn a_secret_verifies_only_itself_and_is_not_stored_in_clear() {
        let new = PasswordCredential::generate(NOW, datetime!(2027-01-01 0:00 UTC), None);
        assert!(new.secret_text.len() >= 43);
        assert!(new.credential.matches(&new.secret_text));
        assert!(!new.credential.matches(&format!("{}x", new.secret_text)));
        let stored = serde_json::to_string(&new.credential).unwrap();
        assert!(!stored.contains(&new.secret_text[4..]));
        assert_eq!(new.credential.hint, new.secret_text[..3]);
        let other = PasswordCredential::generate(NOW, datetime!(2027-01-01 0:00 UTC), None);
        assert_ne!(other.credential.salt, new.credential.salt);
    }
}
