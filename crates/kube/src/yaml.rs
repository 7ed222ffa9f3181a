//! YAML scalar styles as the Go YAML emitter (`gopkg.in/yaml.v2`, behind kubectl's
//! `-o yaml`) chooses them: plain when the text would read back as the same string, single
//! quotes when plain style would be ambiguous, double quotes for strings that would read back
//! as another type (`"123"`, `"true"`, `""`) or contain characters single quotes cannot carry.
//!
//! Written by hand because byte-identical kubectl output depends on these exact choices, which
//! no Rust YAML crate reproduces; minato only emits flat documents of strings, so the scalar
//! rules are all that is needed.

/// How `value` is written as a block-context YAML scalar.
pub fn scalar(value: &str) -> String {
    let flags = analyze(value);
    if resolves_to_non_string(value) || value.contains(':') && is_base60_float(value) {
        return double_quoted(value);
    }
    if value.contains('\n') || flags.special {
        return double_quoted(value);
    }
    if flags.plain_allowed {
        value.to_owned()
    } else if flags.single_allowed {
        format!("'{}'", value.replace('\'', "''"))
    } else {
        double_quoted(value)
    }
}

struct Flags {
    plain_allowed: bool,
    single_allowed: bool,
    special: bool,
}

/// The emitter's analysis of a scalar, for block context.
fn analyze(value: &str) -> Flags {
    if value.is_empty() {
        return Flags {
            plain_allowed: false,
            single_allowed: true,
            special: false,
        };
    }
    let chars: Vec<char> = value.chars().collect();
    let mut block_indicators = value.starts_with("---") || value.starts_with("...");
    let (mut leading_space, mut trailing_space, mut special) = (false, false, false);
    let mut preceded_by_whitespace = true;
    for (i, &c) in chars.iter().enumerate() {
        let followed_by_whitespace = chars.get(i + 1).is_none_or(|n| n.is_whitespace());
        if i == 0 {
            match c {
                '#' | ',' | '[' | ']' | '{' | '}' | '&' | '*' | '!' | '|' | '>' | '\'' | '"'
                | '%' | '@' | '`' => block_indicators = true,
                '?' | ':' | '-' if followed_by_whitespace => block_indicators = true,
                _ => {}
            }
        } else {
            match c {
                ':' if followed_by_whitespace => block_indicators = true,
                '#' if preceded_by_whitespace => block_indicators = true,
                _ => {}
            }
        }
        let printable = c == '\t'
            || c == '\n'
            || (' '..='~').contains(&c)
            || (c as u32 >= 0xA0 && c != '\u{FEFF}' && !(0xD800..=0xDFFF).contains(&(c as u32)));
        if !printable {
            special = true;
        }
        if c == ' ' {
            if i == 0 {
                leading_space = true;
            }
            if i + 1 == chars.len() {
                trailing_space = true;
            }
        }
        preceded_by_whitespace = c == ' ' || c == '\t' || c == '\n';
    }
    Flags {
        plain_allowed: !(leading_space || trailing_space || block_indicators || special),
        single_allowed: !special,
        special,
    }
}

