//! Text analyzers a collection can choose, and the small CJK tokenizer behind `cjk`.
//!
//! | analyzer | pipeline |
//! |----------|----------|
//! | `en` | Unicode words ([`WordTokenizer`]: UAX #29, possessive `'s` dropped) -> lowercase -> drop English stop words -> English stemmer |
//! | `simple` | words -> lowercase |
//! | `cjk` | words for non-CJK text; for runs of Chinese, Japanese or Korean characters every single character and every pair of neighbours -> lowercase |
//!
//! CJK scripts do not separate words with spaces, so a word tokenizer would turn a whole
//! sentence into one token and a query word would never match it. Character unigrams and
//! bigrams need no dictionary and let any query word find the documents that contain it.
//!
//! ## `en` and Lucene's `EnglishAnalyzer`
//!
//! `en` follows Lucene's chain (StandardTokenizer -> EnglishPossessiveFilter -> LowerCase
//! -> StopFilter -> PorterStemFilter), so `John's` is `john`, `dogs'` is `dog`,
//! `state-of-the-art` is `state` + `art`, and `3.14`, `1,000`, `2024` and `v2` stay whole.
//! The differences kept:
//!
//! - The stemmer is Snowball English (Porter2), not Lucene's original Porter: `generous` and
//!   `generate` stay apart (`generous`, `generat`) where Porter merges them (`gener`). It is
//!   also the stemmer bm25s and most Python stacks use.
//! - The stop words are Lucene's 33 (`a`, `an`, `and`, ... `with`), the same list; Lucene's
//!   keyword-marker (stem exclusion) set is not offered.
//! - Tokens over 64 bytes are dropped; Lucene splits them at 255 characters.
//! - The typographic apostrophes U+2019 and U+FF07 become `'`, so `don’t` matches `don't`;
//!   Lucene keeps them as written.
//! - Emoji are not tokens (Lucene's StandardTokenizer emits them).
//! - Words joined by a period are split there (`compressors.Dash` is `compressor` +
//!   `dash`, `node.js` is `node` + `js`) unless every piece is one letter (`U.S.A.` stays
//!   `u.s.a`) or the word holds a digit (`3.14`). Lucene keeps them whole, so a full stop
//!   without a space after it hides both words; on Cranfield the split lifts BM25
//!   nDCG@10 from 0.3686 to 0.3699.
//!
//! ## Pipeline versions
//!
//! Each analyzer's pipeline is registered in tantivy under a versioned name, which the
//! index's schema records, so an index always analyzes queries as it analyzed its
//! documents. Indexes created before `en` followed word boundaries (`quiver_en`: split at
//! every character that is not a letter or digit, no possessive filter) keep that pipeline,
//! and those created before words joined by periods were split keep `quiver_en2`; a text
//! index built or rebuilt now gets `quiver_en3`.

use std::collections::HashSet;

use serde::{Deserialize, Serialize};
use tantivy::tokenizer::{
    Language, LowerCaser, RemoveLongFilter, SimpleTokenizer, Stemmer, StopWordFilter, TextAnalyzer,
    TextAnalyzerBuilder, Token, TokenStream, Tokenizer,
};

use super::words::WordTokenizer;

/// Tokens longer than this many bytes are dropped (they are noise, not words).
const MAX_TOKEN_BYTES: usize = 64;

/// The analyzer a collection's text field uses; fixed at creation.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Analyzer {
    /// English: Unicode words without possessives, lowercase, stop words, stemming.
    #[default]
    En,
    /// Lowercase words, nothing else.
    Simple,
    /// Chinese/Japanese/Korean aware: character unigrams and bigrams for CJK runs.
    Cjk,
}

impl Analyzer {
    /// Every analyzer.
    pub const ALL: [Analyzer; 3] = [Analyzer::En, Analyzer::Simple, Analyzer::Cjk];

    /// The name new indexes register the analyzer's current pipeline under.
    pub fn tokenizer_name(self) -> &'static str {
        Pipeline::current(self).tokenizer_name()
    }

    /// The analyzer whose pipeline (current or earlier) is registered under `name`, if it
    /// is one of ours.
    pub fn from_tokenizer_name(name: &str) -> Option<Self> {
        Pipeline::from_tokenizer_name(name).map(Pipeline::analyzer)
    }

    /// Builds the analyzer's current tantivy pipeline.
    pub fn build(self) -> TextAnalyzer {
        Pipeline::current(self).build()
    }

    /// The tokens the current pipeline makes of `text` (for tests and debugging).
    pub fn tokens(self, text: &str) -> Vec<String> {
        Pipeline::current(self).tokens(text)
    }
}

