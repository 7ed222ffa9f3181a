//! String quoting exactly as Go does it: JSON strings as `encoding/json` writes them by
//! default, and `%q` (`strconv.Quote`) as kubectl's error messages show names.
//!
//! Go's JSON escapes `<`, `>` and `&` (HTML safety) and U+2028/U+2029 on top of the usual
//! escapes, and (since Go 1.22) writes `\b` and `\f` in short form, which serde_json does not;
//! kubectl output goes through it, so byte-identical output needs this quoting. Everything
//! else about the JSON documents minato writes is fixed in shape, so they are assembled around
//! [`quote`].

/// `value` as a Go-quoted JSON string, quotes included.
pub fn quote(value: &str) -> String {
    let mut out = String::with_capacity(value.len() + 2);
    out.push('"');
    for c in value.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            '\u{8}' => out.push_str("\\b"),
            '\u{c}' => out.push_str("\\f"),
            '<' => out.push_str("\\u003c"),
            '>' => out.push_str("\\u003e"),
            '&' => out.push_str("\\u0026"),
            '\u{2028}' => out.push_str("\\u2028"),
            '\u{2029}' => out.push_str("\\u2029"),
            c if (c as u32) < 0x20 => out.push_str(&format!("\\u{:04x}", c as u32)),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

/// `value` as Go's `strconv.Quote` (the `%q` verb) writes it: printable characters as they
/// are, C escapes for the usual controls, `\xNN` for other ASCII controls, `\uNNNN` or
/// `\UNNNNNNNN` for other non-printable characters. Non-ASCII characters count as printable
/// unless Rust's `char::escape_debug` escapes them, which follows the same Unicode categories
/// as Go's `unicode.IsPrint` (it also escapes combining marks, which Go prints).
pub fn strconv_quote(value: &str) -> String {
    let mut out = String::with_capacity(value.len() + 2);
    out.push('"');
    for c in value.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\u{7}' => out.push_str("\\a"),
            '\u{8}' => out.push_str("\\b"),
            '\u{c}' => out.push_str("\\f"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            '\u{b}' => out.push_str("\\v"),
            ' '..='~' => out.push(c),
            c if c.is_ascii() => out.push_str(&format!("\\x{:02x}", c as u32)),
            c if c.is_whitespace() || c.escape_debug().nth(1).is_some() => {
                if (c as u32) < 0x10000 {
                    out.push_str(&format!("\\u{:04x}", c as u32));
                } else {
                    out.push_str(&format!("\\U{:08x}", c as u32));
                }
            }
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

#[cfg(test)]
mod tests {
    use super::{quote, strconv_quote};

    #[test]
    fn escapes_like_go_encoding_json() {
        assert_eq!(quote(r#"a<b>&c"d\e"#), r#""a\u003cb\u003e\u0026c\"d\\e""#);
        assert_eq!(quote("tab\tnl\ncr\r\u{1}"), r#""tab\tnl\ncr\r\u0001""#);
        assert_eq!(quote("\u{8}\u{c}\u{7f}"), "\"\\b\\f\u{7f}\"");
        assert_eq!(quote("ünï\u{2028}"), "\"ünï\\u2028\"");
        assert_eq!(quote("k]j64r{1sJSSF-;)K8"), "\"k]j64r{1sJSSF-;)K8\"");
    }

    #[test]
    fn quotes_like_go_strconv() {
        assert_eq!(strconv_quote("bad key"), r#""bad key""#);
        assert_eq!(strconv_quote("a\"b\\c"), r#""a\"b\\c""#);
        assert_eq!(strconv_quote("\t\u{1}\u{7f}"), r#""\t\x01\x7f""#);
        assert_eq!(strconv_quote("é\u{a0}\u{2028}😀"), "\"é\\u00a0\\u2028😀\"");
    }
}
