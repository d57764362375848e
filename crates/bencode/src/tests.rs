//! Unit and property tests: real vectors, every class of malformed input, round-trips.

use proptest::prelude::*;

use crate::{decode, decode_prefix, decode_with, DecodeError, Kind, Limits, OwnedValue};

#[test]
fn decodes_bep3_examples() {
    assert_eq!(decode(b"4:spam").unwrap().as_bytes(), Some(&b"spam"[..]));
    assert_eq!(decode(b"0:").unwrap().as_bytes(), Some(&b""[..]));
    assert_eq!(decode(b"i3e").unwrap().as_int(), Some(3));
    assert_eq!(decode(b"i-3e").unwrap().as_int(), Some(-3));
    assert_eq!(decode(b"i0e").unwrap().as_int(), Some(0));
    let list = decode(b"l4:spam4:eggse").unwrap();
    let items = list.as_list().unwrap();
    assert_eq!(items.len(), 2);
    assert_eq!(items[1].as_str(), Some("eggs"));
    let dict = decode(b"d3:cow3:moo4:spam4:eggse").unwrap();
    let d = dict.as_dict().unwrap();
    assert_eq!(d.get(b"cow").unwrap().as_str(), Some("moo"));
    assert!(d.is_canonical());
    let nested = decode(b"d4:spaml1:a1:bee").unwrap();
    assert_eq!(
        nested
            .as_dict()
            .unwrap()
            .get(b"spam")
            .unwrap()
            .as_list()
            .unwrap()
            .len(),
        2
    );
}

#[test]
fn integer_extremes() {
    assert_eq!(
        decode(b"i9223372036854775807e").unwrap().as_int(),
        Some(i64::MAX)
    );
    assert_eq!(
        decode(b"i-9223372036854775808e").unwrap().as_int(),
        Some(i64::MIN)
    );
    assert!(matches!(
        decode(b"i9223372036854775808e"),
        Err(DecodeError::IntegerOverflow { offset: 0 })
    ));
    assert!(matches!(
        decode(b"i-9223372036854775809e"),
        Err(DecodeError::IntegerOverflow { .. })
    ));
    assert!(matches!(
        decode(b"i99999999999999999999e"),
        Err(DecodeError::IntegerOverflow { .. })
    ));
}

#[test]
fn malformed_integers_are_typed_errors() {
    assert_eq!(
        decode(b"i03e"),
        Err(DecodeError::MalformedInteger { offset: 0 })
    );
    assert_eq!(
        decode(b"i-0e"),
        Err(DecodeError::MalformedInteger { offset: 0 })
    );
    assert_eq!(
        decode(b"ie"),
        Err(DecodeError::MalformedInteger { offset: 0 })
    );
    assert_eq!(
        decode(b"i-e"),
        Err(DecodeError::MalformedInteger { offset: 0 })
    );
    assert!(matches!(
        decode(b"i e"),
        Err(DecodeError::UnexpectedByte {
            offset: 1,
            byte: b' ',
            ..
        })
    ));
    assert!(matches!(
        decode(b"i1x"),
        Err(DecodeError::UnexpectedByte {
            offset: 2,
            byte: b'x',
            ..
        })
    ));
    assert!(matches!(
        decode(b"i--1e"),
        Err(DecodeError::UnexpectedByte { offset: 2, .. })
    ));
    assert!(matches!(
        decode(b"i+1e"),
        Err(DecodeError::UnexpectedByte { offset: 1, .. })
    ));
    assert_eq!(
        decode(b"i12"),
        Err(DecodeError::UnexpectedEof { offset: 3 })
    );
}

