//! Fuzz target: magnet parsing never panics, and every accepted link emits a link that parses
//! back to the same value.
#![no_main]

use bitswarm_metainfo::MagnetLink;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    if let Ok(link) = MagnetLink::parse(text) {
        let emitted = link.to_string();
        assert_eq!(MagnetLink::parse(&emitted), Ok(link), "{emitted}");
    }
});
