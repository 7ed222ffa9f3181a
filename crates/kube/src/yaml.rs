//! YAML output exactly as kubectl's `-o yaml` writes it: the object goes through JSON into the
//! Go YAML emitter (`yaml.v2`, as vendored by `sigs.k8s.io/yaml`), which picks each string's
//! scalar style, folds long lines at 80 columns, writes multi-line text as literal blocks and
//! sorts mapping keys in its own "natural" order.
//!
//! Written by hand because byte-identical kubectl output depends on these exact choices, which
//! no Rust YAML crate reproduces; minato only emits mappings of strings, so this is a port of
//! the emitter's scalar analysis, style selection and scalar writers for block mappings, quirks
//! included (a text starting with a byte-order mark is escaped character by character).

use std::cmp::Ordering;

/// Column after which the emitter breaks a line at the next space.
const BEST_WIDTH: usize = 80;
/// Indentation step of nested nodes.
const BEST_INDENT: usize = 2;
/// Longest key (in bytes) written as `key: value`; longer keys use `? key` / `: value`.
const SIMPLE_KEY_LIMIT: usize = 128;

/// A `key: value` entry of a block mapping whose keys sit at column `indent`, with its final
/// newline. The value may fold over several lines or become a literal block, as kubectl
/// prints it.
pub fn entry(indent: usize, key: &str, value: &str) -> String {
    let mut writer = Writer::at(indent);
    writer.write_indent();
    let key_analysis = Analysis::of(key);
    if key.len() <= SIMPLE_KEY_LIMIT && !key_analysis.multiline {
        writer.scalar(key, &key_analysis, Context::SimpleKey);
        writer.write_indicator(":", false, false, false);
    } else {
        writer.write_indicator("?", true, false, true);
        writer.scalar(key, &key_analysis, Context::Block);
        writer.write_indent();
        writer.write_indicator(":", true, false, true);
    }
    writer.scalar(value, &Analysis::of(value), Context::Block);
    if writer.column > 0 {
        writer.out.push('\n');
    }
    writer.out
}

/// `value` as the emitter writes a mapping key (a "simple key": always one line, never folded,
/// multi-line text double-quoted): plain, `'single'` or `"double"` quoted.
pub fn scalar(value: &str) -> String {
    let mut writer = Writer::at(0);
    writer.scalar(value, &Analysis::of(value), Context::SimpleKey);
    writer.out
}

/// Why the Go YAML reader refused the JSON text kubectl converts to YAML (its messages).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum JsonToYamlError {
    /// DEL, a C1 control other than NEL, U+FFFE or U+FFFF (JSON leaves them raw).
    #[error("yaml: control characters are not allowed")]
    ControlCharacters,
    /// `---` or `...` then a blank right after a NEL, which starts a line.
    #[error("yaml: line {0}: found unexpected document indicator")]
    DocumentIndicator(usize),
}

/// The strings of a document (in its JSON order) as kubectl's `-o yaml` sees them: it writes
/// the object as JSON and reads that back with the Go YAML parser before emitting YAML. JSON
/// escapes the C0 controls, but not NEL (U+0085), which the parser takes for a line break
/// inside the quoted string and folds like one (surrounding spaces dropped, one break becomes
/// a space, `n` breaks `n - 1` newlines), nor the characters YAML refuses.
pub fn through_json(values: &[&str]) -> Result<Vec<String>, JsonToYamlError> {
    let refused =
        |c: char| matches!(c, '\u{7f}'..='\u{84}' | '\u{86}'..='\u{9f}' | '\u{fffe}' | '\u{ffff}');
    if values.iter().any(|v| v.chars().any(refused)) {
        return Err(JsonToYamlError::ControlCharacters);
    }
    let mut lines = 1;
    let mut folded = Vec::with_capacity(values.len());
    for value in values {
        let chars: Vec<char> = value.chars().collect();
        let mut out = String::with_capacity(value.len());
        let mut i = 0;
        while i < chars.len() {
            if chars[i] != ' ' && chars[i] != '\u{85}' {
                out.push(chars[i]);
                i += 1;
                continue;
            }
            let (mut spaces, mut breaks) = (0, 0);
            while let Some(&c) = chars.get(i).filter(|&&c| c == ' ' || c == '\u{85}') {
                if c == ' ' {
                    spaces += usize::from(breaks == 0);
                } else {
                    breaks += 1;
                }
                i += 1;
            }
            lines += breaks;
            match breaks {
                0 => out.extend(std::iter::repeat_n(' ', spaces)),
                1 => out.push(' '),
                _ => out.extend(std::iter::repeat_n('\n', breaks - 1)),
            }
            let rest: String = chars[i..].iter().take(4).collect();
            let at_line_start = chars[i - 1] == '\u{85}';
            let indicator = rest.starts_with("---") || rest.starts_with("...");
            if at_line_start
                && indicator
                && rest.ends_with([' ', '\u{85}'])
                && rest.chars().count() == 4
            {
                return Err(JsonToYamlError::DocumentIndicator(lines));
            }
        }
        folded.push(out);
    }
    Ok(folded)
}