#[test]
fn malformed_strings_are_typed_errors() {
    assert_eq!(
        decode(b"5:abc"),
        Err(DecodeError::LengthPastEnd { offset: 0, len: 5 })
    );
    assert_eq!(
        decode(b"03:abc"),
        Err(DecodeError::MalformedLength { offset: 0 })
    );
    assert!(matches!(
        decode(b"-3:abc"),
        Err(DecodeError::UnexpectedByte {
            offset: 0,
            byte: b'-',
            ..
        })
    ));
    assert_eq!(decode(b"3"), Err(DecodeError::UnexpectedEof { offset: 1 }));
    assert!(matches!(
        decode(b"3x"),
        Err(DecodeError::UnexpectedByte { offset: 1, .. })
    ));
    assert_eq!(
        decode(b"99999999999999999999:"),
        Err(DecodeError::MalformedLength { offset: 0 })
    );
    assert_eq!(
        decode(b"18446744073:x"),
        Err(DecodeError::StringTooLong {
            offset: 0,
            len: 18_446_744_073,
            max: 64 << 20
        })
    );
    let small = Limits {
        string_len_max: 4,
        ..Limits::DEFAULT
    };
    assert!(matches!(
        decode_with(b"5:abcde", &small),
        Err(DecodeError::StringTooLong { len: 5, max: 4, .. })
    ));
}

#[test]
fn truncation_anywhere_is_an_error_not_a_panic() {
    let full = b"d8:announce9:http://x/4:infod6:lengthi12e4:name1:a12:piece lengthi16384e6:pieces20:aaaaaaaaaaaaaaaaaaaaee";
    assert!(decode(full).is_ok());
    for cut in 0..full.len() {
        let err = decode(&full[..cut]).unwrap_err();
        assert!(err.offset() <= cut, "cut {cut}: {err:?}");
    }
}

#[test]
fn trailing_bytes_are_rejected_but_prefix_decoding_allows_them() {
    assert_eq!(
        decode(b"i1eX"),
        Err(DecodeError::TrailingBytes {
            offset: 3,
            count: 1
        })
    );
    let (v, used) = decode_prefix(b"d1:ai1eeRAW", &Limits::DEFAULT).unwrap();
    assert_eq!(used, 8);
    assert_eq!(v.raw(), b"d1:ai1ee");
}

#[test]
fn nesting_past_the_limit_is_rejected() {
    let limits = Limits {
        depth_max: 4,
        ..Limits::DEFAULT
    };
    assert!(decode_with(b"llllee ee", &limits).is_err());
    assert!(decode_with(b"lllleeee", &limits).is_ok());
    assert_eq!(
        decode_with(b"llllleeeee", &limits),
        Err(DecodeError::DepthExceeded { offset: 4, max: 4 })
    );
    // The default bound holds against a deep input without exhausting the stack.
    let deep: Vec<u8> = std::iter::repeat_n(b'l', 100_000)
        .chain(std::iter::repeat_n(b'e', 100_000))
        .collect();
    assert!(matches!(
        decode(&deep),
        Err(DecodeError::DepthExceeded { max: 64, .. })
    ));
}

#[test]
fn item_and_size_limits() {
    let limits = Limits {
        items_max: 3,
        ..Limits::DEFAULT
    };
    assert!(decode_with(b"li1ei2ee", &limits).is_ok());
    assert!(matches!(
        decode_with(b"li1ei2ei3ee", &limits),
        Err(DecodeError::TooManyItems { offset: 7, max: 3 })
    ));
    assert!(matches!(
        decode_with(
            b"d1:ai1ee",
            &Limits {
                items_max: 2,
                ..Limits::DEFAULT
            }
        ),
        Err(DecodeError::TooManyItems { .. })
    ));
    let tiny = Limits {
        input_len_max: 2,
        ..Limits::DEFAULT
    };
    assert_eq!(
        decode_with(b"i10e", &tiny),
        Err(DecodeError::InputTooLarge { len: 4, max: 2 })
    );
}

#[test]
fn dictionary_keys_must_be_strings() {
    assert!(matches!(
        decode(b"di1ei2ee"),
        Err(DecodeError::UnexpectedByte {
            offset: 1,
            byte: b'i',
            ..
        })
    ));
    assert_eq!(
        decode(b"d1:a"),
        Err(DecodeError::UnexpectedEof { offset: 4 })
    );
}