fn double_quoted(value: &str) -> String {
    let mut out = String::from("\"");
    for c in value.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\t' => out.push_str("\\t"),
            '\r' => out.push_str("\\r"),
            '\0' => out.push_str("\\0"),
            c if (c as u32) < 0x20 || c as u32 == 0x7f => {
                out.push_str(&format!("\\x{:02X}", c as u32))
            }
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

/// Whether a plain scalar with this text would be read as a bool, null, number or timestamp.
fn resolves_to_non_string(value: &str) -> bool {
    const KEYWORDS: &[&str] = &[
        "", "~", "null", "Null", "NULL", "y", "Y", "yes", "Yes", "YES", "n", "N", "no", "No", "NO",
        "true", "True", "TRUE", "false", "False", "FALSE", "on", "On", "ON", "off", "Off", "OFF",
        ".nan", ".NaN", ".NAN", ".inf", ".Inf", ".INF", "+.inf", "+.Inf", "+.INF", "-.inf",
        "-.Inf", "-.INF", "<<",
    ];
    if KEYWORDS.contains(&value) {
        return true;
    }
    let first = value.as_bytes()[0];
    if !(first.is_ascii_digit() || matches!(first, b'+' | b'-' | b'.')) {
        return false;
    }
    let plain = value.replace('_', "");
    is_go_int(&plain) || is_go_float(&plain) || is_timestamp(value)
}

/// Go's `strconv.ParseInt(s, 0, 64)` syntax (range ignored: big numbers still resolve as
/// floats).
fn is_go_int(text: &str) -> bool {
    let unsigned = text.strip_prefix(['+', '-']).unwrap_or(text);
    let (digits, radix) = match unsigned.get(..2) {
        Some("0x" | "0X") => (&unsigned[2..], 16),
        Some("0o" | "0O") => (&unsigned[2..], 8),
        Some("0b" | "0B") => (&unsigned[2..], 2),
        _ if unsigned.len() > 1 && unsigned.starts_with('0') => (&unsigned[1..], 8),
        _ => (unsigned, 10),
    };
    !digits.is_empty() && digits.chars().all(|c| c.is_digit(radix))
}

/// Go's `strconv.ParseFloat` decimal syntax, including `inf`, `infinity` and `nan`.
fn is_go_float(text: &str) -> bool {
    let unsigned = text.strip_prefix(['+', '-']).unwrap_or(text);
    let lower = unsigned.to_ascii_lowercase();
    if lower == "inf" || lower == "infinity" || lower == "nan" {
        return true;
    }
    let (mantissa, exponent) = match lower.split_once('e') {
        Some((m, e)) => (m, Some(e)),
        None => (lower.as_str(), None),
    };
    let (int, frac) = mantissa.split_once('.').unwrap_or((mantissa, ""));
    let digits = |s: &str| s.chars().all(|c| c.is_ascii_digit());
    let mantissa_ok = digits(int) && digits(frac) && !(int.is_empty() && frac.is_empty());
    let exponent_ok = exponent.is_none_or(|e| {
        let e = e.strip_prefix(['+', '-']).unwrap_or(e);
        !e.is_empty() && digits(e)
    });
    mantissa_ok && exponent_ok
}

/// `YYYY-M-D` dates (with optional time), which YAML reads as timestamps.
fn is_timestamp(text: &str) -> bool {
    let date = text.split(['T', 't', ' ']).next().unwrap_or("");
    let parts: Vec<&str> = date.split('-').collect();
    parts.len() == 3
        && parts[0].len() == 4
        && (1..=2).contains(&parts[1].len())
        && (1..=2).contains(&parts[2].len())
        && parts.iter().all(|p| p.chars().all(|c| c.is_ascii_digit()))
}

/// YAML 1.1 sexagesimal numbers such as `1:20`, which the Go emitter always quotes.
fn is_base60_float(text: &str) -> bool {
    let unsigned = text.strip_prefix(['+', '-']).unwrap_or(text);
    let mut parts = unsigned.split(':');
    let first = parts.next().unwrap_or("");
    !first.is_empty()
        && first.chars().all(|c| c.is_ascii_digit() || c == '_')
        && parts.all(|p| {
            let (int, frac) = p.split_once('.').unwrap_or((p, ""));
            !int.is_empty()
                && int.len() <= 2
                && int.chars().all(|c| c.is_ascii_digit())
                && frac.chars().all(|c| c.is_ascii_digit() || c == '_')
        })
}

#[cfg(test)]
mod tests {
    use super::scalar;

    #[test]
    fn plain_when_unambiguous() {
        for plain in [
            "ocirsecret",
            "s1-h2g25kfb7b",
            "eyJhdXRocyI6e30=",
            "a.b_c",
            "x:y",
            "a#b",
            "123abc",
        ] {
            assert_eq!(scalar(plain), plain);
        }
    }

    #[test]
    fn double_quotes_for_other_types() {
        for typed in [
            "123",
            "",
            "true",
            "NULL",
            "1e5",
            "0x1F",
            "+inf",
            ".5",
            "2024-01-02",
            "-12",
            "1_000",
            "~",
            "1:20",
        ] {
            assert_eq!(scalar(typed), format!("\"{typed}\""), "{typed}");
        }
    }

    #[test]
    fn single_quotes_for_indicators_and_spaces() {
        assert_eq!(scalar("a: b"), "'a: b'");
        assert_eq!(scalar("-x"), "-x");
        assert_eq!(scalar("- x"), "'- x'");
        assert_eq!(scalar(" lead"), "' lead'");
        assert_eq!(scalar("it's #1"), "'it''s #1'");
        assert_eq!(scalar("*star"), "'*star'");
        assert_eq!(scalar("a\u{1}"), "\"a\\x01\"");
    }
}
