//! Token-aware chunking: where a text longer than one model input is cut.
//!
//! [`chunk_tokens`] works on a text and the byte span of each of its tokens (as the
//! embedding model's tokenizer produced them, see [`crate::TextTokenizer::token_spans`]),
//! so chunk lengths are counted in the model's own tokens. Chunks cover every token; each
//! chunk after the first starts exactly `overlap_tokens` tokens before the end of the one
//! before it, so text cut at a boundary is still seen whole by one of the two chunks.

use std::ops::Range;

use quiver_core::{ChunkStrategy, ChunkingConfig};

/// One chunk: a run of tokens and the text they came from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Chunk {
    /// Token positions, half-open, into the span list the chunk was cut from.
    pub tokens: Range<usize>,
    /// Byte offsets into the text: from the first token's start to the last one's end.
    pub bytes: Range<usize>,
}

/// How good a place a cut is; higher is better.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Boundary {
    None,
    Word,
    Sentence,
    Paragraph,
}

/// Cuts `text`, whose tokens cover `spans` (byte ranges in order), into chunks of at most
/// `config.max_tokens` tokens. A text without tokens gives no chunks; one that fits gives
/// one chunk. `config` must have passed [`ChunkingConfig::validate`] (a zero `max_tokens`
/// or an overlap not below it cannot make progress and panics).
pub fn chunk_tokens(text: &str, spans: &[(usize, usize)], config: &ChunkingConfig) -> Vec<Chunk> {
    let (max, overlap) = (config.max_tokens, config.overlap_tokens);
    assert!(overlap < max, "chunking needs overlap_tokens < max_tokens");
    let n = spans.len();
    let chunk = |tokens: Range<usize>| Chunk {
        bytes: spans[tokens.start].0..spans[tokens.end - 1].1,
        tokens,
    };
    let mut chunks = Vec::new();
    let mut start = 0;
    while start < n {
        let hard_end = (start + max).min(n);
        if hard_end == n {
            chunks.push(chunk(start..n));
            break;
        }
        let end = match config.strategy {
            ChunkStrategy::Tokens => hard_end,
            // Every cut leaves more than `overlap` tokens behind, so the next chunk
            // starts later than this one.
            ChunkStrategy::Sentence => {
                best_cut(text, spans, start + overlap + 1, hard_end).unwrap_or(hard_end)
            }
        };
        chunks.push(chunk(start..end));
        start = end - overlap;
    }
    chunks
}

/// The best place in `lo..=hi` to cut before a token: the strongest boundary kind that
/// occurs at or after the window's middle (paragraph, then sentence), taking the latest
/// one of that kind; word boundaries count anywhere. `None` where no cut is a boundary.
fn best_cut(text: &str, spans: &[(usize, usize)], lo: usize, hi: usize) -> Option<usize> {
    let half = lo.max(hi - (hi - lo) / 2);
    let mut best: Option<(Boundary, usize)> = None;
    for i in (lo..=hi).rev() {
        let kind = boundary_before(text, spans, i);
        let counts = match kind {
            Boundary::None => false,
            Boundary::Word => true,
            Boundary::Sentence | Boundary::Paragraph => i >= half,
        };
        if counts && best.is_none_or(|(b, _)| kind > b) {
            best = Some((kind, i));
            if kind == Boundary::Paragraph {
                break;
            }
        }
    }
    best.map(|(_, i)| i)
}

/// Sentence-ending marks; the CJK ones end a sentence without a following space.
fn ends_sentence(c: char) -> bool {
    matches!(c, '.' | '!' | '?' | '…') || ends_cjk_sentence(c)
}

fn ends_cjk_sentence(c: char) -> bool {
    matches!(c, '。' | '！' | '？' | '；')
}

/// Scripts written without spaces between words: any cut between two of their
/// characters falls between words.
fn is_cjk(c: char) -> bool {
    matches!(c as u32,
        0x3040..=0x30FF | 0x3400..=0x4DBF | 0x4E00..=0x9FFF | 0xAC00..=0xD7AF | 0xF900..=0xFAFF
        | 0x3000..=0x303F | 0xFF00..=0xFFEF)
}