#[test]
fn unsorted_and_duplicate_keys_are_flagged_or_rejected() {
    let unsorted = b"d1:bi1e1:ai2ee";
    let v = decode(unsorted).unwrap();
    assert!(!v.as_dict().unwrap().is_canonical());
    assert!(!v.is_canonical());
    assert_eq!(v.as_dict().unwrap().get(b"a").unwrap().as_int(), Some(2));
    assert_eq!(
        decode_with(unsorted, &Limits::DEFAULT.strict()),
        Err(DecodeError::UnsortedKey { offset: 7 })
    );
    let dup = b"d1:ai1e1:ai2ee";
    let v = decode(dup).unwrap();
    assert_eq!(v.as_dict().unwrap().len(), 2);
    assert_eq!(v.as_dict().unwrap().get(b"a").unwrap().as_int(), Some(1));
    assert_eq!(
        decode_with(dup, &Limits::DEFAULT.strict()),
        Err(DecodeError::DuplicateKey { offset: 7 })
    );
    // Nested non-canonical dictionaries make the outer value non-canonical too.
    assert!(!decode(b"d1:xd1:bi1e1:ai2eee").unwrap().is_canonical());
}

#[test]
fn raw_spans_are_exact_even_when_not_canonical() {
    let input = b"d4:infod4:name1:x6:lengthi1eee";
    let v = decode(input).unwrap();
    let info = v.as_dict().unwrap().get(b"info").unwrap();
    assert_eq!(info.raw(), b"d4:name1:x6:lengthi1ee");
    assert_eq!(info.offset(), 7);
    // Re-encoding canonicalises; the raw span keeps the original order.
    assert_eq!(OwnedValue::from(info).encode(), b"d6:lengthi1e4:name1:xe");
}

#[test]
fn encoder_writes_canonical_form() {
    let v = OwnedValue::dict()
        .insert("spam", OwnedValue::List(vec!["a".into(), "b".into()]))
        .insert("cow", "moo".into())
        .insert("n", OwnedValue::Int(-42));
    assert_eq!(v.encode(), b"d3:cow3:moo1:ni-42e4:spaml1:a1:bee");
    assert_eq!(
        OwnedValue::Int(i64::MIN).encode(),
        b"i-9223372036854775808e"
    );
    assert_eq!(OwnedValue::Int(0).encode(), b"i0e");
}

#[test]
fn kinds_are_reported() {
    let v = decode(b"li1e0:ledee").unwrap();
    let names: Vec<_> = v
        .as_list()
        .unwrap()
        .iter()
        .map(crate::Value::kind_name)
        .collect();
    assert_eq!(names, ["integer", "byte string", "list", "dictionary"]);
    assert!(matches!(v.kind(), Kind::List(_)));
}

fn arb_value() -> impl Strategy<Value = OwnedValue> {
    let leaf = prop_oneof![
        any::<i64>().prop_map(OwnedValue::Int),
        proptest::collection::vec(any::<u8>(), 0..24).prop_map(OwnedValue::Bytes),
    ];
    leaf.prop_recursive(5, 64, 6, |inner| {
        prop_oneof![
            proptest::collection::vec(inner.clone(), 0..6).prop_map(OwnedValue::List),
            proptest::collection::btree_map(
                proptest::collection::vec(any::<u8>(), 0..8),
                inner,
                0..6
            )
            .prop_map(OwnedValue::Dict),
        ]
    })
}

proptest! {
    #[test]
    fn round_trip(value in arb_value()) {
        let bytes = value.encode();
        let decoded = decode_with(&bytes, &Limits::DEFAULT.strict()).unwrap();
        prop_assert_eq!(decoded.raw(), &bytes[..]);
        prop_assert!(decoded.is_canonical());
        prop_assert_eq!(OwnedValue::from(&decoded), value);
    }

    #[test]
    fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..256)) {
        if let Err(e) = decode(&bytes) {
            prop_assert!(e.offset() <= bytes.len());
        }
    }

    #[test]
    fn mutated_valid_input_never_panics(value in arb_value(), pos in any::<usize>(), byte in any::<u8>()) {
        let mut bytes = value.encode();
        if !bytes.is_empty() {
            let i = pos % bytes.len();
            bytes[i] = byte;
        }
        let _ = decode_with(&bytes, &Limits::MESSAGE);
    }
}
