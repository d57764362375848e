//! Choosing the piece length: the automatic rule and the check on an explicit one.

use crate::CreateError;

/// Smallest piece length [`auto_piece_length`] picks and an explicit one may have: 16 KiB, the
/// size of one block on the wire.
pub const PIECE_LENGTH_MIN: u32 = 16 * 1024;
/// Largest piece length [`auto_piece_length`] picks: 16 MiB.
pub const AUTO_PIECE_LENGTH_MAX: u32 = 16 * 1024 * 1024;
/// Largest explicit piece length accepted: 256 MiB (mktorrent's limit, `-l 28`).
pub const PIECE_LENGTH_MAX: u32 = 256 * 1024 * 1024;
/// The piece count [`auto_piece_length`] stays at or under when no clamp applies.
pub const AUTO_PIECE_COUNT_MAX: u64 = 2000;

/// The automatic piece length for `total_len` bytes of data.
///
/// The rule: the smallest power of two `p` with `ceil(total_len / p) <= 2000`
/// ([`AUTO_PIECE_COUNT_MAX`]), clamped to 16 KiB ..= 16 MiB. Without the clamp the torrent
/// then has between 1001 and 2000 pieces: `p / 2` would give more than 2000, so `p` gives
/// more than 1000. Data up to 2000 × 16 KiB = 32 768 000 bytes gets 16 KiB pieces (and fewer
/// pieces); data over 2000 × 8 MiB = 16 777 216 000 bytes gets 16 MiB pieces (and more than
/// 1000 pieces, unbounded). This is the same shape as mktorrent's and libtorrent's automatic
/// choice (a power of two aiming at a ~40 KB `pieces` string), with one exact threshold.
#[must_use]
pub fn auto_piece_length(total_len: u64) -> u32 {
    let wanted = total_len.div_ceil(AUTO_PIECE_COUNT_MAX);
    let p = wanted
        .checked_next_power_of_two()
        .unwrap_or(u64::from(AUTO_PIECE_LENGTH_MAX));
    let clamped = p.clamp(
        u64::from(PIECE_LENGTH_MIN),
        u64::from(AUTO_PIECE_LENGTH_MAX),
    );
    u32::try_from(clamped).unwrap_or(AUTO_PIECE_LENGTH_MAX)
}

/// Checks an explicit piece length: a power of two in `PIECE_LENGTH_MIN ..= PIECE_LENGTH_MAX`.
pub fn check_piece_length(piece_length: u32) -> Result<u32, CreateError> {
    if piece_length.is_power_of_two()
        && (PIECE_LENGTH_MIN..=PIECE_LENGTH_MAX).contains(&piece_length)
    {
        Ok(piece_length)
    } else {
        Err(CreateError::InvalidPieceLength { piece_length })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const KIB: u64 = 1024;
    const MIB: u64 = 1024 * 1024;

    #[test]
    fn small_inputs_get_the_minimum() {
        for len in [0, 1, 16 * KIB, MIB, 2000 * 16 * KIB] {
            assert_eq!(auto_piece_length(len), 16 * 1024, "len {len}");
        }
    }

    #[test]
    fn thresholds_are_exact() {
        // 2000 pieces of 2^k fit exactly; one byte more doubles the piece.
        for k in 14..24u32 {
            let p = 1u64 << k;
            assert_eq!(u64::from(auto_piece_length(2000 * p)), p, "k {k}");
            assert_eq!(u64::from(auto_piece_length(2000 * p + 1)), 2 * p, "k {k}");
        }
    }

    #[test]
    fn large_inputs_get_the_maximum() {
        assert_eq!(auto_piece_length(2000 * 8 * MIB + 1), 16 * 1024 * 1024);
        assert_eq!(auto_piece_length(1 << 50), 16 * 1024 * 1024);
        assert_eq!(auto_piece_length(u64::MAX), 16 * 1024 * 1024);
    }

    #[test]
    fn familiar_sizes() {
        assert_eq!(auto_piece_length(700 * MIB), 512 * 1024);
        assert_eq!(auto_piece_length(2048 * MIB), 2 * 1024 * 1024);
        assert_eq!(auto_piece_length(4700 * MIB), 4 * 1024 * 1024);
    }

    #[test]
    fn explicit_lengths() {
        assert!(check_piece_length(16 * 1024).is_ok());
        assert!(check_piece_length(256 * 1024 * 1024).is_ok());
        for bad in [0, 1, 8 * 1024, 16 * 1024 + 1, 3 * 65536, 512 * 1024 * 1024] {
            assert!(
                matches!(
                    check_piece_length(bad),
                    Err(CreateError::InvalidPieceLength { piece_length }) if piece_length == bad
                ),
                "{bad}"
            );
        }
    }

    proptest! {
        #[test]
        fn unclamped_sizes_get_1001_to_2000_pieces(len in (2000 * 16 * KIB + 1)..=(2000 * 8 * MIB)) {
            let p = auto_piece_length(len);
            prop_assert!(p.is_power_of_two());
            let pieces = len.div_ceil(u64::from(p));
            prop_assert!((1001..=2000).contains(&pieces), "len {} p {} pieces {}", len, p, pieces);
        }

        #[test]
        fn always_a_power_of_two_in_range(len in any::<u64>()) {
            let p = auto_piece_length(len);
            prop_assert!(p.is_power_of_two());
            prop_assert!((PIECE_LENGTH_MIN..=AUTO_PIECE_LENGTH_MAX).contains(&p));
        }
    }
}
