//! End to end against Transmission 3.00 (`transmission-daemon`, driven by
//! `transmission-remote`): the ~64 MiB multi-file fixture torrent goes from bitswarm to
//! Transmission and from Transmission to bitswarm over 127.0.0.1, byte for byte.
//!
//! Transmission will not dial loopback peers it hears of (from trackers or PEX) and cannot be
//! told to dial one, but it accepts incoming connections: so in both directions the other
//! client dials Transmission's peer port. A BitTorrent connection is symmetric once the
//! handshakes are done, so a seeder dialling its leecher is an ordinary transfer.
//!
//! Each scenario takes the client under test as a parameter; the `harness_*` tests run them
//! with libtorrent in bitswarm's place. Transmission unchokes and declares interest only on its
//! 10-second rechoke pulse, so each transfer starts after up to ~10 s of silence.

mod common;
mod support;

use support::{transfer, Client, Dialer};

/// `client` seeds and dials Transmission, which downloads.
fn seeds_to_transmission(client: Client) {
    transfer(client, Client::Transmission, Dialer::Seeder);
}

/// Transmission seeds; `client` downloads, dialling Transmission's peer port.
fn downloads_from_transmission(client: Client) {
    transfer(Client::Transmission, client, Dialer::Leecher);
}

#[test]
fn bitswarm_seeds_to_transmission() {
    seeds_to_transmission(Client::Bitswarm);
}

#[test]
fn bitswarm_downloads_from_transmission() {
    downloads_from_transmission(Client::Bitswarm);
}

#[test]
fn harness_libtorrent_seeds_to_transmission() {
    seeds_to_transmission(Client::Libtorrent);
}

#[test]
fn harness_libtorrent_downloads_from_transmission() {
    downloads_from_transmission(Client::Libtorrent);
}
