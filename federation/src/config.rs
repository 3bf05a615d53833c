//! The federation layer's configuration: part of the node's `orrery.toml` (`[network]`).

use std::time::Duration;

use serde::{Deserialize, Serialize};

/// How the node talks to the federation.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Config {
    /// Addresses to listen on (multiaddrs), e.g. `/ip4/0.0.0.0/tcp/4100` and
    /// `/ip4/0.0.0.0/udp/4100/quic-v1`.
    pub listen: Vec<String>,
    /// Addresses of members to dial at start.
    pub bootstrap: Vec<String>,
    /// Find peers on the local network with mDNS.
    pub mdns: bool,
    /// Re-publish this node's advert this often, in seconds.
    pub advert_interval_secs: u64,
    /// An advert is valid this long after it was issued, in seconds.
    pub advert_ttl_secs: u64,
    /// Give up on a request after this many seconds.
    pub request_timeout_secs: u64,
    /// Offences after which a peer is disconnected and banned.
    pub max_offences: u32,
    /// How long a penalised peer stays banned, in seconds.
    pub ban_secs: u64,
    /// How long a node that is not a member may stay connected (to ask to join), in seconds.
    pub stranger_grace_secs: u64,
}

impl Default for Config {
    fn default() -> Self {
        Self {
            listen: vec![
                "/ip4/0.0.0.0/tcp/4100".into(),
                "/ip4/0.0.0.0/udp/4100/quic-v1".into(),
            ],
            bootstrap: Vec::new(),
            mdns: false,
            advert_interval_secs: 60,
            advert_ttl_secs: 600,
            request_timeout_secs: 30,
            max_offences: 3,
            ban_secs: 3600,
            stranger_grace_secs: 15,
        }
    }
}

/// Why the configuration cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// An address does not parse.
    #[error("`{0}` is not a multiaddr (e.g. /ip4/0.0.0.0/tcp/4100)")]
    BadAddress(String),
    /// A duration is zero or inconsistent.
    #[error("network.{0} must be positive, and advert_ttl_secs above advert_interval_secs")]
    BadDuration(&'static str),
}

impl Config {
    /// Checks the values.
    pub fn validate(&self) -> Result<(), ConfigError> {
        for a in self.listen.iter().chain(&self.bootstrap) {
            a.parse::<libp2p::Multiaddr>()
                .map_err(|_| ConfigError::BadAddress(a.clone()))?;
        }
        if self.advert_interval_secs == 0 {
            return Err(ConfigError::BadDuration("advert_interval_secs"));
        }
        if self.advert_ttl_secs <= self.advert_interval_secs {
            return Err(ConfigError::BadDuration("advert_ttl_secs"));
        }
        if self.request_timeout_secs == 0 {
            return Err(ConfigError::BadDuration("request_timeout_secs"));
        }
        Ok(())
    }

    /// A configuration for tests and demos: loopback only, ephemeral ports, fast adverts.
    pub fn loopback() -> Self {
        Self {
            listen: vec![
                "/ip4/127.0.0.1/tcp/0".into(),
                "/ip4/127.0.0.1/udp/0/quic-v1".into(),
            ],
            advert_interval_secs: 5,
            advert_ttl_secs: 60,
            request_timeout_secs: 20,
            ..Self::default()
        }
    }

    pub(crate) fn request_timeout(&self) -> Duration {
        Duration::from_secs(self.request_timeout_secs)
    }
}
