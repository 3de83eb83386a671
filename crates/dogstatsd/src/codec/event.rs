//! Event messages: `_e{<title bytes>,<text bytes>}:title|text[|d:ts][|h:host]...`.

use std::borrow::Cow;

use adp_model::{EventAlertType, EventPriority};

use super::fields::{fields, split_once_byte, unescape_newlines, Origin, Tags};
use super::DecodeError;

/// A parsed `_e{..}` event, borrowing from the input.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct EventPacket<'a> {
    /// The raw title (`\\n` not yet unescaped).
    pub raw_title: &'a str,
    /// The raw text (`\\n` not yet unescaped).
    pub raw_text: &'a str,
    /// `|d:` unix seconds.
    pub timestamp: Option<i64>,
    /// `|h:` hostname.
    pub hostname: Option<&'a str>,
    /// `|k:` aggregation key.
    pub aggregation_key: Option<&'a str>,
    /// `|p:` priority (unknown values give the default).
    pub priority: EventPriority,
    /// `|s:` source type name.
    pub source_type_name: Option<&'a str>,
    /// `|t:` alert type (unknown values give the default).
    pub alert_type: EventAlertType,
    /// `|#` tags.
    pub tags: Tags<'a>,
    /// `c:`, `e:`, `card:`.
    pub origin: Origin<'a>,
}

impl<'a> EventPacket<'a> {
    /// The title with `\\n` turned into newlines.
    pub fn title(&self) -> Cow<'a, str> {
        unescape_newlines(self.raw_title)
    }

    /// The text with `\\n` turned into newlines.
    pub fn text(&self) -> Cow<'a, str> {
        unescape_newlines(self.raw_text)
    }
}

pub(super) fn parse_event(after_prefix: &str) -> Result<EventPacket<'_>, DecodeError> {
    let (lengths, rest) = split_once_byte(after_prefix, b'}').ok_or(DecodeError::EventLength)?;
    let (title_len, text_len) = split_once_byte(lengths, b',').ok_or(DecodeError::EventLength)?;
    let parse_len = |s: &str| -> Result<usize, DecodeError> {
        if s.is_empty() || !s.bytes().all(|b| b.is_ascii_digit()) {
            return Err(DecodeError::EventLength);
        }
        s.parse::<usize>()
            .ok()
            .filter(|&n| n > 0)
            .ok_or(DecodeError::EventLength)
    };
    let title_len = parse_len(title_len)?;
    let text_len = parse_len(text_len)?;
    let rest = rest.strip_prefix(':').ok_or(DecodeError::EventLength)?;
    // `get` returns None past the end or inside a multi-byte character.
    let raw_title = rest.get(..title_len).ok_or(DecodeError::EventLength)?;
    let rest = rest.get(title_len..).ok_or(DecodeError::EventLength)?;
    let rest = rest.strip_prefix('|').ok_or(DecodeError::EventLength)?;
    let raw_text = rest.get(..text_len).ok_or(DecodeError::EventLength)?;
    let rest = rest.get(text_len..).ok_or(DecodeError::EventLength)?;
    let rest = if rest.is_empty() {
        None
    } else {
        Some(rest.strip_prefix('|').ok_or(DecodeError::EventLength)?)
    };

    let mut packet = EventPacket {
        raw_title,
        raw_text,
        timestamp: None,
        hostname: None,
        aggregation_key: None,
        priority: EventPriority::default(),
        source_type_name: None,
        alert_type: EventAlertType::default(),
        tags: Tags::default(),
        origin: Origin::default(),
    };
    for field in rest.into_iter().flat_map(fields) {
        if let Some(v) = field.strip_prefix("k:") {
            packet.aggregation_key = Some(v).filter(|v| !v.is_empty());
        } else if let Some(v) = field.strip_prefix("p:") {
            packet.priority = if v.eq_ignore_ascii_case("low") {
                EventPriority::Low
            } else {
                EventPriority::Normal
            };
        } else if let Some(v) = field.strip_prefix("s:") {
            packet.source_type_name = Some(v).filter(|v| !v.is_empty());
        } else if let Some(v) = field.strip_prefix("t:") {
            packet.alert_type = match v.to_ascii_lowercase().as_str() {
                "error" => EventAlertType::Error,
                "warning" => EventAlertType::Warning,
                "success" => EventAlertType::Success,
                _ => EventAlertType::Info,
            };
        } else {
            shared_field!(field, packet)?;
        }
    }
    Ok(packet)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::codec::Cardinality;

    parse_as!(event, Event, EventPacket);

    #[test]
    fn events_decode_with_every_field() {
        let e = event(
            "_e{5,10}:title|some\\ntext|d:1700000000|h:host1|k:agg|p:low|s:my_src|t:warning|#b,a,b|c:ci-1|card:low",
        )
        .unwrap();
        assert_eq!(e.title(), "title");
        assert_eq!(e.text(), "some\ntext");
        assert_eq!(e.timestamp, Some(1_700_000_000));
        assert_eq!(e.hostname, Some("host1"));
        assert_eq!(e.aggregation_key, Some("agg"));
        assert_eq!(e.priority, EventPriority::Low);
        assert_eq!(e.source_type_name, Some("my_src"));
        assert_eq!(e.alert_type, EventAlertType::Warning);
        assert_eq!(e.tags.to_sorted_vec(), vec!["a", "b"]);
        assert_eq!(e.origin.local_data, Some("ci-1"));
        assert_eq!(e.origin.cardinality, Some(Cardinality::Low));
    }

    #[test]
    fn event_defaults_are_normal_and_info() {
        let e = event("_e{1,1}:a|b").unwrap();
        assert_eq!(e.priority, EventPriority::Normal);
        assert_eq!(e.alert_type, EventAlertType::Info);
        for t in ["error", "success", "info"] {
            let msg = format!("_e{{1,1}}:a|b|t:{t}");
            assert_eq!(event(&msg).unwrap().alert_type.as_str(), t);
        }
    }

    #[test]
    fn event_title_and_text_may_contain_pipes_and_multibyte_characters() {
        let title = "a|b";
        let text = "héllo|wörld";
        let msg = format!("_e{{{},{}}}:{title}|{text}|#x", title.len(), text.len());
        let e = event(&msg).unwrap();
        assert_eq!(e.raw_title, title);
        assert_eq!(e.raw_text, text);
        assert_eq!(e.tags.as_raw(), "x");
    }

    #[test]
    fn malformed_events_are_rejected() {
        for bad in [
            "_e{",
            "_e{1}:a|b",
            "_e{0,1}:|b",
            "_e{1,0}:a|",
            "_e{x,1}:a|b",
            "_e{-1,1}:a|b",
            "_e{1,1}a|b",
            "_e{2,1}:a|b",
            "_e{1,5}:a|b",
            "_e{1,1}:ab|c",
            "_e{1,1}:a|bc",
            "_e{1,1}:a|é",
            "_e{99999999999999999999999,1}:a|b",
        ] {
            assert_eq!(event(bad), Err(DecodeError::EventLength), "{bad}");
        }
        assert_eq!(event("_e{1,1}:a|b|d:x"), Err(DecodeError::InvalidTimestamp));
    }
}