/// Sorts mapping keys as the emitter does: character by character, letters after every other
/// character, and runs of digits compared by their numeric value (`a9` before `a10`).
pub fn sort_keys(keys: &mut [&str]) {
    // Go's sort of a few keys is an insertion sort; with this (not strictly transitive)
    // comparison, only the same algorithm is guaranteed to give the same order.
    for i in 1..keys.len() {
        let mut j = i;
        while j > 0 && key_less(keys[j], keys[j - 1]) {
            keys.swap(j, j - 1);
            j -= 1;
        }
    }
}

/// yaml.v2's `keyList.Less` for two string keys.
fn key_less(a: &str, b: &str) -> bool {
    let (ar, br): (Vec<char>, Vec<char>) = (a.chars().collect(), b.chars().collect());
    for i in 0..ar.len().min(br.len()) {
        if ar[i] == br[i] {
            continue;
        }
        let (al, bl) = (ar[i].is_alphabetic(), br[i].is_alphabetic());
        if al && bl {
            return ar[i] < br[i];
        }
        if al || bl {
            return bl;
        }
        // Go's quirk: a run continuing after a non-zero digit starts from 1 when either side
        // has a zero here.
        let start = i64::from(
            (ar[i] == '0' || br[i] == '0')
                && ar[..i]
                    .iter()
                    .rev()
                    .take_while(|c| c.is_ascii_digit())
                    .any(|&c| c != '0'),
        );
        let number = |chars: &[char], mut n: i64| {
            let digits = chars[i..].iter().take_while(|c| c.is_ascii_digit());
            let mut end = i;
            for c in digits {
                n = n.wrapping_mul(10).wrapping_add(i64::from(*c as u8 - b'0'));
                end += 1;
            }
            (n, end)
        };
        let ((an, ai), (bn, bi)) = (number(&ar, start), number(&br, start));
        return match an.cmp(&bn).then(ai.cmp(&bi)) {
            Ordering::Equal => ar[i] < br[i],
            order => order == Ordering::Less,
        };
    }
    ar.len() < br.len()
}

/// Where a scalar is written.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Context {
    /// A key written as `key:` — one line, no folding.
    SimpleKey,
    /// A block mapping value (or a `? key`): long lines fold, multi-line text may be a block.
    Block,
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Style {
    Plain,
    SingleQuoted,
    DoubleQuoted,
    Literal,
}

/// The emitter's analysis of a scalar (`yaml_emitter_analyze_scalar`).
struct Analysis {
    multiline: bool,
    block_plain_allowed: bool,
    single_quoted_allowed: bool,
    block_allowed: bool,
}

