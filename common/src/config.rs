//! Layered configuration: defaults → optional TOML file → `HIGHWIND__SECTION__KEY` environment variables.

use std::path::Path;

use figment::{
    Figment,
    providers::{Env, Format, Serialized, Toml},
};
use serde::{Serialize, de::DeserializeOwned};

/// Prefix of every environment variable that configures Highwind; `__` separates nesting levels.
pub const ENV_PREFIX: &str = "HIGHWIND__";

/// Why configuration could not be loaded.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// A named file does not exist.
    #[error("config file {0} does not exist")]
    MissingFile(String),
    /// A value has the wrong type, an unknown key, or the file is not TOML.
    #[error("invalid configuration: {0}")]
    Invalid(#[from] Box<figment::Error>),
}

/// Loads `T` from its defaults, then `file` (if given), then the environment.
///
/// `section` scopes the environment: with `section = "asset"`, `HIGHWIND__ASSET__DATABASE_URL` sets
/// `database_url`. Unknown keys in the file are errors, so a misspelt setting never goes unnoticed.
pub fn load<T>(section: &str, file: Option<&Path>) -> Result<T, ConfigError>
where
    T: Serialize + DeserializeOwned + Default,
{
    load_with_defaults(section, file, T::default())
}

/// [`load`] with explicit defaults.
pub fn load_with_defaults<T>(section: &str, file: Option<&Path>, defaults: T) -> Result<T, ConfigError>
where
    T: Serialize + DeserializeOwned,
{
    let mut figment = Figment::from(Serialized::defaults(defaults));
    if let Some(file) = file {
        if !file.exists() {
            return Err(ConfigError::MissingFile(file.display().to_string()));
        }
        figment = figment.merge(Toml::file(file));
    }
    let prefix = format!("{ENV_PREFIX}{}__", section.to_ascii_uppercase());
    figment = figment.merge(Env::prefixed(&prefix).split("__"));
    figment.extract().map_err(|e| ConfigError::Invalid(Box::new(e)))
}

/// A secret string that never shows in `Debug` output or logs.
#[derive(Clone, Default, PartialEq, Eq, Serialize, serde::Deserialize)]
#[serde(transparent)]
pub struct Secret(String);

impl Secret {
    /// Wraps a secret value.
    pub fn new(value: impl Into<String>) -> Self {
        Self(value.into())
    }

    /// The secret itself; call only where it is used, never to log it.
    pub fn expose(&self) -> &str {
        &self.0
    }

    /// True when no secret was configured.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if self.0.is_empty() { f.write_str("Secret(<unset>)") } else { f.write_str("Secret(<redacted>)") }
    }
}

#[cfg(test)]
#[allow(clippy::result_large_err)] // figment's test jail returns figment::Error
mod tests {
    use serde::Deserialize;

    use super::*;

    #[derive(Debug, Default, Serialize, Deserialize, PartialEq)]
    #[serde(default, deny_unknown_fields)]
    struct Sample {
        database_url: String,
        max_connections: u32,
        token: Secret,
    }

    #[test]
    fn file_then_environment_override_defaults() {
        figment::Jail::expect_with(|jail| {
            jail.create_file("svc.toml", "database_url = \"sqlite://file.db\"\nmax_connections = 4\n")?;
            jail.set_env("HIGHWIND__SAMPLE__MAX_CONNECTIONS", "9");
            let loaded: Sample = load("sample", Some(Path::new("svc.toml"))).expect("loads");
            assert_eq!(loaded.database_url, "sqlite://file.db");
            assert_eq!(loaded.max_connections, 9);
            Ok(())
        });
    }

    #[test]
    fn unknown_key_and_missing_file_are_errors() {
        figment::Jail::expect_with(|jail| {
            jail.create_file("bad.toml", "databse_url = \"typo\"\n")?;
            let err = load::<Sample>("sample", Some(Path::new("bad.toml"))).expect_err("unknown key");
            assert!(err.to_string().contains("databse_url"), "{err}");
            let err = load::<Sample>("sample", Some(Path::new("nope.toml"))).expect_err("missing");
            assert!(matches!(err, ConfigError::MissingFile(_)));
            Ok(())
        });
    }

    #[test]
    fn secrets_are_redacted_in_debug() {
        let sample = Sample { token: Secret::new("hunter2"), ..Sample::default() };
        assert!(!format!("{sample:?}").contains("hunter2"));
    }
}

/// A service's whole configuration: its `[server]` section plus sections of its own.
pub trait Settings: Serialize + DeserializeOwned {
    /// The `[server]` section.
    fn server(&self) -> &ServerConfig;

    /// Checks what types cannot, for the whole configuration.
    fn validate(&self) -> Result<(), String> {
        self.server().validate()
    }
}

/// The `[server]` section every service has: where it listens, its database, the shared secret.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ServerConfig {
    /// Address to listen on.
    pub listen: std::net::SocketAddr,
    /// `postgres://…` or `sqlite://path.db`.
    pub database_url: String,
    /// Most database connections the service holds.
    pub max_connections: u32,
    /// Key shared with the gateway to sign forwarded principals (at least 32 bytes).
    pub internal_secret: Secret,
    /// Seconds in-flight calls get to finish on shutdown.
    pub drain_seconds: u64,
}

impl ServerConfig {
    /// Defaults for a service listening on `port` with its SQLite file `db` in `./highwind-data`.
    pub fn defaults(port: u16, db: &str) -> Self {
        Self {
            listen: std::net::SocketAddr::from(([127, 0, 0, 1], port)),
            database_url: format!("sqlite://./highwind-data/{db}"),
            max_connections: 8,
            internal_secret: Secret::default(),
            drain_seconds: 10,
        }
    }

    /// Checks what types cannot: a usable secret, a database URL, a pool size.
    pub fn validate(&self) -> Result<(), String> {
        if self.internal_secret.expose().len() < 32 {
            return Err(
                "internal_secret must be set and at least 32 bytes (HIGHWIND__<SERVICE>__SERVER__INTERNAL_SECRET)"
                    .into(),
            );
        }
        if self.database_url.is_empty() {
            return Err("database_url must be set".into());
        }
        if self.max_connections == 0 {
            return Err("max_connections must be at least 1".into());
        }
        Ok(())
    }
}

impl Secret {
    /// A key for one `purpose`, derived from this secret, so one configured secret can serve several uses
    /// without any two sharing a key.
    pub fn derive(&self, purpose: &str) -> Vec<u8> {
        use hmac::{Hmac, Mac};
        #[allow(clippy::expect_used)] // HMAC accepts keys of any length
        let mut mac = Hmac::<sha2::Sha256>::new_from_slice(self.0.as_bytes()).expect("hmac key");
        mac.update(purpose.as_bytes());
        mac.finalize().into_bytes().to_vec()
    }
}