/// One version of an analyzer's pipeline (see the module docs).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Pipeline {
    /// `en` before it followed word boundaries: split at non-alphanumerics.
    En1,
    /// `en` as Lucene's `EnglishAnalyzer`, words joined by periods kept whole.
    En2,
    /// `en` as Lucene's `EnglishAnalyzer`, words joined by periods split (module docs).
    En3,
    Simple,
    Cjk,
}

impl Pipeline {
    /// Every pipeline, for registration on an index.
    pub(crate) const ALL: [Pipeline; 5] = [
        Pipeline::En1,
        Pipeline::En2,
        Pipeline::En3,
        Pipeline::Simple,
        Pipeline::Cjk,
    ];

    /// The pipeline a new index of `a` uses.
    pub(crate) fn current(a: Analyzer) -> Self {
        match a {
            Analyzer::En => Pipeline::En3,
            Analyzer::Simple => Pipeline::Simple,
            Analyzer::Cjk => Pipeline::Cjk,
        }
    }

    pub(crate) fn analyzer(self) -> Analyzer {
        match self {
            Pipeline::En1 | Pipeline::En2 | Pipeline::En3 => Analyzer::En,
            Pipeline::Simple => Analyzer::Simple,
            Pipeline::Cjk => Analyzer::Cjk,
        }
    }

    /// The name stored in an index's schema; never change one once released.
    pub(crate) fn tokenizer_name(self) -> &'static str {
        match self {
            Pipeline::En1 => "quiver_en",
            Pipeline::En2 => "quiver_en2",
            Pipeline::En3 => "quiver_en3",
            Pipeline::Simple => "quiver_simple",
            Pipeline::Cjk => "quiver_cjk",
        }
    }

    pub(crate) fn from_tokenizer_name(name: &str) -> Option<Self> {
        Pipeline::ALL
            .into_iter()
            .find(|p| p.tokenizer_name() == name)
    }

    pub(crate) fn build(self) -> TextAnalyzer {
        match self {
            Pipeline::En1 => english(TextAnalyzer::builder(SimpleTokenizer::default())),
            Pipeline::En2 => english(TextAnalyzer::builder(WordTokenizer::default())),
            Pipeline::En3 => english(TextAnalyzer::builder(WordTokenizer::splitting_periods())),
            Pipeline::Simple => TextAnalyzer::builder(SimpleTokenizer::default())
                .filter(RemoveLongFilter::limit(MAX_TOKEN_BYTES))
                .filter(LowerCaser)
                .build(),
            Pipeline::Cjk => TextAnalyzer::builder(CjkTokenizer::default())
                .filter(RemoveLongFilter::limit(MAX_TOKEN_BYTES))
                .filter(LowerCaser)
                .build(),
        }
    }

    pub(crate) fn tokens(self, text: &str) -> Vec<String> {
        let mut analyzer = self.build();
        let mut stream = analyzer.token_stream(text);
        let mut out = Vec::new();
        while let Some(token) = stream.next() {
            out.push(token.text.clone());
        }
        out
    }
}

/// Finds where texts hold one query's terms (see [`crate::TextIndex::highlighter`]): the
/// query is analyzed once, then each text once.
pub struct Highlighter {
    terms: HashSet<String>,
    analyzer: TextAnalyzer,
}

impl std::fmt::Debug for Highlighter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Highlighter")
            .field("terms", &self.terms)
            .finish_non_exhaustive()
    }
}

impl Highlighter {
    pub(crate) fn new(pipeline: Pipeline, query: &str) -> Self {
        Highlighter {
            terms: pipeline.tokens(query).into_iter().collect(),
            analyzer: pipeline.build(),
        }
    }

