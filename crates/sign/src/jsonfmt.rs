//! String escaping of the two JSON encoders whose output minato must reproduce byte for byte:
//! Python's `json.dumps` (the OCI CLI builds OCIR payloads with it; `ensure_ascii` is on by
//! default) and Go's `encoding/json` (sigstore builds cosign payloads with it).

use std::fmt::Write as _;

/// Appends `text` as a JSON string the way Python's `json.dumps(..., ensure_ascii=True)`
/// writes it: `"` `\` and `\b \f \n \r \t` with their short escapes, every other character
/// outside `' '..='~'` as `\uXXXX` (lowercase hex, UTF-16 surrogate pairs above U+FFFF).
pub(crate) fn push_python_str(out: &mut String, text: &str) {
    out.push('"');
    for c in text.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            '\u{8}' => out.push_str("\\b"),
            '\u{c}' => out.push_str("\\f"),
            ' '..='~' => out.push(c),
            _ => {
                let mut units = [0u16; 2];
                for unit in c.encode_utf16(&mut units) {
                    let _ = write!(out, "\\u{unit:04x}");
                }
            }
        }
    }
    out.push('"');
}

/// Appends `text` as a JSON string the way Go's `json.Marshal` writes it (Go ≥ 1.22): `"` `\`
/// and `\b \f \n \r \t` with short escapes, other control characters, `<`, `>`, `&`, U+2028
/// and U+2029 as `\u00XX`/`\u20XX` (lowercase hex), everything else as UTF-8.
pub(crate) fn push_go_str(out: &mut String, text: &str) {
    out.push('"');
    for c in text.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            '\u{8}' => out.push_str("\\b"),
            '\u{c}' => out.push_str("\\f"),
            '\u{0}'..='\u{1f}' | '<' | '>' | '&' | '\u{2028}' | '\u{2029}' => {
                let _ = write!(out, "\\u{:04x}", c as u32);
            }
            _ => out.push(c),
        }
    }
    out.push('"');
}

#[cfg(test)]
mod tests {
    use super::*;

    fn python(text: &str) -> String {
        let mut out = String::new();
        push_python_str(&mut out, text);
        out
    }

    fn go(text: &str) -> String {
        let mut out = String::new();
        push_go_str(&mut out, text);
        out
    }

    #[test]
    fn python_ensure_ascii() {
        // Expected values printed by CPython 3: json.dumps(text).
        assert_eq!(python("plain / text"), r#""plain / text""#);
        assert_eq!(python("q\"b\\"), r#""q\"b\\""#);
        assert_eq!(python("\n\r\t\u{8}\u{c}"), r#""\n\r\t\b\f""#);
        assert_eq!(python("\u{1}\u{1f}\u{7f}"), r#""\u0001\u001f\u007f""#);
        assert_eq!(python("café <&>"), r#""caf\u00e9 <&>""#);
        assert_eq!(python("日本"), r#""\u65e5\u672c""#);
        assert_eq!(python("😀"), r#""\ud83d\ude00""#);
        // The result is valid JSON that decodes to the input.
        let text = "mixed 😀 \u{7f} \" \\ é";
        assert_eq!(serde_json::from_str::<String>(&python(text)).unwrap(), text);
    }

    #[test]
    fn go_marshal() {
        assert_eq!(go("ghcr.io/a/b:1"), r#""ghcr.io/a/b:1""#);
        assert_eq!(go("<&>"), r#""\u003c\u0026\u003e""#);
        assert_eq!(go("\u{1}\n\u{8}"), r#""\u0001\n\b""#);
        assert_eq!(go("é\u{2028}"), "\"é\\u2028\"");
        assert_eq!(go("\u{7f}"), "\"\u{7f}\"");
    }
}
