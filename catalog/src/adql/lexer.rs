//! Splitting ADQL text into tokens with their byte offsets.

use super::*;

#[derive(Debug, Clone, PartialEq)]
pub(super) enum Tok {
    /// A keyword or an unquoted name, as written.
    Word(String),
    /// A double-quoted name, unescaped.
    Quoted(String),
    /// A single-quoted string, unescaped.
    Str(String),
    /// An unsigned number, as written.
    Num(String),
    Comma,
    LParen,
    RParen,
    Dot,
    Star,
    Semicolon,
    Plus,
    Minus,
    Slash,
    Concat,
    Cmp(Comparison),
    End,
}

#[derive(Debug, Clone)]
pub(super) struct Token {
    pub(super) tok: Tok,
    /// Byte offset of its first character.
    pub(super) at: usize,
    /// Byte offset just past it.
    pub(super) end: usize,
}

/// Splits the query into tokens. Every offset lies on a character boundary.
pub(super) fn lex(src: &str) -> Result<Vec<Token>, AdqlError> {
    let bytes = src.as_bytes();
    let mut tokens = Vec::new();
    let mut i = 0;
    while let Some(&b) = bytes.get(i) {
        let at = i;
        let next = bytes.get(i + 1).copied();
        let tok = match b {
            b'-' if next == Some(b'-') => {
                while bytes.get(i).is_some_and(|&b| b != b'\n') {
                    i += 1;
                }
                continue;
            }
            b'/' if next == Some(b'*') => {
                return Err(unsupported(
                    "a /* */ comment (ADQL comments start with --)",
                    at,
                ));
            }
            b'\'' => {
                let (text, end) =
                    quoted(src, at, '\'').ok_or(AdqlError::UnterminatedString { at })?;
                i = end;
                Tok::Str(text)
            }
            b'"' => {
                let (text, end) =
                    quoted(src, at, '"').ok_or(AdqlError::UnterminatedIdentifier { at })?;
                i = end;
                Tok::Quoted(text)
            }
            b'0'..=b'9' => {
                i = number_end(bytes, at)?;
                Tok::Num(src.get(at..i).unwrap_or_default().to_owned())
            }
            b'.' if next.is_some_and(|n| n.is_ascii_digit()) => {
                i = number_end(bytes, at)?;
                Tok::Num(src.get(at..i).unwrap_or_default().to_owned())
            }
            b if b.is_ascii_alphabetic() || b == b'_' => {
                while bytes
                    .get(i)
                    .is_some_and(|b| b.is_ascii_alphanumeric() || *b == b'_')
                {
                    i += 1;
                }
                Tok::Word(src.get(at..i).unwrap_or_default().to_owned())
            }
            _ => match operator(b, next) {
                Some((tok, len)) => {
                    i += len;
                    tok
                }
                None => {
                    let c = src.get(at..).and_then(|s| s.chars().next()).unwrap_or(' ');
                    if c.is_whitespace() {
                        i += c.len_utf8();
                        continue;
                    }
                    return Err(AdqlError::Syntax {
                        expected: "a keyword, a name, a value or an operator",
                        found: format!("`{}`", c.escape_debug()),
                        at,
                    });
                }
            },
        };
        tokens.push(Token { tok, at, end: i });
    }
    Ok(tokens)
}

/// The operator or punctuation starting with `b` (followed by `next`), and its length.
fn operator(b: u8, next: Option<u8>) -> Option<(Tok, usize)> {
    Some(match (b, next) {
        (b'<', Some(b'=')) => (Tok::Cmp(Comparison::Le), 2),
        (b'<', Some(b'>')) | (b'!', Some(b'=')) => (Tok::Cmp(Comparison::Ne), 2),
        (b'>', Some(b'=')) => (Tok::Cmp(Comparison::Ge), 2),
        (b'|', Some(b'|')) => (Tok::Concat, 2),
        (b'<', _) => (Tok::Cmp(Comparison::Lt), 1),
        (b'>', _) => (Tok::Cmp(Comparison::Gt), 1),
        (b'=', _) => (Tok::Cmp(Comparison::Eq), 1),
        (b',', _) => (Tok::Comma, 1),
        (b'(', _) => (Tok::LParen, 1),
        (b')', _) => (Tok::RParen, 1),
        (b'.', _) => (Tok::Dot, 1),
        (b'*', _) => (Tok::Star, 1),
        (b';', _) => (Tok::Semicolon, 1),
        (b'+', _) => (Tok::Plus, 1),
        (b'-', _) => (Tok::Minus, 1),
        (b'/', _) => (Tok::Slash, 1),
        _ => return None,
    })
}

/// The text of a literal quoted by `quote` starting at `at` (doubled quotes stand for one), and
/// the offset past its closing quote; `None` when it is not closed.
fn quoted(src: &str, at: usize, quote: char) -> Option<(String, usize)> {
    let mut text = String::new();
    let mut i = at + 1;
    loop {
        let close = i + src.get(i..)?.find(quote)?;
        text.push_str(src.get(i..close)?);
        if src.get(close + 1..)?.starts_with(quote) {
            text.push(quote);
            i = close + 2;
        } else {
            return Some((text, close + 1));
        }
    }
}

/// The end of the number starting at `at`: digits, an optional fraction, an optional exponent.
fn number_end(bytes: &[u8], at: usize) -> Result<usize, AdqlError> {
    let digits = |mut i: usize| {
        while bytes.get(i).is_some_and(u8::is_ascii_digit) {
            i += 1;
        }
        i
    };
    let mut i = digits(at);
    if bytes.get(i) == Some(&b'.') {
        i = digits(i + 1);
    }
    if matches!(bytes.get(i), Some(b'e' | b'E')) {
        let mut j = i + 1;
        if matches!(bytes.get(j), Some(b'+' | b'-')) {
            j += 1;
        }
        let end = digits(j);
        if end == j {
            let text = String::from_utf8_lossy(bytes.get(at..j).unwrap_or_default());
            return Err(AdqlError::InvalidNumber {
                text: text.into_owned(),
                at,
            });
        }
        i = end;
    }
    Ok(i)
}