    /// The character ranges `[start, end)` of `text` (counted in Unicode scalar values,
    /// as Python and most clients index strings) of the words whose analyzed form
    /// (stemmed, lowercased...) is one of the query's terms, in order, with overlapping
    /// or touching ranges (CJK n-grams) merged.
    pub fn mark(&mut self, text: &str) -> Vec<[usize; 2]> {
        if self.terms.is_empty() {
            return Vec::new();
        }
        let mut stream = self.analyzer.token_stream(text);
        let mut spans: Vec<(usize, usize)> = Vec::new();
        while let Some(token) = stream.next() {
            if self.terms.contains(&token.text) {
                spans.push((token.offset_from, token.offset_to));
            }
        }
        spans.sort_unstable();
        let mut merged: Vec<(usize, usize)> = Vec::with_capacity(spans.len());
        for (from, to) in spans {
            match merged.last_mut() {
                Some(last) if from <= last.1 => last.1 = last.1.max(to),
                _ => merged.push((from, to)),
            }
        }
        // Byte offsets to character offsets, counting each stretch of text once.
        let (mut at_byte, mut at_char) = (0, 0);
        let mut to_char = |byte: usize| {
            at_char += text[at_byte..byte].chars().count();
            at_byte = byte;
            at_char
        };
        merged
            .into_iter()
            .map(|(from, to)| [to_char(from), to_char(to)])
            .collect()
    }
}

/// The English filters after `words`: long tokens out, lowercase, stop words, stemmer.
fn english<T: Tokenizer>(words: TextAnalyzerBuilder<T>) -> TextAnalyzer {
    let base = words
        .filter(RemoveLongFilter::limit(MAX_TOKEN_BYTES))
        .filter(LowerCaser);
    match StopWordFilter::new(Language::English) {
        Some(stop) => base
            .filter(stop)
            .filter(Stemmer::new(Language::English))
            .build(),
        // Only absent when tantivy is built without its stop word lists.
        None => base.filter(Stemmer::new(Language::English)).build(),
    }
}

impl From<quiver_core::TextAnalyzer> for Analyzer {
    fn from(a: quiver_core::TextAnalyzer) -> Self {
        match a {
            quiver_core::TextAnalyzer::En => Analyzer::En,
            quiver_core::TextAnalyzer::Simple => Analyzer::Simple,
            quiver_core::TextAnalyzer::Cjk => Analyzer::Cjk,
        }
    }
}

/// Whether `c` belongs to a script written without spaces between words (Han, kana)
/// or to Hangul, which is short enough per word that bigrams work well too.
fn is_cjk(c: char) -> bool {
    matches!(c as u32,
        0x3040..=0x30FF      // Hiragana, Katakana
        | 0x31F0..=0x31FF    // Katakana phonetic extensions
        | 0x3400..=0x4DBF    // CJK extension A
        | 0x4E00..=0x9FFF    // CJK unified ideographs
        | 0xF900..=0xFAFF    // CJK compatibility ideographs
        | 0xFF66..=0xFF9F    // half-width Katakana
        | 0x1100..=0x11FF    // Hangul Jamo
        | 0x3130..=0x318F    // Hangul compatibility Jamo
        | 0xAC00..=0xD7AF    // Hangul syllables
        | 0x20000..=0x2FA1F  // CJK extensions B.. and compatibility supplement
    )
}

/// Words for non-CJK text, character unigrams and bigrams for CJK runs.
#[derive(Debug, Clone, Default)]
pub struct CjkTokenizer {
    tokens: Vec<Token>,
}

/// Replays the tokens [`CjkTokenizer`] computed up front.
#[derive(Debug)]
pub struct CjkTokenStream<'a> {
    tokens: &'a mut Vec<Token>,
    next: usize,
}

impl CjkTokenizer {
    fn push(&mut self, text: &str, from: usize, to: usize) {
        self.tokens.push(Token {
            offset_from: from,
            offset_to: to,
            position: self.tokens.len(),
            text: text[from..to].to_owned(),
            position_length: 1,
        });
    }

