//! Provider text inside each format's character set: nothing a payer types can break a
//! statement's structure or reach a spreadsheet as a formula.

/// Whether `text` would run as a formula in a spreadsheet that opens the file: it starts with
/// `=`, `+`, `-` or `@` (the CSV export's rule, `neutralised` in payments-cli).
fn formula_like(text: &str) -> bool {
    text.starts_with(['=', '+', '-', '@'])
}

/// `text` in the SWIFT character set as the Dutch banks write it and MT940 parsers accept it
/// (`a–z A–Z 0–9 - ( ) . , + space`):
/// - letters transliterated (`Ö`→`O`, `ı`→`i`, `ß`→`ss`, `–`→`-`), other symbols (emoji)
///   dropped rather than spelled out;
/// - `/` (the separator of the `:86:` subfields) written as `-`, `:` (the tags' mark) as `.`,
///   `&` as `+`, `_` and every line break, tab or other blank as a space, runs of spaces as one;
/// - everything else dropped (`'`, `?`, `{`, `}`, `=`, `@`, control characters, …);
/// - no leading `+` or `-` (a formula in a spreadsheet; the only two formula signs the set has).
///
/// The result can never hold a tag, a message end (`-` on a line of its own is only possible
/// after a line break, and there is none) nor a subfield separator.
pub(crate) fn swift(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut push = |c: char| {
        let c = match c {
            'a'..='z' | 'A'..='Z' | '0'..='9' | '-' | '(' | ')' | '.' | ',' | '+' | ' ' => c,
            '/' => '-',
            ':' => '.',
            '&' => '+',
            '_' | '\t' | '\n' | '\r' => ' ',
            _ => return,
        };
        if c == ' ' && (out.is_empty() || out.ends_with(' ')) {
            return;
        }
        out.push(c);
    };
    for c in text.chars() {
        if c.is_ascii() {
            push(c);
        } else if c.is_whitespace() {
            push(' ');
        } else if let Some(ascii) = deunicode::deunicode_char(c) {
            // A letter as its letters; a non-letter only when it is punctuation (`–`, `’`),
            // never an emoji's or a symbol's name.
            if c.is_alphanumeric() || !ascii.chars().any(|a| a.is_ascii_alphanumeric()) {
                ascii.chars().for_each(&mut push);
            }
        }
    }
    out.trim_start_matches(['+', '-', ' '])
        .trim_end()
        .to_owned()
}

/// `text` as XML 1.0 character data for an element of at most `max` characters (the schema's
/// `Max35Text`, `Max140Text`, …, which count characters):
/// - the characters XML 1.0 forbids dropped (control characters, `U+FFFE`, `U+FFFF`), line
///   breaks and tabs as spaces, leading and trailing blanks trimmed;
/// - formula-like text (`=`, `+`, `-`, `@` first) led by an apostrophe, as the CSV export does;
/// - cut on a character boundary, then escaped.
///
/// `None` when nothing is left (the schema's texts have a minimum length of 1).
pub(crate) fn xml(text: &str, max: usize) -> Option<String> {
    let clean: String = text.chars().filter_map(xml_char).collect();
    let clean = clean.trim();
    if clean.is_empty() {
        return None;
    }
    let lead = formula_like(clean).then_some('\'');
    let kept: String = lead.into_iter().chain(clean.chars()).take(max).collect();
    Some(escape(kept.trim_end()))
}

/// `c` as XML 1.0 character data: `None` for what XML forbids or a reader would not keep
/// (control characters, `U+FFFE`, `U+FFFF`), a space for a line break or tab.
pub(crate) fn xml_char(c: char) -> Option<char> {
    match c {
        '\r' | '\n' | '\t' => Some(' '),
        '\u{FFFE}' | '\u{FFFF}' => None,
        c if c.is_control() => None,
        c => Some(c),
    }
}

/// Escapes the five characters XML gives a meaning to.
pub(crate) fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&apos;"),
            c => out.push(c),
        }
    }
    out
}

/// `text` cut to at most `max` characters.
pub(crate) fn cut(text: &str, max: usize) -> &str {
    match text.char_indices().nth(max) {
        Some((end, _)) => &text[..end],
        None => text,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn swift_text_keeps_what_the_character_set_allows() {
        assert_eq!(swift("Ömer Yılmaz"), "Omer Yilmaz");
        assert_eq!(swift("Anne-Marie van 't Hof"), "Anne-Marie van t Hof");
        assert_eq!(swift("=cmd|' /c calc'!A1"), "cmd -c calcA1");
        assert_eq!(swift("-+ 10 :86: a\r\nb/c"), "10 .86. a b-c");
        assert_eq!(
            swift("Straße 😀 Jansen & Zn\u{a0}B.V. – 2"),
            "Strasse Jansen + Zn B.V. - 2"
        );
        assert_eq!(swift("\u{0}\u{7}-}{"), "");
    }

    #[test]
    fn xml_text_is_escaped_cut_and_never_a_formula() {
        assert_eq!(
            xml("a < b & \"c\"\u{1}\r\n", 140).unwrap(),
            "a &lt; b &amp; &quot;c&quot;"
        );
        assert_eq!(
            xml("  =cmd|' /c calc'!A1", 140).unwrap(),
            "&apos;=cmd|&apos; /c calc&apos;!A1"
        );
        assert_eq!(xml("\u{0}\u{7} ", 35), None);
        assert_eq!(xml(&"é".repeat(200), 35).unwrap().chars().count(), 35);
    }

    #[test]
    fn cut_counts_characters() {
        assert_eq!(cut("Ömer", 2), "Öm");
        assert_eq!(cut("ab", 5), "ab");
    }
}
