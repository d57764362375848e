//! The decoder: recursive descent over a byte slice, bounded in depth, count and size.

use crate::error::DecodeError;
use crate::value::{Dict, Kind, Value};

/// Named bounds on what the decoder accepts. Every bound is checked before the memory it
/// protects is committed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Largest input accepted, in bytes.
    pub input_len_max: usize,
    /// Longest byte string accepted, in bytes.
    pub string_len_max: usize,
    /// Deepest nesting of lists and dictionaries accepted.
    pub depth_max: usize,
    /// Most values (of any kind, at any depth) in one input.
    pub items_max: usize,
    /// Reject dictionaries whose keys are unsorted or duplicated, instead of flagging them.
    pub strict_key_order: bool,
}

impl Limits {
    /// Bounds for `.torrent` files and other trusted-size documents: 64 MiB input, 2 million
    /// values, nesting 64 deep; non-canonical key order accepted and flagged.
    pub const DEFAULT: Self = Self {
        input_len_max: 64 << 20,
        string_len_max: 64 << 20,
        depth_max: 64,
        items_max: 2_000_000,
        strict_key_order: false,
    };

    /// Bounds for small network messages (peer extension messages, tracker and DHT packets):
    /// 1 MiB input, 10,000 values, nesting 16 deep.
    pub const MESSAGE: Self = Self {
        input_len_max: 1 << 20,
        string_len_max: 1 << 20,
        depth_max: 16,
        items_max: 10_000,
        strict_key_order: false,
    };

    /// These limits, but rejecting unsorted or duplicate dictionary keys.
    #[must_use]
    pub const fn strict(self) -> Self {
        Self {
            strict_key_order: true,
            ..self
        }
    }
}

impl Default for Limits {
    fn default() -> Self {
        Self::DEFAULT
    }
}

/// Decodes exactly one value that spans the whole input, with [`Limits::DEFAULT`].
pub fn decode(input: &[u8]) -> Result<Value<'_>, DecodeError> {
    decode_with(input, &Limits::DEFAULT)
}

/// Decodes exactly one value that spans the whole input.
pub fn decode_with<'a>(input: &'a [u8], limits: &Limits) -> Result<Value<'a>, DecodeError> {
    let (value, used) = decode_prefix(input, limits)?;
    if used != input.len() {
        return Err(DecodeError::TrailingBytes {
            offset: used,
            count: input.len() - used,
        });
    }
    Ok(value)
}

/// Decodes one value from the start of the input and returns it with the number of bytes it
/// used; the rest of the input is left alone (BEP 9 metadata messages carry raw bytes after a
/// bencoded header).
pub fn decode_prefix<'a>(
    input: &'a [u8],
    limits: &Limits,
) -> Result<(Value<'a>, usize), DecodeError> {
    if input.len() > limits.input_len_max {
        return Err(DecodeError::InputTooLarge {
            len: input.len(),
            max: limits.input_len_max,
        });
    }
    let mut decoder = Decoder {
        input,
        pos: 0,
        items: 0,
        limits,
    };
    let value = decoder.value(0)?;
    Ok((value, decoder.pos))
}

/// Longest run of digits in an integer: 19 digits hold every i64 magnitude.
const INT_DIGITS_MAX: usize = 19;
/// Longest run of digits in a string length.
const LENGTH_DIGITS_MAX: usize = 19;

struct Decoder<'a, 'l> {
    input: &'a [u8],
    pos: usize,
    items: usize,
    limits: &'l Limits,
}