impl Analysis {
    fn of(value: &str) -> Analysis {
        if value.is_empty() {
            return Analysis {
                multiline: false,
                block_plain_allowed: true,
                single_quoted_allowed: true,
                block_allowed: false,
            };
        }
        let chars: Vec<char> = value.chars().collect();
        let mut block_indicators = value.starts_with("---") || value.starts_with("...");
        let (mut line_breaks, mut special_characters) = (false, false);
        let (mut leading_space, mut leading_break) = (false, false);
        let (mut trailing_space, mut trailing_break) = (false, false);
        let (mut break_space, mut space_break) = (false, false);
        let (mut previous_space, mut previous_break) = (false, false);
        let mut preceded_by_whitespace = true;
        for (i, &c) in chars.iter().enumerate() {
            let followed_by_whitespace = chars.get(i + 1).is_none_or(|&n| is_blank(n));
            let last = i + 1 == chars.len();
            match c {
                '#' | ',' | '[' | ']' | '{' | '}' | '&' | '*' | '!' | '|' | '>' | '\'' | '"'
                | '%' | '@' | '`'
                    if i == 0 =>
                {
                    block_indicators = true
                }
                '?' | '-' if i == 0 && followed_by_whitespace => block_indicators = true,
                ':' if followed_by_whitespace => block_indicators = true,
                '#' if i > 0 && preceded_by_whitespace => block_indicators = true,
                _ => {}
            }
            if !is_printable(c) {
                special_characters = true;
            }
            if c == ' ' {
                leading_space |= i == 0;
                trailing_space |= last;
                break_space |= previous_break;
                (previous_space, previous_break) = (true, false);
            } else if is_break(c) {
                line_breaks = true;
                leading_break |= i == 0;
                trailing_break |= last;
                space_break |= previous_space;
                (previous_space, previous_break) = (false, true);
            } else {
                (previous_space, previous_break) = (false, false);
            }
            preceded_by_whitespace = is_blank(c) || is_break(c) || c == '\0';
        }
        let unquotable = space_break || special_characters;
        Analysis {
            multiline: line_breaks,
            block_plain_allowed: !(leading_space
                || leading_break
                || trailing_space
                || trailing_break
                || break_space
                || unquotable
                || line_breaks
                || block_indicators),
            single_quoted_allowed: !(break_space || unquotable),
            block_allowed: !(trailing_space || unquotable),
        }
    }
}

/// The style yaml.v2 ends with: the encoder's choice (literal for multi-line text, plain
/// unless the text would read back as another type, else double quotes), then the emitter's
/// downgrades when that style cannot carry the text.
fn style(value: &str, analysis: &Analysis, context: Context) -> Style {
    let simple_key = context == Context::SimpleKey;
    let mut style = if value.contains('\n') {
        Style::Literal
    } else if !resolves_to_non_string(value) && !is_base60_float(value) {
        Style::Plain
    } else {
        Style::DoubleQuoted
    };
    if simple_key && analysis.multiline {
        style = Style::DoubleQuoted;
    }
    if style == Style::Plain && (!analysis.block_plain_allowed || value.is_empty() && simple_key) {
        style = Style::SingleQuoted;
    }
    if style == Style::SingleQuoted && !analysis.single_quoted_allowed {
        style = Style::DoubleQuoted;
    }
    if style == Style::Literal && (!analysis.block_allowed || simple_key) {
        style = Style::DoubleQuoted;
    }
    style
}

/// The emitter's output state for one mapping entry.
struct Writer {
    out: String,
    column: usize,
    /// Indentation of the lines the current node continues on.
    indent: usize,
    whitespace: bool,
    indention: bool,
}

impl Writer {
    /// A writer at the start of a line, for a mapping whose keys are at column `indent`.
    fn at(indent: usize) -> Writer {
        Writer {
            out: String::new(),
            column: 0,
            indent,
            whitespace: true,
            indention: true,
        }
    }

    fn put(&mut self, c: char) {
        self.out.push(c);
        self.column += 1;
    }

    fn put_break(&mut self) {
        self.out.push('\n');
        self.column = 0;
    }

    /// Writes a line break character: `\n` as a newline, the others as themselves.
    fn write_break(&mut self, c: char) {
        if c == '\n' {
            self.put_break();
        } else {
            self.out.push(c);
            self.column = 0;
        }
    }

