//! End to end against libtorrent 2.0 (python3-libtorrent, driven by `support/lt_peer.py`):
//! the ~64 MiB multi-file fixture torrent goes from bitswarm to libtorrent and from libtorrent
//! to bitswarm over 127.0.0.1, and must arrive byte for byte.
//!
//! Each scenario takes the client under test as a parameter; the `harness_*` test runs it
//! with libtorrent in bitswarm's place, so a red bitswarm test next to a green harness test
//! points at bitswarm, not at the environment.

mod common;
mod support;

use support::{transfer, Client, Dialer};

/// `client` seeds; libtorrent downloads, dialling the seeder's listen port
/// (`handle.connect_peer`).
fn seeds_to_libtorrent(client: Client) {
    transfer(client, Client::Libtorrent, Dialer::Leecher);
}

/// libtorrent seeds (listening on 127.0.0.1:0); `client` downloads, dialling it (`--peer`).
fn downloads_from_libtorrent(client: Client) {
    transfer(Client::Libtorrent, client, Dialer::Leecher);
}

#[test]
fn bitswarm_seeds_to_libtorrent() {
    seeds_to_libtorrent(Client::Bitswarm);
}

#[test]
fn bitswarm_downloads_from_libtorrent() {
    downloads_from_libtorrent(Client::Bitswarm);
}

/// Both scenarios above are this one when libtorrent plays bitswarm's part.
#[test]
fn harness_libtorrent_to_libtorrent() {
    seeds_to_libtorrent(Client::Libtorrent);
}
