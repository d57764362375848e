//! Fuzz target: the extension-protocol parsers (extension handshake, `ut_metadata`, `ut_pex`)
//! never panic, and whatever they accept re-encodes to bytes that parse to the same value.
#![no_main]

use bitswarm_wire::{ExtendedHandshake, MetadataMessage, PexMessage};
use bytes::Bytes;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let payload = Bytes::copy_from_slice(data);
    if let Ok(hs) = ExtendedHandshake::parse(&payload) {
        assert_eq!(ExtendedHandshake::parse(&hs.encode()), Ok(hs));
    }
    if let Ok(m) = MetadataMessage::parse(&payload) {
        assert_eq!(MetadataMessage::parse(&m.encode()), Ok(m));
    }
    if let Ok(m) = PexMessage::parse(&payload) {
        assert_eq!(PexMessage::parse(&m.encode()), Ok(m));
    }
});