    fn write_indent(&mut self) {
        if !self.indention
            || self.column > self.indent
            || self.column == self.indent && !self.whitespace
        {
            self.put_break();
        }
        while self.column < self.indent {
            self.put(' ');
        }
        self.whitespace = true;
        self.indention = true;
    }

    fn write_indicator(
        &mut self,
        indicator: &str,
        need_whitespace: bool,
        is_whitespace: bool,
        is_indention: bool,
    ) {
        if need_whitespace && !self.whitespace {
            self.put(' ');
        }
        indicator.chars().for_each(|c| self.put(c));
        self.whitespace = is_whitespace;
        self.indention &= is_indention;
    }

    /// Writes a scalar node: its continuation lines are indented one step further.
    fn scalar(&mut self, value: &str, analysis: &Analysis, context: Context) {
        let allow_breaks = context == Context::Block;
        self.indent += BEST_INDENT;
        match style(value, analysis, context) {
            Style::Plain => self.plain(value, allow_breaks),
            Style::SingleQuoted => self.single_quoted(value, allow_breaks),
            Style::DoubleQuoted => self.double_quoted(value, allow_breaks),
            Style::Literal => self.literal(value),
        }
        self.indent -= BEST_INDENT;
    }

    /// Whether a space at `i` may become a line break.
    fn may_fold(&self, allow_breaks: bool, spaces: bool, chars: &[char], i: usize) -> bool {
        allow_breaks && !spaces && self.column > BEST_WIDTH && i > 0 && i + 1 < chars.len()
    }

    /// Plain style (never has line breaks: the analysis forbids it then).
    fn plain(&mut self, value: &str, allow_breaks: bool) {
        if !self.whitespace {
            self.put(' ');
        }
        let chars: Vec<char> = value.chars().collect();
        let mut spaces = false;
        for (i, &c) in chars.iter().enumerate() {
            if c == ' ' {
                if self.may_fold(allow_breaks, spaces, &chars, i) && chars[i + 1] != ' ' {
                    self.write_indent();
                } else {
                    self.put(c);
                }
                spaces = true;
            } else {
                self.put(c);
                self.indention = false;
                spaces = false;
            }
        }
        self.whitespace = false;
        self.indention = false;
    }

    /// Single-quoted style; its only possible line breaks are U+2028 and U+2029 (the others
    /// make the text multi-line or non-printable, which rules this style out).
    fn single_quoted(&mut self, value: &str, allow_breaks: bool) {
        self.write_indicator("'", true, false, false);
        let chars: Vec<char> = value.chars().collect();
        let (mut spaces, mut breaks) = (false, false);
        for (i, &c) in chars.iter().enumerate() {
            if c == ' ' {
                if self.may_fold(allow_breaks, spaces, &chars, i) && chars[i + 1] != ' ' {
                    self.write_indent();
                } else {
                    self.put(c);
                }
                spaces = true;
            } else if is_break(c) {
                self.write_break(c);
                self.indention = true;
                breaks = true;
            } else {
                if breaks {
                    self.write_indent();
                }
                if c == '\'' {
                    self.put('\'');
                }
                self.put(c);
                self.indention = false;
                (spaces, breaks) = (false, false);
            }
        }
        self.write_indicator("'", false, false, false);
        self.whitespace = false;
        self.indention = false;
    }

    fn double_quoted(&mut self, value: &str, allow_breaks: bool) {
        self.write_indicator("\"", true, false, false);
        // yaml.v2's byte-order-mark test looks at the start of the text, not at the current
        // character: after a leading BOM, every character is escaped.
        let bom_first = value.starts_with('\u{FEFF}');
        let chars: Vec<char> = value.chars().collect();
        let mut spaces = false;
        for (i, &c) in chars.iter().enumerate() {
            if bom_first || !is_printable(c) || is_break(c) || c == '"' || c == '\\' {
                self.put('\\');
                escape(c).chars().for_each(|e| self.put(e));
                spaces = false;
            } else if c == ' ' {
                if self.may_fold(allow_breaks, spaces, &chars, i) {
                    self.write_indent();
                    if chars[i + 1] == ' ' {
                        self.put('\\');
                    }
                } else {
                    self.put(c);
                }
                spaces = true;
            } else {
                self.put(c);
                spaces = false;
            }
        }
        self.write_indicator("\"", false, false, false);
        self.whitespace = false;
        self.indention = false;
    }

