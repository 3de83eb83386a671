//! The entry header at the start of every arena block, and the one place
//! where 32- and 64-bit targets differ: how the string's length and the
//! block's capacity are stored (see the [interner's layout](super#layout)).
//!
//! - 64-bit: [`PackedLenCap`], both in one `usize`, 32 bits each.
//! - 32-bit: [`SplitLenCap`], two `u32` fields. A packed `usize` would leave
//!   16 bits per field there, too few for strings over 64 KiB.
//!
//! Both types are compiled and tested on every target; [`LenCap`] picks one.

use std::mem::{align_of, size_of};
use std::sync::atomic::AtomicUsize;

// `u32` → `usize` conversions below are lossless only if usize has at least 32 bits.
const _: () = assert!(
    usize::BITS >= 32,
    "stringtheory needs a pointer width of at least 32 bits"
);

/// Length and capacity packed into one `usize`, half the bits each.
///
/// Used on 64-bit targets (32 bits per field). On 32-bit targets the halves are
/// only 16 bits wide, which is the seed system's bug; `new` rejects any value
/// that does not fit, so even there it would refuse rather than corrupt.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(transparent)]
#[cfg_attr(not(target_pointer_width = "64"), allow(dead_code))]
pub(super) struct PackedLenCap(usize);

#[cfg_attr(not(target_pointer_width = "64"), allow(dead_code))]
impl PackedLenCap {
    const HALF_BITS: u32 = usize::BITS / 2;
    /// The largest value either field holds.
    pub(super) const FIELD_MAX: usize = (1 << Self::HALF_BITS) - 1;

    pub(super) fn new(len: usize, cap: usize) -> Option<Self> {
        if len > Self::FIELD_MAX || cap > Self::FIELD_MAX {
            return None;
        }
        Some(Self((len << Self::HALF_BITS) | cap))
    }

    pub(super) fn len(self) -> usize {
        self.0 >> Self::HALF_BITS
    }

    pub(super) fn cap(self) -> usize {
        self.0 & Self::FIELD_MAX
    }
}

/// Length and capacity as two `u32` fields. Used on 32-bit targets, where it
/// holds every `usize`; on 64-bit targets it would reject values above `u32::MAX`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(C)]
#[cfg_attr(target_pointer_width = "64", allow(dead_code))]
pub(super) struct SplitLenCap {
    len: u32,
    cap: u32,
}

#[cfg_attr(target_pointer_width = "64", allow(dead_code))]
impl SplitLenCap {
    /// The largest value either field holds.
    pub(super) const FIELD_MAX: usize = if usize::BITS > u32::BITS {
        u32::MAX as usize
    } else {
        usize::MAX
    };

    pub(super) fn new(len: usize, cap: usize) -> Option<Self> {
        Some(Self {
            len: u32::try_from(len).ok()?,
            cap: u32::try_from(cap).ok()?,
        })
    }

    pub(super) fn len(self) -> usize {
        // Lossless: usize has at least 32 bits (asserted above).
        self.len as usize
    }

    pub(super) fn cap(self) -> usize {
        self.cap as usize
    }
}

/// The header field layout for this target: see the module documentation.
#[cfg(target_pointer_width = "64")]
pub(super) type LenCap = PackedLenCap;
#[cfg(not(target_pointer_width = "64"))]
pub(super) type LenCap = SplitLenCap;

/// The header at the start of every block in the arena.
#[repr(C)]
pub(super) struct EntryHeader {
    /// Live handles to this entry; 0 for a free block.
    pub(super) refs: AtomicUsize,
    /// The string's length and the block's capacity after the header.
    pub(super) lencap: LenCap,
}

pub(super) const HEADER_SIZE: usize = size_of::<EntryHeader>();
/// Every block starts at a multiple of this, so headers are aligned.
pub(super) const BLOCK_ALIGN: usize = align_of::<EntryHeader>();
const _: () = assert!(HEADER_SIZE % BLOCK_ALIGN == 0);

/// The largest arena for which every block's capacity fits the header field.
pub(super) const MAX_ARENA_BYTES: usize = {
    let by_field = match HEADER_SIZE.checked_add(LenCap::FIELD_MAX) {
        Some(n) => n,
        None => usize::MAX,
    };
    // `Layout` refuses sizes above isize::MAX.
    let by_layout = isize::MAX.unsigned_abs();
    let max = if by_field < by_layout { by_field } else { by_layout };
    max - max % BLOCK_ALIGN
};

/// Rounds `n` up to a multiple of `BLOCK_ALIGN`, or `None` on overflow.
pub(super) fn round_up_to_block(n: usize) -> Option<usize> {
    Some(n.checked_add(BLOCK_ALIGN - 1)? / BLOCK_ALIGN * BLOCK_ALIGN)
}

#[cfg(test)]
mod tests {
    use super::*;

    const MIB: usize = 1024 * 1024;

    #[test]
    fn the_entry_header_layout_matches_the_pointer_width() {
        let word = size_of::<usize>();
        if cfg!(target_pointer_width = "64") {
            // One packed usize for length and capacity, after the count.
            assert_eq!(size_of::<LenCap>(), word);
            assert_eq!(HEADER_SIZE, 2 * word);
        } else {
            // Two u32 fields, after the count.
            assert_eq!(size_of::<LenCap>(), 2 * size_of::<u32>());
            assert_eq!(HEADER_SIZE, word + 2 * size_of::<u32>());
        }
        assert_eq!(BLOCK_ALIGN, align_of::<usize>());
    }

    #[test]
    fn regression_32bit_header_overflow_split_fields_hold_multi_mib_values() {
        let seed_field_max = usize::from(u16::MAX);
        for len in [seed_field_max + 1, 3 * MIB, 5 * MIB] {
            let cap = round_up_to_block(len).expect("small");
            let lencap = SplitLenCap::new(len, cap).expect("u32 fields hold multi-MiB values");
            assert_eq!((lencap.len(), lencap.cap()), (len, cap));
        }
        assert_eq!(
            SplitLenCap::new(SplitLenCap::FIELD_MAX, 0).map(SplitLenCap::len),
            Some(SplitLenCap::FIELD_MAX)
        );
    }

    #[test]
    fn regression_32bit_header_overflow_packed_fields_reject_instead_of_corrupting() {
        let max = PackedLenCap::FIELD_MAX;
        assert_eq!(max, (1usize << (usize::BITS / 2)) - 1);
        let full = PackedLenCap::new(max, max).expect("the maximum fits");
        assert_eq!((full.len(), full.cap()), (max, max));
        let mixed = PackedLenCap::new(max, 0).expect("fits");
        assert_eq!((mixed.len(), mixed.cap()), (max, 0));
        assert_eq!(PackedLenCap::new(max + 1, 0), None);
        assert_eq!(PackedLenCap::new(0, max + 1), None);
        if cfg!(target_pointer_width = "32") {
            // Exactly the seed's layout: 16-bit halves, which must refuse 5 MiB.
            assert_eq!(max, usize::from(u16::MAX));
            assert_eq!(PackedLenCap::new(5 * MIB, 5 * MIB), None);
        }
    }
}