    fn tokenize(&mut self, text: &str) {
        self.tokens.clear();
        let chars: Vec<(usize, char)> = text.char_indices().collect();
        let end_of = |i: usize| chars.get(i + 1).map_or(text.len(), |(o, _)| *o);
        let mut i = 0;
        while i < chars.len() {
            let (start, c) = chars[i];
            if is_cjk(c) {
                let mut j = i;
                while j < chars.len() && is_cjk(chars[j].1) {
                    j += 1;
                }
                for (k, &(from, _)) in chars.iter().enumerate().take(j).skip(i) {
                    self.push(text, from, end_of(k));
                    if k + 1 < j {
                        self.push(text, from, end_of(k + 1));
                    }
                }
                i = j;
            } else if c.is_alphanumeric() {
                let mut j = i;
                while j < chars.len() && chars[j].1.is_alphanumeric() && !is_cjk(chars[j].1) {
                    j += 1;
                }
                self.push(text, start, end_of(j - 1));
                i = j;
            } else {
                i += 1;
            }
        }
    }
}

impl Tokenizer for CjkTokenizer {
    type TokenStream<'a> = CjkTokenStream<'a>;

    fn token_stream<'a>(&'a mut self, text: &'a str) -> CjkTokenStream<'a> {
        self.tokenize(text);
        CjkTokenStream {
            tokens: &mut self.tokens,
            next: 0,
        }
    }
}

impl TokenStream for CjkTokenStream<'_> {
    fn advance(&mut self) -> bool {
        self.next += 1;
        self.next <= self.tokens.len()
    }

    fn token(&self) -> &Token {
        &self.tokens[self.next - 1]
    }

    fn token_mut(&mut self) -> &mut Token {
        &mut self.tokens[self.next - 1]
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn english_stems_and_drops_stop_words() {
        assert_eq!(
            Analyzer::En.tokens("The Runner is running"),
            ["runner", "run"]
        );
        assert_eq!(
            Analyzer::Simple.tokens("The Runner is running"),
            ["the", "runner", "is", "running"]
        );
    }

    #[test]
    fn english_matches_lucenes_english_analyzer() {
        let en = |t: &str| Analyzer::En.tokens(t);
        // Possessives, with either apostrophe; `it's` is the stop word `it`.
        assert_eq!(en("John's dogs' it's"), ["john", "dog"]);
        assert_eq!(en("JOHN’S car"), ["john", "car"]);
        // Hyphens split; stop words among the parts go.
        assert_eq!(en("state-of-the-art"), ["state", "art"]);
        assert_eq!(en("boundary-layer"), ["boundari", "layer"]);
        // Numbers and letter-digit words stay whole.
        assert_eq!(
            en("3.14 1,000 2024 v2 mp3"),
            ["3.14", "1,000", "2024", "v2", "mp3"]
        );
        assert_eq!(en("version 2.0.1."), ["version", "2.0.1"]);
        // Apostrophes inside words stay, typographic ones become plain.
        assert_eq!(en("don't O'Neil don’t"), ["don't", "o'neil", "don't"]);
        // Trailing punctuation and slashes separate.
        assert_eq!(en("and/or, e-mail."), ["e", "mail"]);
    }

    #[test]
    fn the_earlier_english_pipeline_splits_at_every_non_alphanumeric() {
        assert_eq!(
            Pipeline::En1.tokens("John's 3.14 state-of-the-art"),
            ["john", "s", "3", "14", "state", "art"]
        );
    }

    #[test]
    fn cjk_makes_unigrams_and_bigrams() {
        assert_eq!(
            Analyzer::Cjk.tokens("Rust向量数据库"),
            ["rust", "向", "向量", "量", "量数", "数", "数据", "据", "据库", "库"]
        );
        assert_eq!(
            Analyzer::Cjk.tokens("东京 Tokyo"),
            ["东", "东京", "京", "tokyo"]
        );
        assert_eq!(
            Analyzer::Cjk.tokens("한국어"),
            ["한", "한국", "국", "국어", "어"]
        );
        assert!(Analyzer::Cjk.tokens("  ,, ").is_empty());
    }

    #[test]
    fn names_round_trip() {
        for a in Analyzer::ALL {
            assert_eq!(Analyzer::from_tokenizer_name(a.tokenizer_name()), Some(a));
        }
        for p in Pipeline::ALL {
            assert_eq!(Pipeline::from_tokenizer_name(p.tokenizer_name()), Some(p));
        }
        assert_eq!(Analyzer::En.tokenizer_name(), "quiver_en3");
        assert_eq!(
            Analyzer::from_tokenizer_name("quiver_en"),
            Some(Analyzer::En)
        );
    }
}
