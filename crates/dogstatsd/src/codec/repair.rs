//! Tags with invalid UTF-8: repaired, as Saluki does, instead of rejecting
//! their message (see [`crate::utf8`] for the replacement rule).
//!
//! [`repair_tags`] runs only after [`parse_message`](super::parse_message)
//! has refused a message as [`InvalidUtf8`](super::DecodeError::InvalidUtf8),
//! so valid traffic never pays for it. It copies the message with every `|#`
//! tag field made valid, and leaves everything else as it was: if the invalid
//! bytes were elsewhere (a metric name, an event's title or text, a service
//! check's message), parsing the copy fails the same way and the message is
//! still rejected.
//!
//! Which fields are tag fields follows each kind's grammar, so that bytes
//! that only look like `|#` are left alone: a metric's fields after
//! `name:values`; an event's fields after the title and text, whose byte
//! lengths the `_e{title,text}` header gives (repairing only later fields
//! keeps those lengths right); a service check's fields after `name|status`,
//! up to `m:`, which runs to the end of the line.

use crate::utf8::repair_utf8;

/// A copy of `message` with the invalid UTF-8 of its tag fields replaced, or
/// `None` when no tag field needed it (or the message's shape hides them).
pub fn repair_tags(message: &[u8]) -> Option<Vec<u8>> {
    let (start, stop_at_message) = optional_fields_start(message)?;
    let mut out: Option<Vec<u8>> = None;
    let mut copied = 0;
    let mut field_start = start;
    while field_start <= message.len() {
        let rest = message.get(field_start..)?;
        let field_end = field_start + memchr::memchr(b'|', rest).unwrap_or(rest.len());
        let field = message.get(field_start..field_end)?;
        if stop_at_message && field.starts_with(b"m:") {
            break;
        }
        if let Some(tags) = field.strip_prefix(b"#") {
            if std::str::from_utf8(tags).is_err() {
                let out = out.get_or_insert_with(|| Vec::with_capacity(message.len() + 8));
                out.extend_from_slice(message.get(copied..field_start)?);
                out.push(b'#');
                out.extend_from_slice(repair_utf8(tags).as_bytes());
                copied = field_end;
            }
        }
        field_start = field_end + 1;
    }
    let mut out = out?;
    out.extend_from_slice(message.get(copied..)?);
    Some(out)
}

/// Where the optional `|`-separated fields of `message` start, and whether an
/// `m:` field ends them (service checks).
fn optional_fields_start(message: &[u8]) -> Option<(usize, bool)> {
    if let Some(rest) = message.strip_prefix(b"_e{") {
        let close = memchr::memchr(b'}', rest)?;
        let lengths = rest.get(..close)?;
        let comma = memchr::memchr(b',', lengths)?;
        let title = parse_len(lengths.get(..comma)?)?;
        let text = parse_len(lengths.get(comma + 1..)?)?;
        // `_e{` + lengths + `}:` + title + `|` + text, then `|`.
        let text_end = (3 + close + 2).checked_add(title)?.checked_add(1)?.checked_add(text)?;
        (message.get(text_end) == Some(&b'|')).then_some((text_end + 1, false))
    } else if let Some(rest) = message.strip_prefix(b"_sc|") {
        let name_end = memchr::memchr(b'|', rest)?;
        let after_name = rest.get(name_end + 1..)?;
        let status_end = memchr::memchr(b'|', after_name)?;
        Some((4 + name_end + 1 + status_end + 1, true))
    } else {
        memchr::memchr(b'|', message).map(|i| (i + 1, false))
    }
}

fn parse_len(digits: &[u8]) -> Option<usize> {
    if digits.is_empty() || !digits.iter().all(u8::is_ascii_digit) {
        return None;
    }
    std::str::from_utf8(digits).ok()?.parse().ok()
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;
    use crate::codec::{parse_message, CodecConfig, DecodeError, Message};

    fn repaired(message: &[u8]) -> Option<String> {
        repair_tags(message).map(|m| String::from_utf8(m).expect("valid UTF-8 after repair"))
    }

    #[test]
    fn each_invalid_run_in_a_metrics_tags_becomes_one_replacement() {
        assert_eq!(
            repaired(b"m:1|c|#env:\xff\xfeprod,ok|@0.5").as_deref(),
            Some("m:1|c|#env:\u{FFFD}prod,ok|@0.5")
        );
        // Two tag fields (the last one wins when parsed): both repaired.
        assert_eq!(
            repaired(b"m:1|c|#a\xff|#b\xc3").as_deref(),
            Some("m:1|c|#a\u{FFFD}|#b\u{FFFD}")
        );
    }

    #[test]
    fn invalid_bytes_outside_the_tags_are_left_for_the_parser_to_refuse() {
        assert_eq!(repaired(b"m\xff:1|c|#ok"), None, "only the name is invalid");
        let copy = repair_tags(b"m\xff:1|c|#a\xff").unwrap();
        assert_eq!(
            parse_message(&copy, &CodecConfig::default()),
            Err(DecodeError::InvalidUtf8)
        );
        assert_eq!(repaired(b"m:1\xff|c"), None);
        assert_eq!(repaired(b"no fields \xff"), None);
    }

    #[test]
    fn an_events_title_and_text_are_skipped_by_their_lengths() {
        // The text, `a|#x\xff`, looks like a tag field but is not one.
        let copy = repair_tags(b"_e{2,5}:hi|a|#x\xff|#t:\xe2\x82|d:1").unwrap();
        assert_eq!(copy, b"_e{2,5}:hi|a|#x\xff|#t:\xef\xbf\xbd|d:1");
        // The text is still invalid, so the event is still refused.
        assert_eq!(
            parse_message(&copy, &CodecConfig::default()),
            Err(DecodeError::InvalidUtf8)
        );
        let ok = repaired(b"_e{2,4}:hi|text|#t:\xe2\x82,u|k:key").unwrap();
        assert_eq!(ok, "_e{2,4}:hi|text|#t:\u{FFFD},u|k:key");
        let Ok(Message::Event(e)) = parse_message(ok.as_bytes(), &CodecConfig::default()) else {
            panic!("the repaired event parses")
        };
        assert_eq!(e.tags.iter().collect::<Vec<_>>(), ["t:\u{FFFD}", "u"]);
        assert_eq!(repaired(b"_e{9,4}:hi|text|#\xff"), None, "lengths past the end");
    }

    #[test]
    fn a_service_checks_message_is_not_a_tag_field() {
        let copy = repair_tags(b"_sc|chk|0|#a:\xff|m:down |#b:\xff").unwrap();
        assert_eq!(
            copy,
            "_sc|chk|0|#a:\u{FFFD}|m:down |#b:"
                .bytes()
                .chain([0xff])
                .collect::<Vec<u8>>()
        );
        assert_eq!(
            repaired(b"_sc|chk|1|#a:\xff,b|h:host").as_deref(),
            Some("_sc|chk|1|#a:\u{FFFD},b|h:host")
        );
    }

    proptest! {
        #[test]
        fn property_test_repair_never_panics_and_valid_messages_need_none(bytes in proptest::collection::vec(any::<u8>(), 0..256)) {
            let out = repair_tags(&bytes);
            if std::str::from_utf8(&bytes).is_ok() {
                prop_assert!(out.is_none());
            }
            if let Some(out) = out {
                // Only tag fields changed: the `|` structure is the same.
                let count = |b: &[u8]| b.iter().filter(|&&c| c == b'|').count();
                prop_assert_eq!(count(&out), count(&bytes));
            }
        }
    }
}
