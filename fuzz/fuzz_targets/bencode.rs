//! Fuzz target: the bencode decoder never panics, and what it accepts re-encodes and decodes to
//! the same value.
#![no_main]

use bitswarm_bencode::{decode_with, Limits, OwnedValue};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    for limits in [Limits::DEFAULT, Limits::MESSAGE.strict()] {
        if let Ok(value) = decode_with(data, &limits) {
            assert_eq!(value.raw(), data);
            let owned = OwnedValue::from(&value);
            let again = owned.encode();
            let reparsed = decode_with(&again, &Limits::DEFAULT.strict()).expect("canonical re-encoding decodes");
            assert_eq!(OwnedValue::from(&reparsed), owned);
            if value.is_canonical() {
                assert_eq!(again, data);
            }
        }
    }
});
