//! Content digests as OCI names them: `sha256:<64 lowercase hex>`, the only algorithm taken. A digest names files
//! and directories, so it is checked before any use.

use std::{fmt, str::FromStr};

use sha2::{Digest as _, Sha256};

/// A `sha256:` digest, checked.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize, serde::Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct Digest {
    hex: String,
}

/// Why a string is not a digest.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0:?} is not a digest: expected sha256: and 64 lowercase hex digits")]
pub struct DigestError(String);

impl Digest {
    /// The digest of `bytes`.
    pub fn of(bytes: &[u8]) -> Self {
        Self { hex: hex::encode(Sha256::digest(bytes)) }
    }

    /// The 64 hex digits.
    pub fn hex(&self) -> &str {
        &self.hex
    }

    pub(crate) fn from_hasher(hasher: Sha256) -> Self {
        Self { hex: hex::encode(hasher.finalize()) }
    }
}

impl FromStr for Digest {
    type Err = DigestError;

    fn from_str(text: &str) -> Result<Self, DigestError> {
        let hex = text.strip_prefix("sha256:").unwrap_or_default();
        let valid = hex.len() == 64 && hex.bytes().all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b));
        if valid {
            Ok(Self { hex: hex.to_owned() })
        } else {
            let shown: String = text.chars().take(80).collect();
            Err(DigestError(shown))
        }
    }
}

impl TryFrom<String> for Digest {
    type Error = DigestError;

    fn try_from(text: String) -> Result<Self, DigestError> {
        text.parse()
    }
}

impl From<Digest> for String {
    fn from(digest: Digest) -> Self {
        digest.to_string()
    }
}

impl fmt::Display for Digest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "sha256:{}", self.hex)
    }
}

/// A reader that hashes and counts what passes through it, and refuses to pass more than a bound.
#[derive(Debug)]
pub struct Hashing<R> {
    inner: R,
    hasher: Sha256,
    read: u64,
    max: u64,
}

impl<R: std::io::Read> Hashing<R> {
    /// Hashes `inner`, failing once more than `max` bytes come out of it.
    pub fn new(inner: R, max: u64) -> Self {
        Self { inner, hasher: Sha256::new(), read: 0, max }
    }

    /// How many bytes passed.
    pub fn bytes(&self) -> u64 {
        self.read
    }

    /// The digest of what passed, and how many bytes it was.
    pub fn finish(self) -> (Digest, u64) {
        (Digest::from_hasher(self.hasher), self.read)
    }
}

impl<R: std::io::Read> std::io::Read for Hashing<R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.read += n as u64;
        if self.read > self.max {
            return Err(std::io::Error::other(TooLarge(self.max)));
        }
        self.hasher.update(&buf[..n]);
        Ok(n)
    }
}

/// A stream passed its bound.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("more than {0} bytes")]
pub struct TooLarge(pub u64);

#[cfg(test)]
mod tests {
    use std::io::Read;

    use super::*;

    #[test]
    fn only_sha256_digests_of_64_lowercase_hex_digits_are_taken() {
        let good = format!("sha256:{}", "a".repeat(64));
        assert_eq!(good.parse::<Digest>().map(|d| d.to_string()), Ok(good.clone()));
        for bad in [
            "sha256:".to_owned(),
            format!("sha512:{}", "a".repeat(64)),
            format!("sha256:{}", "A".repeat(64)),
            format!("sha256:{}/..", "a".repeat(61)),
            "a".repeat(64),
        ] {
            assert!(bad.parse::<Digest>().is_err(), "{bad}");
        }
    }

    #[test]
    fn a_hashing_reader_gives_the_digest_of_what_passed_and_stops_at_its_bound() {
        let mut reader = Hashing::new(&b"hello"[..], 5);
        let mut out = Vec::new();
        reader.read_to_end(&mut out).expect("within the bound");
        assert_eq!(reader.finish(), (Digest::of(b"hello"), 5));
        let mut over = Hashing::new(&b"hello!"[..], 5);
        assert!(over.read_to_end(&mut Vec::new()).is_err(), "six bytes pass a bound of five");
    }
}
