//! Service check messages: `_sc|name|status[|d:ts][|h:host][|#tags][|m:message]`.

use std::borrow::Cow;

use adp_model::ServiceCheckStatus;

use super::fields::{first_field, split_once_byte, unescape_newlines, Origin, Tags};
use super::DecodeError;

/// A parsed `_sc|..` service check, borrowing from the input.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ServiceCheckPacket<'a> {
    /// The check name.
    pub name: &'a str,
    /// The status.
    pub status: ServiceCheckStatus,
    /// `|d:` unix seconds.
    pub timestamp: Option<i64>,
    /// `|h:` hostname.
    pub hostname: Option<&'a str>,
    /// `|#` tags.
    pub tags: Tags<'a>,
    /// `|m:` raw message (the rest of the line: it may contain `|`).
    pub raw_message: Option<&'a str>,
    /// `c:`, `e:`, `card:`.
    pub origin: Origin<'a>,
}

impl<'a> ServiceCheckPacket<'a> {
    /// The message with the clients' escapes undone (`\\n` → newline, `m\:` → `m:`).
    pub fn message(&self) -> Option<Cow<'a, str>> {
        self.raw_message.map(|m| {
            let m = unescape_newlines(m);
            if m.contains("m\\:") {
                Cow::Owned(m.replace("m\\:", "m:"))
            } else {
                m
            }
        })
    }
}

pub(super) fn parse_service_check(after_prefix: &str) -> Result<ServiceCheckPacket<'_>, DecodeError> {
    let (name, rest) = split_once_byte(after_prefix, b'|').ok_or(DecodeError::ServiceCheckStatus)?;
    if name.is_empty() {
        return Err(DecodeError::ServiceCheckName);
    }
    let (raw_status, rest) = first_field(rest);
    let status = match raw_status {
        "0" => ServiceCheckStatus::Ok,
        "1" => ServiceCheckStatus::Warning,
        "2" => ServiceCheckStatus::Critical,
        "3" => ServiceCheckStatus::Unknown,
        _ => return Err(DecodeError::ServiceCheckStatus),
    };
    let mut packet = ServiceCheckPacket {
        name,
        status,
        timestamp: None,
        hostname: None,
        tags: Tags::default(),
        raw_message: None,
        origin: Origin::default(),
    };
    let mut rest = rest;
    while let Some(r) = rest {
        let (field, tail) = first_field(r);
        rest = tail;
        if let Some(v) = field.strip_prefix("m:") {
            // The message runs to the end of the line: clients send it last and
            // it may contain `|`.
            packet.raw_message = Some(r.get(2..).unwrap_or(v));
            break;
        } else {
            shared_field!(field, packet)?;
        }
    }
    Ok(packet)
}

#[cfg(test)]
mod tests {
    use super::*;

    parse_as!(service_check, ServiceCheck, ServiceCheckPacket);

    #[test]
    fn service_checks_decode_with_every_field() {
        let sc = service_check("_sc|my.check|2|d:1700000000|h:host1|#env:prod,a|c:in-42|m:broken | really\\nm\\: yes")
            .unwrap();
        assert_eq!(sc.name, "my.check");
        assert_eq!(sc.status, ServiceCheckStatus::Critical);
        assert_eq!(sc.timestamp, Some(1_700_000_000));
        assert_eq!(sc.hostname, Some("host1"));
        assert_eq!(sc.tags.to_sorted_vec(), vec!["a", "env:prod"]);
        assert_eq!(sc.origin.local_data, Some("in-42"));
        assert_eq!(sc.message().unwrap(), "broken | really\nm: yes");
    }

    #[test]
    fn every_service_check_status_decodes() {
        for (s, status) in [
            ("0", ServiceCheckStatus::Ok),
            ("1", ServiceCheckStatus::Warning),
            ("2", ServiceCheckStatus::Critical),
            ("3", ServiceCheckStatus::Unknown),
        ] {
            assert_eq!(service_check(&format!("_sc|c|{s}")).unwrap().status, status);
        }
    }

    #[test]
    fn malformed_service_checks_are_rejected() {
        assert_eq!(service_check("_sc||0"), Err(DecodeError::ServiceCheckName));
        assert_eq!(service_check("_sc|name"), Err(DecodeError::ServiceCheckStatus));
        assert_eq!(service_check("_sc|name|4"), Err(DecodeError::ServiceCheckStatus));
        assert_eq!(service_check("_sc|name|"), Err(DecodeError::ServiceCheckStatus));
        assert_eq!(service_check("_sc|name|ok"), Err(DecodeError::ServiceCheckStatus));
        assert_eq!(service_check("_sc|name|0|d:soon"), Err(DecodeError::InvalidTimestamp));
    }
}
