//! Text from users' files (image names, label rows) made safe to print on a terminal.

use std::borrow::Cow;

/// `text` with every control character but the tab written as an escape (`\u{1b}`, `\u{0}`,
/// `\n`), so that a file name cannot move the cursor, recolour the terminal or forge a line of
/// output. Text without control characters is returned as it is.
pub fn printable(text: &str) -> Cow<'_, str> {
    if !text.chars().any(is_unsafe) {
        return Cow::Borrowed(text);
    }
    let mut safe = String::with_capacity(text.len() + 8);
    for c in text.chars() {
        if is_unsafe(c) {
            safe.extend(c.escape_default());
        } else {
            safe.push(c);
        }
    }
    Cow::Owned(safe)
}

/// Control characters (C0, DEL, C1) other than the tab.
fn is_unsafe(c: char) -> bool {
    c.is_control() && c != '\t'
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escapes_control_characters_and_keeps_the_rest() {
        assert!(matches!(printable("galaxy é 1.png"), Cow::Borrowed(_)));
        assert_eq!(
            printable("a\u{1b}[31mred\0.png"),
            "a\\u{1b}[31mred\\u{0}.png"
        );
        assert_eq!(printable("two\nlines\u{9b}"), "two\\nlines\\u{9b}");
    }
}
