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

use tantivy::tokenizer::{Token, TokenStream, Tokenizer};
use unicode_segmentation::{UnicodeSegmentation, UnicodeWordIndices};

/// Words by UAX #29, typographic apostrophes made plain, possessive `'s` removed.
#[derive(Debug, Clone, Default)]
pub struct WordTokenizer {
    token: Token,
}

/// The stream of [`WordTokenizer`] over one text.
#[derive(Debug)]
pub struct WordTokenStream<'a> {
    words: UnicodeWordIndices<'a>,
    token: &'a mut Token,
}

impl Tokenizer for WordTokenizer {
    type TokenStream<'a> = WordTokenStream<'a>;

    fn token_stream<'a>(&'a mut self, text: &'a str) -> WordTokenStream<'a> {
        self.token.reset();
        WordTokenStream {
            words: text.unicode_word_indices(),
            token: &mut self.token,
        }
    }
}

fn is_apostrophe(c: char) -> bool {
    matches!(c, '\'' | '\u{2019}' | '\u{FF07}')
}

impl TokenStream for WordTokenStream<'_> {
    fn advance(&mut self) -> bool {
        for (from, word) in self.words.by_ref() {
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
    fn positions_count_words_and_apostrophes_are_plain() {
        assert_eq!(
            words("don’t O’Neil’s"),
            [("don't".to_string(), 0), ("O'Neil".to_string(), 1)]
        );
        assert!(words(" -- ' ").is_empty());
    }
}
