//! Text analyzers a collection can choose, and the small CJK tokenizer behind `cjk`.
//!
//! | analyzer | pipeline |
//! |----------|----------|
//! | `en` | words -> lowercase -> drop English stop words -> English stemmer |
//! | `simple` | words -> lowercase |
//! | `cjk` | words for non-CJK text; for runs of Chinese, Japanese or Korean characters every single character and every pair of neighbours -> lowercase |
//!
//! CJK scripts do not separate words with spaces, so a word tokenizer would turn a whole
//! sentence into one token and a query word would never match it. Character unigrams and
//! bigrams need no dictionary and let any query word find the documents that contain it.

use serde::{Deserialize, Serialize};
use tantivy::tokenizer::{
    Language, LowerCaser, RemoveLongFilter, SimpleTokenizer, Stemmer, StopWordFilter, TextAnalyzer,
    Token, TokenStream, Tokenizer,
};

/// Tokens longer than this many bytes are dropped (they are noise, not words).
const MAX_TOKEN_BYTES: usize = 64;

/// The analyzer a collection's text field uses; fixed at creation.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Analyzer {
    /// English: lowercase, stop words, stemming.
    #[default]
    En,
    /// Lowercase words, nothing else.
    Simple,
    /// Chinese/Japanese/Korean aware: character unigrams and bigrams for CJK runs.
    Cjk,
}

impl Analyzer {
    /// Every analyzer, for registration on an index.
    pub const ALL: [Analyzer; 3] = [Analyzer::En, Analyzer::Simple, Analyzer::Cjk];

    /// The name the analyzer is registered under in a tantivy index.
    pub fn tokenizer_name(self) -> &'static str {
        match self {
            Analyzer::En => "quiver_en",
            Analyzer::Simple => "quiver_simple",
            Analyzer::Cjk => "quiver_cjk",
        }
    }

    /// The analyzer registered under `name`, if it is one of ours.
    pub fn from_tokenizer_name(name: &str) -> Option<Self> {
        Analyzer::ALL
            .into_iter()
            .find(|a| a.tokenizer_name() == name)
    }

    /// Builds the tantivy analysis pipeline.
    pub fn build(self) -> TextAnalyzer {
        match self {
            Analyzer::En => {
                let base = TextAnalyzer::builder(SimpleTokenizer::default())
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
            Analyzer::Simple => TextAnalyzer::builder(SimpleTokenizer::default())
                .filter(RemoveLongFilter::limit(MAX_TOKEN_BYTES))
                .filter(LowerCaser)
                .build(),
            Analyzer::Cjk => TextAnalyzer::builder(CjkTokenizer::default())
                .filter(RemoveLongFilter::limit(MAX_TOKEN_BYTES))
                .filter(LowerCaser)
                .build(),
        }
    }

    /// The tokens the analyzer makes of `text` (for tests and debugging).
    pub fn tokens(self, text: &str) -> Vec<String> {
        let mut analyzer = self.build();
        let mut stream = analyzer.token_stream(text);
        let mut out = Vec::new();
        while let Some(token) = stream.next() {
            out.push(token.text.clone());
        }
        out
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
    }
}