    /// Literal block (`|`), with the indentation hint when the text starts with a space or a
    /// break, and the chomping hint (`-` no final break, `+` several).
    fn literal(&mut self, value: &str) {
        self.write_indicator("|", true, false, false);
        let chars: Vec<char> = value.chars().collect();
        if chars.first().is_some_and(|&c| c == ' ' || is_break(c)) {
            self.write_indicator(&BEST_INDENT.to_string(), false, false, false);
        }
        let ends_with_break = |n: usize| n > 0 && is_break(chars[n - 1]);
        if !ends_with_break(chars.len()) {
            self.write_indicator("-", false, false, false);
        } else if chars.len() == 1 || ends_with_break(chars.len() - 1) {
            self.write_indicator("+", false, false, false);
        }
        self.put_break();
        self.indention = true;
        self.whitespace = true;
        let mut breaks = true;
        for &c in &chars {
            if is_break(c) {
                self.write_break(c);
                self.indention = true;
                breaks = true;
            } else {
                if breaks {
                    self.write_indent();
                }
                self.put(c);
                self.indention = false;
                breaks = false;
            }
        }
    }
}

/// The escape sequence (after the backslash) of a character in a double-quoted scalar.
fn escape(c: char) -> String {
    let short = match c {
        '\0' => '0',
        '\u{7}' => 'a',
        '\u{8}' => 'b',
        '\t' => 't',
        '\n' => 'n',
        '\u{b}' => 'v',
        '\u{c}' => 'f',
        '\r' => 'r',
        '\u{1b}' => 'e',
        '"' => '"',
        '\\' => '\\',
        '\u{85}' => 'N',
        '\u{a0}' => '_',
        '\u{2028}' => 'L',
        '\u{2029}' => 'P',
        c if (c as u32) <= 0xFF => return format!("x{:02X}", c as u32),
        c if (c as u32) <= 0xFFFF => return format!("u{:04X}", c as u32),
        c => return format!("U{:08X}", c as u32),
    };
    short.to_string()
}

/// yaml.v2's `is_printable`: no tab, no C1 controls, nothing beyond the Basic Multilingual
/// Plane (emoji are escaped), no byte-order mark.
fn is_printable(c: char) -> bool {
    matches!(c, '\n' | ' '..='~' | '\u{A0}'..='\u{D7FF}' | '\u{E000}'..='\u{FFFD}')
        && c != '\u{FEFF}'
}

fn is_break(c: char) -> bool {
    matches!(c, '\r' | '\n' | '\u{85}' | '\u{2028}' | '\u{2029}')
}

fn is_blank(c: char) -> bool {
    c == ' ' || c == '\t'
}

/// Whether a plain scalar with this text would be read as a bool, null, number or timestamp
/// (yaml.v2's `resolve`, which only looks further when the first character hints at it).
fn resolves_to_non_string(value: &str) -> bool {
    const KEYWORDS: &[&str] = &[
        "~", "null", "Null", "NULL", "y", "Y", "yes", "Yes", "YES", "n", "N", "no", "No", "NO",
        "true", "True", "TRUE", "false", "False", "FALSE", "on", "On", "ON", "off", "Off", "OFF",
        ".nan", ".NaN", ".NAN", ".inf", ".Inf", ".INF", "+.inf", "+.Inf", "+.INF", "-.inf",
        "-.Inf", "-.INF",
    ];
    let Some(first) = value.bytes().next() else {
        return true;
    };
    match first {
        b'y' | b'Y' | b'n' | b'N' | b't' | b'T' | b'f' | b'F' | b'o' | b'O' | b'~' => {
            KEYWORDS.contains(&value)
        }
        b'.' => KEYWORDS.contains(&value) || is_go_decimal_float(value),
        b'+' | b'-' | b'0'..=b'9' => {
            let plain = value.replace('_', "");
            KEYWORDS.contains(&value)
                || is_timestamp(value)
                || go_parse_int(&plain)
                || go_parse_uint(&plain).is_some()
                || is_yaml_float(&plain) && plain.parse::<f64>().is_ok_and(f64::is_finite)
        }
        _ => false,
    }
}

