//! Repairing tags that are not valid UTF-8, as Saluki does
//! (DataDog/saluki `lib/saluki-io/src/deser/codec/dogstatsd/helpers.rs`,
//! `tags` and `to_valid_utf8`): each contiguous run of invalid bytes becomes
//! **one** U+FFFD (`�`), valid text is kept as is, and the message is not
//! rejected.
//!
//! One replacement per run, not per invalid sequence: `a\xff\xfeb` becomes
//! `a�b` where [`String::from_utf8_lossy`] would give `a��b`. A U+FFFD that
//! was already in the input is valid text and is kept, even next to a run.
//!
//! The Go Agent does not check tags at all (they stay arbitrary bytes in Go
//! strings until the payload encoders); Saluki's repair is what the issue
//! asks for, so that a tag holding, say, a truncated multi-byte character
//! still reaches the intake as valid UTF-8.

use std::borrow::Cow;

/// The replacement for one run of invalid bytes.
pub const REPLACEMENT: char = char::REPLACEMENT_CHARACTER;

/// `bytes` as UTF-8: borrowed when already valid, otherwise with each
/// contiguous run of invalid bytes replaced by one U+FFFD.
pub fn repair_utf8(bytes: &[u8]) -> Cow<'_, str> {
    match std::str::from_utf8(bytes) {
        Ok(s) => Cow::Borrowed(s),
        Err(_) => Cow::Owned(repair_owned(bytes)),
    }
}

fn repair_owned(bytes: &[u8]) -> String {
    let mut out = String::with_capacity(bytes.len() + REPLACEMENT.len_utf8());
    // `utf8_chunks` splits a run like `\xff\xfe` into several chunks with no
    // valid text between them; they must still give one replacement.
    let mut in_invalid_run = false;
    for chunk in bytes.utf8_chunks() {
        if !chunk.valid().is_empty() {
            out.push_str(chunk.valid());
            in_invalid_run = false;
        }
        if !chunk.invalid().is_empty() {
            if !in_invalid_run {
                out.push(REPLACEMENT);
            }
            in_invalid_run = true;
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    #[test]
    fn valid_text_is_borrowed_unchanged() {
        for s in ["", "env:prod", "café:crème", "emoji:🦀", "already:\u{FFFD}"] {
            let out = repair_utf8(s.as_bytes());
            assert!(matches!(out, Cow::Borrowed(_)), "{s:?}");
            assert_eq!(out, s);
        }
    }

    #[test]
    fn each_invalid_run_becomes_one_replacement() {
        let cases: [(&[u8], &str); 8] = [
            (b"a\xffb", "a\u{FFFD}b"),
            (b"a\xff\xfeb", "a\u{FFFD}b"),
            (b"\xff\xff\xff", "\u{FFFD}"),
            (b"a\xffb\xffc", "a\u{FFFD}b\u{FFFD}c"),
            // A truncated 3-byte sequence then a valid character.
            (b"euro:\xe2\x82", "euro:\u{FFFD}"),
            (b"euro:\xe2\x82x", "euro:\u{FFFD}x"),
            // A lone continuation byte, an overlong encoding, a surrogate.
            (b"\x80:\xc0\xaf:\xed\xa0\x80", "\u{FFFD}:\u{FFFD}:\u{FFFD}"),
            (b"\xf0\x9f\xa6", "\u{FFFD}"),
        ];
        for (input, expected) in cases {
            assert_eq!(repair_utf8(input), expected, "{input:?}");
        }
    }

    #[test]
    fn a_replacement_already_present_is_kept_beside_a_run() {
        assert_eq!(repair_utf8("\u{FFFD}".as_bytes()), "\u{FFFD}");
        let mut input = "x\u{FFFD}".as_bytes().to_vec();
        input.push(0xff);
        assert_eq!(repair_utf8(&input), "x\u{FFFD}\u{FFFD}");
    }

    #[test]
    fn saluki_differs_from_from_utf8_lossy_on_adjacent_sequences() {
        // from_utf8_lossy replaces each maximal invalid sequence; Saluki the run.
        let input = b"a\xff\xfeb";
        assert_eq!(String::from_utf8_lossy(input), "a\u{FFFD}\u{FFFD}b");
        assert_eq!(repair_utf8(input), "a\u{FFFD}b");
    }

    /// Bytes that are invalid wherever they stand and never complete a
    /// neighbour: continuation bytes, C0, C1, F5–FF.
    fn invalid_byte() -> impl Strategy<Value = u8> {
        prop_oneof![0x80u8..=0xbf, Just(0xc0u8), Just(0xc1u8), 0xf5u8..=0xff]
    }

    #[derive(Clone, Debug)]
    enum Piece {
        Text(String),
        Invalid(Vec<u8>),
    }

    fn piece() -> impl Strategy<Value = Piece> {
        prop_oneof![
            "[a-z:é🦀\u{FFFD}]{0,4}".prop_map(Piece::Text),
            proptest::collection::vec(invalid_byte(), 1..4).prop_map(Piece::Invalid),
        ]
    }

    proptest! {
        #[test]
        fn property_test_runs_of_invalid_bytes_become_one_replacement_each(pieces in proptest::collection::vec(piece(), 0..10)) {
            let mut input = Vec::new();
            let mut expected = String::new();
            let mut previous_invalid = false;
            for p in &pieces {
                match p {
                    Piece::Text(t) => {
                        input.extend_from_slice(t.as_bytes());
                        expected.push_str(t);
                        if !t.is_empty() {
                            previous_invalid = false;
                        }
                    }
                    Piece::Invalid(bytes) => {
                        input.extend_from_slice(bytes);
                        if !previous_invalid {
                            expected.push(REPLACEMENT);
                        }
                        previous_invalid = true;
                    }
                }
            }
            prop_assert_eq!(repair_utf8(&input), expected);
        }

        #[test]
        fn property_test_any_bytes_give_valid_text_that_keeps_every_valid_character(bytes in proptest::collection::vec(any::<u8>(), 0..64)) {
            let out = repair_utf8(&bytes);
            // Removing replacements from both sides leaves the same text:
            // nothing valid is lost, nothing else is added.
            let lossy: String = String::from_utf8_lossy(&bytes).chars().filter(|&c| c != REPLACEMENT).collect();
            let ours: String = out.chars().filter(|&c| c != REPLACEMENT).collect();
            prop_assert_eq!(ours, lossy);
            let two = "\u{FFFD}\u{FFFD}";
            let doubled = out.contains(two);
            prop_assert!(!doubled || String::from_utf8_lossy(&bytes).contains(two));
            prop_assert!(out.len() <= bytes.len() + REPLACEMENT.len_utf8() * (bytes.len() / 2 + 1));
        }
    }
}
