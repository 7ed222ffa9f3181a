//! Reading a password or auth token from standard input, as `docker login --password-stdin`
//! does: everything up to one trailing line break, which `echo` and here-strings add.

use std::io::Read;

use anyhow::Context;

/// The secret on standard input without its final `\n` or `\r\n` (other whitespace is kept:
/// it is part of what the user gave, and callers warn about it).
pub fn read() -> anyhow::Result<String> {
    let mut text = String::new();
    std::io::stdin()
        .read_to_string(&mut text)
        .context("reading the password from standard input")?;
    Ok(strip_line_break(&text).to_owned())
}

fn strip_line_break(text: &str) -> &str {
    let text = text.strip_suffix('\n').unwrap_or(text);
    text.strip_suffix('\r').unwrap_or(text)
}

#[cfg(test)]
mod tests {
    use super::strip_line_break;

    #[test]
    fn only_one_final_line_break_is_removed() {
        assert_eq!(
            strip_line_break("k]j64r{1sJSSF-;)K8\n"),
            "k]j64r{1sJSSF-;)K8"
        );
        assert_eq!(strip_line_break("tok\r\n"), "tok");
        assert_eq!(strip_line_break("tok \n\n"), "tok \n");
        assert_eq!(strip_line_break("tok"), "tok");
    }
}