/// Go's `strconv.ParseUint(s, 0, 64)`: decimal, `0x`/`0o`/`0b` prefixes, or octal after a
/// leading `0`; no sign.
fn go_parse_uint(text: &str) -> Option<u64> {
    let bytes = text.as_bytes();
    let (digits, radix) = match bytes {
        [] => return None,
        [b'0', prefix, _, ..] if matches!(prefix.to_ascii_lowercase(), b'b' | b'o' | b'x') => {
            let radix = match prefix.to_ascii_lowercase() {
                b'b' => 2,
                b'o' => 8,
                _ => 16,
            };
            (&text[2..], radix)
        }
        [b'0', ..] => (&text[1..], 8),
        _ => (text, 10),
    };
    if !digits.chars().all(|c| c.is_digit(radix)) {
        return None;
    }
    if digits.is_empty() {
        return Some(0);
    }
    u64::from_str_radix(digits, radix).ok()
}

/// Go's `strconv.ParseInt(s, 0, 64)`: an optional sign, then as [`go_parse_uint`], in range.
fn go_parse_int(text: &str) -> bool {
    let (negative, unsigned) = match text.as_bytes().first() {
        Some(b'-') => (true, &text[1..]),
        Some(b'+') => (false, &text[1..]),
        _ => (false, text),
    };
    go_parse_uint(unsigned).is_some_and(|n| n < 1 << 63 || negative && n == 1 << 63)
}

/// `^[-+]?(\.[0-9]+|[0-9]+(\.[0-9]*)?)([eE][-+]?[0-9]+)?$`, yaml.v2's float syntax.
fn is_yaml_float(text: &str) -> bool {
    let digits = |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit());
    let unsigned = text.strip_prefix(['+', '-']).unwrap_or(text);
    let (mantissa, exponent) = match unsigned.find(['e', 'E']) {
        Some(at) => (&unsigned[..at], Some(&unsigned[at + 1..])),
        None => (unsigned, None),
    };
    let mantissa_ok = match mantissa.split_once('.') {
        Some(("", fraction)) => digits(fraction),
        Some((int, fraction)) => digits(int) && (fraction.is_empty() || digits(fraction)),
        None => digits(mantissa),
    };
    mantissa_ok && exponent.is_none_or(|e| digits(e.strip_prefix(['+', '-']).unwrap_or(e)))
}

/// Go's `strconv.ParseFloat` for a text starting with `.`: digits (underscores allowed between
/// them), an optional exponent, and a finite result.
fn is_go_decimal_float(text: &str) -> bool {
    let digits = |s: &str| {
        s.bytes().any(|b| b.is_ascii_digit()) && s.bytes().all(|b| b.is_ascii_digit() || b == b'_')
    };
    let (mantissa, exponent) = match text.find(['e', 'E']) {
        Some(at) => (&text[1..at], Some(&text[at + 1..])),
        None => (&text[1..], None),
    };
    digits(mantissa)
        && exponent.is_none_or(|e| digits(e.strip_prefix(['+', '-']).unwrap_or(e)))
        && underscores_between_digits(text)
        && text
            .replace('_', "")
            .parse::<f64>()
            .is_ok_and(f64::is_finite)
}

/// Go's `underscoreOK` for a decimal number: each `_` sits between two digits.
fn underscores_between_digits(text: &str) -> bool {
    let bytes = text.as_bytes();
    bytes.iter().enumerate().all(|(i, &b)| {
        b != b'_'
            || i > 0
                && bytes[i - 1].is_ascii_digit()
                && bytes.get(i + 1).is_some_and(u8::is_ascii_digit)
    })
}

