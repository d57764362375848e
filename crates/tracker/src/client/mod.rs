//! The client side of the tracker protocol, sans-IO: tracker URLs and the HTTP announce
//! query ([`url`]), the HTTP announce response ([`http`]), the client's half of BEP 15
//! ([`udp`]), and the per-torrent [`Announcer`] state machine that decides which tracker to
//! ask, when, and with which event.
//!
//! Nothing here opens a socket or reads a clock: a driver (the `bitswarm-announce` crate)
//! sends what [`Announcer::poll_transmit`] hands out, feeds answers back through
//! `handle_udp`/`handle_http`/`handle_unreachable`, and calls `handle_timeout` at
//! [`Announcer::poll_timeout`].

mod announcer;
pub mod http;
mod model;
mod slot;
pub mod udp;
pub mod url;

pub use announcer::Announcer;
pub use model::{
    AnnounceProgress, ClientConfig, ClientEvent, Fault, Payload, RequestId, Timing, TrackerId,
    TrackerStatus, Transmit, EVENTS_QUEUE_MAX, TRACKERS_MAX, UDP_RETRANSMITS_MAX,
};

#[cfg(test)]
mod tests;