/// What kind of boundary a cut before token `i` falls on, judged from the text around
/// the token's start: the run of whitespace there and the visible characters either side.
fn boundary_before(text: &str, spans: &[(usize, usize)], i: usize) -> Boundary {
    let at = spans[i].0;
    // A token that starts inside the previous one (pieces of one character) is no place
    // to cut.
    if i == 0 || at < spans[i - 1].1 || !text.is_char_boundary(at) {
        return Boundary::None;
    }
    let (before, after) = text.split_at(at);
    let left = before.trim_end();
    let right = after.trim_start();
    let space = &text[left.len()..text.len() - right.len()];
    let (Some(prev), Some(next)) = (left.chars().next_back(), right.chars().next()) else {
        return Boundary::None;
    };
    let newlines = space.matches('\n').count();
    if newlines >= 2 {
        Boundary::Paragraph
    } else if newlines == 1 || ends_cjk_sentence(prev) || (ends_sentence(prev) && !space.is_empty())
    {
        Boundary::Sentence
    } else if !space.is_empty()
        || is_cjk(prev)
        || is_cjk(next)
        || !(prev.is_alphanumeric() && next.is_alphanumeric())
    {
        Boundary::Word
    } else {
        Boundary::None
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    /// Spans of whitespace-separated words and of each punctuation mark, like a simple
    /// word tokenizer.
    fn words(text: &str) -> Vec<(usize, usize)> {
        let mut spans = Vec::new();
        let mut start = None;
        for (i, c) in text.char_indices() {
            let end = i + c.len_utf8();
            if c.is_alphanumeric() {
                start.get_or_insert(i);
                continue;
            }
            if let Some(s) = start.take() {
                spans.push((s, i));
            }
            if !c.is_whitespace() {
                spans.push((i, end));
            }
        }
        if let Some(s) = start {
            spans.push((s, text.len()));
        }
        spans
    }

    fn texts(text: &str, config: &ChunkingConfig) -> Vec<String> {
        chunk_tokens(text, &words(text), config)
            .into_iter()
            .map(|c| text[c.bytes].to_string())
            .collect()
    }

    fn config(max: usize, overlap: usize, strategy: ChunkStrategy) -> ChunkingConfig {
        ChunkingConfig {
            max_tokens: max,
            overlap_tokens: overlap,
            strategy,
        }
    }

    #[test]
    fn sentences_and_paragraphs_end_chunks() {
        let text = "One two three. Four five six seven.\n\nEight nine ten eleven. Twelve.";
        let got = texts(text, &config(9, 0, ChunkStrategy::Sentence));
        assert_eq!(
            got,
            [
                "One two three. Four five six seven.",
                "Eight nine ten eleven. Twelve."
            ]
        );
        // Plain token cuts ignore the sentences.
        let got = texts(text, &config(8, 0, ChunkStrategy::Tokens));
        assert_eq!(got[0], "One two three. Four five six seven");
    }

    #[test]
    fn a_sentence_end_too_early_in_the_window_loses_to_a_later_word_gap() {
        let text = "Hi. one two three four five six seven eight";
        let got = texts(text, &config(8, 0, ChunkStrategy::Sentence));
        assert_eq!(got[0], "Hi. one two three four five six");
    }

    #[test]
    fn overlap_repeats_the_end_of_the_previous_chunk() {
        let text = "a b c d e f g h i j";
        let got = texts(text, &config(4, 2, ChunkStrategy::Tokens));
        assert_eq!(got, ["a b c d", "c d e f", "e f g h", "g h i j"]);
    }

    #[test]
    fn chinese_cuts_after_a_full_stop_and_decimals_are_not_sentence_ends() {
        let text = "我们今天去公园。明天下雨了吗";
        let spans: Vec<(usize, usize)> = text
            .char_indices()
            .map(|(i, c)| (i, i + c.len_utf8()))
            .collect();
        let got = chunk_tokens(text, &spans, &config(10, 0, ChunkStrategy::Sentence));
        assert_eq!(&text[got[0].bytes.clone()], "我们今天去公园。");
        let text = "pi is 3.14159 and e is 2.71828 ok";
        assert_eq!(boundary_before(text, &words(text), 4), Boundary::Word);
    }

    #[test]
    fn empty_and_short_texts() {
        assert!(chunk_tokens("   ", &[], &config(4, 1, ChunkStrategy::Sentence)).is_empty());
        let got = texts("just three words", &config(4, 1, ChunkStrategy::Sentence));
        assert_eq!(got, ["just three words"]);
    }
}