/// yaml.v2's timestamps: what Go's `time.Parse` accepts for `2006-1-2`,
/// `2006-1-2T15:4:5.999999999Z07:00` (also with `t`) and `2006-1-2 15:4:5.999999999`.
fn is_timestamp(text: &str) -> bool {
    let Some(rest) = parse_date(text) else {
        return false;
    };
    let Some(separator) = rest.chars().next() else {
        return true;
    };
    // A space in a Go layout matches any run of spaces.
    let time = if separator == ' ' {
        rest.trim_start_matches(' ')
    } else {
        &rest[1..]
    };
    let Some(after_time) = parse_time(time) else {
        return false;
    };
    match separator {
        'T' | 't' => is_zone(after_time),
        ' ' => after_time.is_empty(),
        _ => false,
    }
}

/// Go's non-fixed-width number: one or two digits.
fn go_number(text: &str) -> Option<(u32, &str)> {
    let width = text.bytes().take(2).take_while(u8::is_ascii_digit).count();
    let number = text.get(..width).filter(|n| !n.is_empty())?.parse().ok()?;
    Some((number, &text[width..]))
}

/// `YYYY-M-D` with a valid month and day; returns what follows.
fn parse_date(text: &str) -> Option<&str> {
    let year_digits = text.bytes().take_while(u8::is_ascii_digit).count();
    if year_digits != 4 || text.as_bytes().get(4) != Some(&b'-') {
        return None;
    }
    let year: u32 = text[..4].parse().ok()?;
    let (month, rest) = go_number(&text[5..])?;
    let (day, rest) = go_number(rest.strip_prefix('-')?)?;
    let leap = year.is_multiple_of(4) && (!year.is_multiple_of(100) || year.is_multiple_of(400));
    let days = match month {
        2 if leap => 29,
        2 => 28,
        4 | 6 | 9 | 11 => 30,
        1..=12 => 31,
        _ => return None,
    };
    (1..=days).contains(&day).then_some(rest)
}

/// `H:M:S` in range with an optional fraction (`.` or `,` then digits); returns what follows.
fn parse_time(text: &str) -> Option<&str> {
    let (hour, rest) = go_number(text)?;
    let (minute, rest) = go_number(rest.strip_prefix(':')?)?;
    let (second, rest) = go_number(rest.strip_prefix(':')?)?;
    if hour >= 24 || minute >= 60 || second >= 60 {
        return None;
    }
    let fraction = rest
        .strip_prefix(['.', ','])
        .filter(|f| f.starts_with(|c: char| c.is_ascii_digit()));
    Some(fraction.map_or(rest, |f| f.trim_start_matches(|c: char| c.is_ascii_digit())))
}

/// `Z` or `±hh:mm` (hours up to 24, minutes up to 60), and nothing after it.
fn is_zone(text: &str) -> bool {
    if text == "Z" {
        return true;
    }
    let b = text.as_bytes();
    b.len() == 6
        && matches!(b[0], b'+' | b'-')
        && b[3] == b':'
        && [1, 2, 4, 5].iter().all(|&i| b[i].is_ascii_digit())
        && text[1..3].parse::<u32>().is_ok_and(|h| h <= 24)
        && text[4..6].parse::<u32>().is_ok_and(|m| m <= 60)
}

/// `^[-+]?[0-9][0-9_]*(?::[0-5]?[0-9])+(?:\.[0-9_]*)?$`: YAML 1.1 sexagesimal numbers such as
/// `1:20`, which the Go encoder always quotes.
fn is_base60_float(text: &str) -> bool {
    let unsigned = text.strip_prefix(['+', '-']).unwrap_or(text);
    let (body, fraction) = unsigned.split_once('.').unwrap_or((unsigned, ""));
    let mut parts = body.split(':');
    let first = parts.next().unwrap_or("");
    let sexagesimal = |p: &str| match p.as_bytes() {
        [d] => d.is_ascii_digit(),
        [t, d] => (b'0'..=b'5').contains(t) && d.is_ascii_digit(),
        _ => false,
    };
    body.contains(':')
        && first.starts_with(|c: char| c.is_ascii_digit())
        && first.bytes().all(|b| b.is_ascii_digit() || b == b'_')
        && parts.all(sexagesimal)
        && fraction.bytes().all(|b| b.is_ascii_digit() || b == b'_')
}

