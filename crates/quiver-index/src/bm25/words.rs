//! The word tokenizer of the `en` analyzer: Unicode word boundaries (UAX #29, the rules
//! Lucene's `StandardTokenizer` follows) with English possessives removed.
//!
//! UAX #29 keeps a word whole across an apostrophe between letters (`don't`, `o'neil`) and
//! across `.` or `,` between digits (`3.14`, `1,000`), joins letters and digits (`v2`,
//! `mp3`) and splits at hyphens and slashes (`state-of-the-art` is four words). A trailing
//! `'s` is then dropped as Lucene's `EnglishPossessiveFilter` does (`John's` -> `John`); a
//! trailing bare apostrophe (`dogs'`) is never part of a word in the first place.
//!
//! The typographic apostrophes U+2019 and U+FF07 are written as `'`, so `don’t` and `don't`
//! are the same token: text pasted from word processors uses the former, typed queries
//! the latter.
//!
//! UAX #29 also keeps a word whole across `.` between letters, which suits acronyms
//! (`U.S.A.`, `i.e.`) but glues words where a space is missing after a full stop
//! (`compressors.Dash`, `sq.ft`, `node.js`), so that neither word can be found.
//! [`WordTokenizer::splitting_periods`] splits such a word at its periods unless every
//! piece is a single letter; numbers (`3.14`) are never split.

use tantivy::tokenizer::{Token, TokenStream, Tokenizer};
use unicode_segmentation::{UnicodeSegmentation, UnicodeWordIndices};

/// Words by UAX #29, typographic apostrophes made plain, possessive `'s` removed.
#[derive(Debug, Clone, Default)]
pub struct WordTokenizer {
    token: Token,
    split_periods: bool,
}

impl WordTokenizer {
    /// A tokenizer that also splits words joined by periods (module docs).
    pub fn splitting_periods() -> Self {
        WordTokenizer {
            token: Token::default(),
            split_periods: true,
        }
    }
}

/// The stream of [`WordTokenizer`] over one text.
#[derive(Debug)]
pub struct WordTokenStream<'a> {
    words: UnicodeWordIndices<'a>,
    token: &'a mut Token,
    split_periods: bool,
    /// Pieces of a split word still to come, and the byte offset where they start.
    pieces: Option<(usize, &'a str)>,
}

impl Tokenizer for WordTokenizer {
    type TokenStream<'a> = WordTokenStream<'a>;

    fn token_stream<'a>(&'a mut self, text: &'a str) -> WordTokenStream<'a> {
        self.token.reset();
        WordTokenStream {
            words: text.unicode_word_indices(),
            token: &mut self.token,
            split_periods: self.split_periods,
            pieces: None,
        }
    }
}

fn is_apostrophe(c: char) -> bool {
    matches!(c, '\'' | '\u{2019}' | '\u{FF07}')
}

/// Whether `word` is words joined by periods: it has a period and no digit, and some
/// piece between periods is longer than one character (else it is an acronym).
fn joined_by_periods(word: &str) -> bool {
    word.contains('.')
        && !word.chars().any(char::is_numeric)
        && word.split('.').any(|piece| piece.chars().nth(1).is_some())
}

impl<'a> WordTokenStream<'a> {
    /// The next word, or piece of a word joined by periods, with its byte offset.
    fn next_word(&mut self) -> Option<(usize, &'a str)> {
        if let Some((from, rest)) = self.pieces.take() {
            return Some(match rest.split_once('.') {
                Some((piece, tail)) => {
                    self.pieces = Some((from + piece.len() + 1, tail));
                    (from, piece)
                }
                None => (from, rest),
            });
        }
        let (from, word) = self.words.next()?;
        if self.split_periods && joined_by_periods(word) {
            self.pieces = Some((from, word));
            return self.next_word();
        }
        Some((from, word))
    }
}

impl TokenStream for WordTokenStream<'_> {
    fn advance(&mut self) -> bool {
        while let Some((from, word)) = self.next_word() {
            let text = &mut self.token.text;
            text.clear();
            text.extend(
                word.chars()
                    .map(|c| if is_apostrophe(c) { '\'' } else { c }),
            );
            if text.ends_with("'s") || text.ends_with("'S") {
                text.truncate(text.len() - 2);
            }
            if text.is_empty() {
                continue;
            }
            self.token.offset_from = from;
            self.token.offset_to = from + word.len();
            self.token.position = self.token.position.wrapping_add(1);
            return true;
        }
        false
    }

    fn token(&self) -> &Token {
        self.token
    }

    fn token_mut(&mut self) -> &mut Token {
        self.token
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn words(text: &str) -> Vec<(String, usize)> {
        let mut tokenizer = WordTokenizer::default();
        let mut stream = tokenizer.token_stream(text);
        let mut out = Vec::new();
        while let Some(t) = stream.next() {
            out.push((t.text.clone(), t.position));
        }
        out
    }

    #[test]
    fn follows_word_boundaries_and_drops_possessives() {
        let got: Vec<String> = words("John's dogs' state-of-the-art v2 costs 1,000 or 3.14.")
            .into_iter()
            .map(|(w, _)| w)
            .collect();
        assert_eq!(
            got,
            ["John", "dogs", "state", "of", "the", "art", "v2", "costs", "1,000", "or", "3.14"]
        );
    }

    #[test]
    fn splits_words_joined_by_periods_but_not_acronyms_or_numbers() {
        let mut tokenizer = WordTokenizer::splitting_periods();
        let mut stream = tokenizer.token_stream("U.S.A. compressors.Dash's node.js 3.14 x.y.zz");
        let mut got = Vec::new();
        while let Some(t) = stream.next() {
            got.push((t.text.clone(), t.offset_from, t.offset_to, t.position));
        }
        let want = [
            ("U.S.A", 0, 5, 0),
            ("compressors", 7, 18, 1),
            ("Dash", 19, 25, 2),
            ("node", 26, 30, 3),
            ("js", 31, 33, 4),
            ("3.14", 34, 38, 5),
            ("x", 39, 40, 6),
            ("y", 41, 42, 7),
            ("zz", 43, 45, 8),
        ];
        let want: Vec<_> = want
            .iter()
            .map(|&(w, a, b, p)| (w.to_string(), a, b, p))
            .collect();
        assert_eq!(got, want);
        // Without the option, UAX #29 keeps them whole.
        assert_eq!(words("compressors.Dash")[0].0, "compressors.Dash");
    }

    #[test]
    fn positions_count_words_and_apostrophes_are_plain() {
        assert_eq!(
            words("don’t O’Neil’s"),
            [("don't".to_string(), 0), ("O'Neil".to_string(), 1)]
        );
        assert!(words(" -- ' ").is_empty());
    }
}
