//! A few HTTP/2 connections to each upstream service instead of one that every caller shares.
//!
//! All calls on one HTTP/2 connection share its fate: a GOAWAY or a dead socket ends every one of them. Callers are
//! spread over [`CONNECTIONS_PER_UPSTREAM`] connections by their principal, so whatever ends a connection ends
//! only the calls of the callers on it; a call that fails before it started is sent again on a freshly made
//! connection that then replaces the failed one.

use std::{
    hash::{BuildHasher, RandomState},
    sync::{Arc, RwLock},
    time::Duration,
};

use tonic::transport::{Channel, Endpoint};

/// How many connections the gateway keeps to each upstream service.
pub const CONNECTIONS_PER_UPSTREAM: usize = 4;
/// How long making a connection may take.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

/// The connections to one upstream service. Cloning shares them.
#[derive(Debug, Clone)]
pub struct Pool {
    endpoint: Endpoint,
    slots: Arc<[RwLock<Channel>]>,
    hasher: RandomState,
}

impl Pool {
    /// Connections to `endpoint`, made lazily and remade after failures, so a service that starts later or
    /// restarts is picked up. The HTTP/2 settings are the gateway's deliberate ones
    /// ([`highwind_common::http2_limits`]).
    pub fn new(endpoint: Endpoint) -> Self {
        let endpoint = endpoint
            .tcp_nodelay(true)
            .connect_timeout(CONNECT_TIMEOUT)
            .http2_keep_alive_interval(Duration::from_secs(30))
            .http2_max_header_list_size(highwind_common::http2_limits::UPSTREAM_MAX_HEADER_LIST_BYTES);
        let slots = (0..CONNECTIONS_PER_UPSTREAM).map(|_| RwLock::new(endpoint.connect_lazy())).collect();
        Self { endpoint, slots, hasher: RandomState::new() }
    }

    /// The slot for calls of `caller` (the principal; empty for anonymous calls) and its connection.
    pub fn pick(&self, caller: &[u8]) -> (usize, Channel) {
        let slot = usize::try_from(self.hasher.hash_one(caller)).unwrap_or_default() % self.slots.len();
        (slot, self.channel(slot))
    }

    /// The connection in `slot`.
    pub fn channel(&self, slot: usize) -> Channel {
        match self.slots[slot].read() {
            Ok(channel) => channel.clone(),
            Err(poisoned) => poisoned.into_inner().clone(),
        }
    }

    /// A newly made connection for `slot`, which replaces the one there.
    pub async fn reconnect(&self, slot: usize) -> Result<Channel, tonic::transport::Error> {
        let channel = self.endpoint.connect().await?;
        match self.slots[slot].write() {
            Ok(mut current) => *current = channel.clone(),
            Err(poisoned) => *poisoned.into_inner() = channel.clone(),
        }
        Ok(channel)
    }
}