impl<'a> Decoder<'a, '_> {
    fn peek(&self) -> Result<u8, DecodeError> {
        self.input
            .get(self.pos)
            .copied()
            .ok_or(DecodeError::UnexpectedEof { offset: self.pos })
    }

    fn value(&mut self, depth: usize) -> Result<Value<'a>, DecodeError> {
        let start = self.pos;
        self.items += 1;
        if self.items > self.limits.items_max {
            return Err(DecodeError::TooManyItems {
                offset: start,
                max: self.limits.items_max,
            });
        }
        let kind = match self.peek()? {
            b'i' => Kind::Int(self.int()?),
            b'0'..=b'9' => Kind::Bytes(self.bytes()?),
            b'l' => Kind::List(self.list(depth)?),
            b'd' => Kind::Dict(self.dict(depth)?),
            byte => {
                return Err(DecodeError::UnexpectedByte {
                    offset: start,
                    byte,
                    expected: "a value ('i', 'l', 'd' or a digit)",
                })
            }
        };
        Ok(Value {
            raw: &self.input[start..self.pos],
            offset: start,
            kind,
        })
    }

    fn int(&mut self) -> Result<i64, DecodeError> {
        let start = self.pos;
        self.pos += 1; // 'i'
        let negative = self.peek()? == b'-';
        if negative {
            self.pos += 1;
        }
        let digits_start = self.pos;
        let magnitude = self.digits(
            INT_DIGITS_MAX,
            DecodeError::IntegerOverflow { offset: start },
        )?;
        let digits = &self.input[digits_start..self.pos];
        let malformed = DecodeError::MalformedInteger { offset: start };
        if digits.is_empty() || (digits[0] == b'0' && (digits.len() > 1 || negative)) {
            return Err(if digits.is_empty() && self.peek()? != b'e' {
                self.unexpected("a digit")
            } else {
                malformed
            });
        }
        self.expect(b'e', "'e' closing the integer")?;
        let value = if negative {
            0i64.checked_sub_unsigned(magnitude)
        } else {
            i64::try_from(magnitude).ok()
        };
        value.ok_or(DecodeError::IntegerOverflow { offset: start })
    }

    fn bytes(&mut self) -> Result<&'a [u8], DecodeError> {
        let start = self.pos;
        let len = self.digits(
            LENGTH_DIGITS_MAX,
            DecodeError::MalformedLength { offset: start },
        )?;
        if self.pos - start > 1 && self.input[start] == b'0' {
            return Err(DecodeError::MalformedLength { offset: start });
        }
        self.expect(b':', "':' after a string length")?;
        if len > self.limits.string_len_max as u64 {
            return Err(DecodeError::StringTooLong {
                offset: start,
                len,
                max: self.limits.string_len_max,
            });
        }
        let remaining = (self.input.len() - self.pos) as u64;
        if len > remaining {
            return Err(DecodeError::LengthPastEnd { offset: start, len });
        }
        // `len <= remaining`, which is a usize, so this cannot truncate.
        let end = self.pos + len as usize;
        let bytes = &self.input[self.pos..end];
        self.pos = end;
        Ok(bytes)
    }

    fn list(&mut self, depth: usize) -> Result<Vec<Value<'a>>, DecodeError> {
        self.enter(depth)?;
        let mut items = Vec::new();
        while self.peek()? != b'e' {
            items.push(self.value(depth + 1)?);
        }
        self.pos += 1;
        Ok(items)
    }

    fn dict(&mut self, depth: usize) -> Result<Dict<'a>, DecodeError> {
        self.enter(depth)?;
        let mut entries: Vec<(&'a [u8], Value<'a>)> = Vec::new();
        let mut canonical = true;
        while self.peek()? != b'e' {
            let key_offset = self.pos;
            if !self.peek()?.is_ascii_digit() {
                return Err(self.unexpected("a byte-string dictionary key or 'e'"));
            }
            self.count_item(key_offset)?;
            let key = self.bytes()?;
            if let Some((previous, _)) = entries.last() {
                if key <= *previous {
                    canonical = false;
                    if self.limits.strict_key_order {
                        return Err(if key == *previous {
                            DecodeError::DuplicateKey { offset: key_offset }
                        } else {
                            DecodeError::UnsortedKey { offset: key_offset }
                        });
                    }
                }
            }
            let value = self.value(depth + 1)?;
            entries.push((key, value));
        }
        self.pos += 1;
        Ok(Dict { entries, canonical })
    }

    fn enter(&mut self, depth: usize) -> Result<(), DecodeError> {
        if depth >= self.limits.depth_max {
            return Err(DecodeError::DepthExceeded {
                offset: self.pos,
                max: self.limits.depth_max,
            });
        }
        self.pos += 1; // 'l' or 'd'
        Ok(())
    }

    fn count_item(&mut self, offset: usize) -> Result<(), DecodeError> {
        self.items += 1;
        if self.items > self.limits.items_max {
            return Err(DecodeError::TooManyItems {
                offset,
                max: self.limits.items_max,
            });
        }
        Ok(())
    }

    /// Reads a run of ASCII digits (at most `max_digits`) as an unsigned number.
    fn digits(&mut self, max_digits: usize, too_long: DecodeError) -> Result<u64, DecodeError> {
        let start = self.pos;
        let mut n: u64 = 0;
        while let Some(&b) = self.input.get(self.pos) {
            if !b.is_ascii_digit() {
                break;
            }
            if self.pos - start == max_digits {
                return Err(too_long);
            }
            n = n * 10 + u64::from(b - b'0');
            self.pos += 1;
        }
        Ok(n)
    }

    fn expect(&mut self, byte: u8, expected: &'static str) -> Result<(), DecodeError> {
        if self.peek()? == byte {
            self.pos += 1;
            Ok(())
        } else {
            Err(self.unexpected(expected))
        }
    }

    fn unexpected(&self, expected: &'static str) -> DecodeError {
        match self.input.get(self.pos) {
            Some(&byte) => DecodeError::UnexpectedByte {
                offset: self.pos,
                byte,
                expected,
            },
            None => DecodeError::UnexpectedEof { offset: self.pos },
        }
    }
}
