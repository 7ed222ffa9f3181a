//! `Range` (blob GET) and `Content-Range` (chunked upload) header parsing.

/// An inclusive byte range.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ByteRange {
    /// First byte.
    pub start: u64,
    /// Last byte, inclusive.
    pub end: u64,
}

impl ByteRange {
    /// Number of bytes covered (saturating: `0-18446744073709551615` would overflow).
    pub fn len(&self) -> u64 {
        (self.end - self.start).saturating_add(1)
    }

    /// Whether the range covers nothing (never true for a parsed range).
    pub fn is_empty(&self) -> bool {
        false
    }
}

/// Outcome of reading a `Range` header against a blob of known size.
#[derive(Debug, PartialEq, Eq)]
pub enum RangeRequest {
    /// Serve the whole blob (no header, or several ranges, which we may ignore per RFC 9110).
    Full,
    /// Serve this part with 206.
    Partial(ByteRange),
    /// Malformed or outside the blob: answer 416.
    Unsatisfiable,
}

/// Interprets a `Range: bytes=...` header for a blob of `size` bytes.
pub fn parse_range(header: Option<&str>, size: u64) -> RangeRequest {
    let Some(header) = header else {
        return RangeRequest::Full;
    };
    let Some(spec) = header.trim().strip_prefix("bytes=") else {
        return RangeRequest::Unsatisfiable;
    };
    if spec.contains(',') {
        return RangeRequest::Full;
    }
    let Some((first, last)) = spec.trim().split_once('-') else {
        return RangeRequest::Unsatisfiable;
    };
    let number = |s: &str| -> Option<u64> {
        (!s.is_empty() && s.bytes().all(|b| b.is_ascii_digit()))
            .then(|| s.parse().ok())
            .flatten()
    };
    let range = match (first.trim(), last.trim()) {
        ("", suffix) => number(suffix)
            .filter(|n| *n > 0 && size > 0)
            .map(|n| ByteRange {
                start: size.saturating_sub(n),
                end: size - 1,
            }),
        (start, "") => number(start).filter(|s| *s < size).map(|start| ByteRange {
            start,
            end: size - 1,
        }),
        (start, end) => match (number(start), number(end)) {
            (Some(start), Some(end)) if start <= end && start < size => Some(ByteRange {
                start,
                end: end.min(size - 1),
            }),
            _ => None,
        },
    };
    range.map_or(RangeRequest::Unsatisfiable, RangeRequest::Partial)
}

/// Parses an upload `Content-Range`: the spec's `<start>-<end>`, also accepting the RFC form
/// `bytes <start>-<end>/<total|*>` that some clients send. `None` when malformed.
pub fn parse_content_range(header: &str) -> Option<ByteRange> {
    let text = header.trim();
    let text = text
        .strip_prefix("bytes")
        .map_or(text, |t| t.trim_start_matches([' ', '=']));
    let text = text.split('/').next()?;
    let (start, end) = text.split_once('-')?;
    let start: u64 = start.trim().parse().ok()?;
    let end: u64 = end.trim().parse().ok()?;
    (start <= end).then_some(ByteRange { start, end })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn partial(start: u64, end: u64) -> RangeRequest {
        RangeRequest::Partial(ByteRange { start, end })
    }

    #[test]
    fn range_header_forms() {
        assert_eq!(parse_range(None, 10), RangeRequest::Full);
        assert_eq!(parse_range(Some("bytes=0-4"), 10), partial(0, 4));
        assert_eq!(parse_range(Some("bytes=5-"), 10), partial(5, 9));
        assert_eq!(parse_range(Some("bytes=-3"), 10), partial(7, 9));
        assert_eq!(parse_range(Some("bytes=-30"), 10), partial(0, 9));
        assert_eq!(parse_range(Some("bytes=8-100"), 10), partial(8, 9));
        assert_eq!(parse_range(Some("bytes=0-1,3-4"), 10), RangeRequest::Full);
    }

    #[test]
    fn bad_or_unsatisfiable_ranges() {
        for bad in [
            "bytes=10-",
            "bytes=10-12",
            "bytes=5-2",
            "bytes=a-b",
            "bytes=",
            "bytes=-0",
            "items=0-1",
            "bytes=1",
            "bytes=+1-2",
        ] {
            assert_eq!(
                parse_range(Some(bad), 10),
                RangeRequest::Unsatisfiable,
                "{bad}"
            );
        }
        assert_eq!(
            parse_range(Some("bytes=0-"), 0),
            RangeRequest::Unsatisfiable
        );
    }

    #[test]
    fn content_range_forms() {
        let r = |start, end| Some(ByteRange { start, end });
        assert_eq!(parse_content_range("0-99"), r(0, 99));
        assert_eq!(parse_content_range("bytes 100-199/*"), r(100, 199));
        assert_eq!(parse_content_range("bytes=100-199/1000"), r(100, 199));
        assert_eq!(parse_content_range("5-1"), None);
        assert_eq!(parse_content_range("x"), None);
        assert_eq!(parse_content_range("-1"), None);
        assert_eq!(r(0, u64::MAX).unwrap().len(), u64::MAX);
    }
}
