//! JSON string quoting exactly as Go's `encoding/json` does it by default.
//!
//! Go escapes `<`, `>` and `&` (HTML safety) and U+2028/U+2029 on top of the usual escapes,
//! which serde_json does not; kubectl output goes through it, so byte-identical output needs
//! this quoting. Everything else about the JSON documents minato writes is fixed in shape, so
//! they are assembled around this function.

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

#[cfg(test)]
mod tests {
    use super::quote;

    #[test]
    fn escapes_like_go_encoding_json() {
        assert_eq!(quote(r#"a<b>&c"d\e"#), r#""a\u003cb\u003e\u0026c\"d\\e""#);
        assert_eq!(quote("tab\tnl\ncr\r\u{1}"), r#""tab\tnl\ncr\r\u0001""#);
        assert_eq!(quote("ünï\u{2028}"), "\"ünï\\u2028\"");
        assert_eq!(quote("k]j64r{1sJSSF-;)K8"), "\"k]j64r{1sJSSF-;)K8\"");
    }
}
