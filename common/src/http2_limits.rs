//! The HTTP/2 limits every hop sets deliberately, so no caller can make one hop send what the next refuses.
//!
//! A header block over the receiver's `SETTINGS_MAX_HEADER_LIST_SIZE` is refused by h2: a stream reset while the
//! block fits in one frame, a GOAWAY (COMPRESSION_ERROR) for the whole connection once it spans CONTINUATION
//! frames. Each hop therefore accepts more than the hop before it may send: clients reach the gateway with at
//! most [`GATEWAY_MAX_HEADER_LIST_BYTES`]; the gateway adds its principal, signature and trace context (well under
//! 1 KiB) and services accept [`SERVICE_MAX_HEADER_LIST_BYTES`]; services answer with errors held within
//! [`crate::status_bounds`] (under 8 KiB on the wire) and the gateway accepts [`UPSTREAM_MAX_HEADER_LIST_BYTES`].

/// Request headers the gateway takes from a client (hyper's default, stated here on purpose).
pub const GATEWAY_MAX_HEADER_LIST_BYTES: u32 = 16 * 1024;
/// Request headers a service takes from the gateway or a peer service.
pub const SERVICE_MAX_HEADER_LIST_BYTES: u32 = 64 * 1024;
/// Response headers and trailers the gateway takes from a service.
pub const UPSTREAM_MAX_HEADER_LIST_BYTES: u32 = 64 * 1024;

/// The receive window a service grants each connection. h2 closes a connection whose peer sent more small
/// (under 256 bytes), still unread DATA frames than a budget of half this window allows; at 16 MiB (8 MiB of
/// budget) a stalled reader costs only its own stream long before that, because each stream may have at most
/// [`SERVICE_STREAM_WINDOW_BYTES`] unread and the gateway forwards request streams in large chunks
/// (`gateway::coalesce`).
pub const SERVICE_CONNECTION_WINDOW_BYTES: u32 = 16 * 1024 * 1024;
/// The receive window a service grants each stream (hyper's default, stated here on purpose).
pub const SERVICE_STREAM_WINDOW_BYTES: u32 = 1024 * 1024;
