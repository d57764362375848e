//! Fuzz target: KRPC parsing never panics, every message it accepts re-encodes to bytes that
//! parse to the same message, and a `Dht` fed the bytes (as datagrams from a few sources,
//! with timers in between) never panics and keeps its bounds.
#![no_main]

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use bitswarm_dht::krpc::Message;
use bitswarm_dht::{Dht, DhtConfig, REQUESTS_IN_FLIGHT_MAX};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|input: &[u8]| {
    if let Ok(msg) = Message::parse(input) {
        let again = msg.encode();
        if again.len() <= bitswarm_dht::krpc::DATAGRAM_LEN_MAX {
            assert_eq!(Message::parse(&again).ok(), Some(msg));
        }
    }
    let now = Instant::now();
    let mut dht = Dht::new(DhtConfig::default(), 1);
    let router: SocketAddr = ([127, 0, 0, 1], 6881).into();
    dht.bootstrap(now, &[router]);
    // The first byte picks the source; 0xff-separated chunks are separate datagrams.
    let Some((&control, data)) = input.split_first() else {
        return;
    };
    for (i, chunk) in data.split(|b| *b == 0xff).enumerate() {
        let from: SocketAddr = ([127, 0, 0, 1 + (control.wrapping_add(i as u8) % 3)], 6881).into();
        let t = now + Duration::from_millis(250 * i as u64);
        dht.handle_datagram(t, from, chunk);
        dht.handle_timeout(t);
        while dht.poll_transmit().is_some() {}
        while dht.poll_event().is_some() {}
    }
    assert!(dht.stats().in_flight <= REQUESTS_IN_FLIGHT_MAX);
});