#[cfg(test)]
mod tests {
    use super::{JsonToYamlError, entry, scalar, sort_keys, through_json};

    fn name(value: &str) -> String {
        entry(2, "name", value)
    }

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
            "<<",
            "+inf",
            "12:70",
            "2024-13-01",
            "2023-2-29",
            "0x10000000000000000",
            "1e400",
            "0b2",
            "it's",
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
            "0xFFFFFFFFFFFFFFFF",
            "99999999999999999999",
            ".5",
            ".1_0",
            "08",
            "2024-01-02",
            "2024-2-29",
            "2024-1-2t1:2:3.5+01:00",
            "2024-1-2 1:2:3",
            "-12",
            "1_000",
            "~",
            "1:20",
            "12:30:59.5",
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
    }

    #[test]
    fn escapes_what_yaml_v2_cannot_print() {
        assert_eq!(scalar("a\u{1}"), "\"a\\x01\"");
        assert_eq!(scalar("a\tb"), "\"a\\tb\"");
        assert_eq!(scalar("😀x"), "\"\\U0001F600x\"");
        assert_eq!(
            scalar("\u{FEFF}a\"b c"),
            "\"\\uFEFF\\x61\\\"\\x62\\x20\\x63\""
        );
        assert_eq!(scalar("a\nb"), "\"a\\nb\"");
    }

    #[test]
    fn long_values_fold_at_80_columns() {
        let words = "a ".repeat(50) + "end";
        assert_eq!(
            name(&words),
            format!(
                "  name: {}\n    {}end\n",
                "a ".repeat(37).trim_end(),
                "a ".repeat(13)
            )
        );
        let quoted = "'q ".repeat(40);
        let folded = name(&quoted);
        assert!(folded.starts_with("  name: '''q ''q"), "{folded}");
        assert!(folded.ends_with("\n    ''q '\n"), "{folded}");
    }

    #[test]
    fn multi_line_values_are_literal_blocks() {
        assert_eq!(name("a\nb"), "  name: |-\n    a\n    b\n");
        assert_eq!(name("x\n"), "  name: |\n    x\n");
        assert_eq!(name("x\n\n"), "  name: |+\n    x\n\n");
        assert_eq!(name(" x\ny"), "  name: |2-\n     x\n    y\n");
        assert_eq!(name("a\u{2028}b"), "  name: 'a\u{2028}    b'\n");
    }

    #[test]
    fn long_keys_use_the_complex_form_and_keys_sort_naturally() {
        let key = "k".repeat(130);
        assert_eq!(entry(2, &key, "v"), format!("  ? {key}\n  : v\n"));
        let mut keys = ["a10", "b", "a9", "B", "123", "2x", "1", "_x", "-x"];
        sort_keys(&mut keys);
        assert_eq!(keys, ["-x", "_x", "1", "2x", "123", "B", "a9", "a10", "b"]);
    }

    #[test]
    fn strings_go_through_json_first() {
        let through = |v: &str| through_json(&[v]).map(|f| f[0].clone());
        assert_eq!(through("a  \u{85}  b"), Ok("a b".into()));
        assert_eq!(through("a \u{85} \u{85}\u{85} b"), Ok("a\n\nb".into()));
        assert_eq!(through("\u{85}x"), Ok(" x".into()));
        assert_eq!(through("a\u{85}---"), Ok("a ---".into()));
        assert_eq!(through("plain\tstays"), Ok("plain\tstays".into()));
        assert_eq!(
            through_json(&["x\u{85}y", "a\u{85}... b"]),
            Err(JsonToYamlError::DocumentIndicator(3))
        );
        assert_eq!(through("a\u{7f}b"), Err(JsonToYamlError::ControlCharacters));
        assert_eq!(
            through("a\u{ffff}"),
            Err(JsonToYamlError::ControlCharacters)
        );
    }
}
