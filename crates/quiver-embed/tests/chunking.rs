//! Chunking by real tokenizers (the committed BERT WordPiece and Qwen3 byte-level BPE
//! ones): over random English, Chinese and code texts, including texts shorter than one
//! chunk and single words longer than one, chunks cover every token and every visible
//! character, hold at most `max_tokens` tokens and overlap by exactly `overlap_tokens`.

#![allow(clippy::unwrap_used)]

mod support;

use std::sync::OnceLock;

use proptest::prelude::*;
use quiver_core::{ChunkStrategy, ChunkingConfig};
use quiver_embed::{chunk_tokens, TextTokenizer};

fn tokenizers() -> &'static [(&'static str, TextTokenizer)] {
    static T: OnceLock<Vec<(&'static str, TextTokenizer)>> = OnceLock::new();
    T.get_or_init(|| {
        let dir = tempfile::tempdir().unwrap();
        ["bert", "qwen3"]
            .into_iter()
            .map(|name| {
                let path = support::tokenizer_file(name, dir.path());
                (name, TextTokenizer::from_file(&path, 512).unwrap())
            })
            .collect()
    })
}

fn english() -> impl Strategy<Value = String> {
    let word = prop::sample::select(vec![
        "the",
        "wing",
        "flow",
        "boundary",
        "layer",
        "is",
        "separated",
        "at",
        "Mach",
        "3.5",
        "pressure",
        "gradients",
        "didn't",
        "e.g.",
        "(see",
        "fig.",
        "2)",
        "über",
    ]);
    let sep = prop::sample::select(vec![" ", " ", " ", ", ", ". ", "! ", "? ", "\n", "\n\n"]);
    prop::collection::vec((word, sep), 0..80)
        .prop_map(|parts| parts.into_iter().map(|(w, s)| format!("{w}{s}")).collect())
}

fn chinese() -> impl Strategy<Value = String> {
    let c = prop_oneof![
        8 => (0x4E00u32..0x9FA5).prop_map(|u| char::from_u32(u).unwrap()),
        1 => prop::sample::select(vec!['。', '，', '！', '\n', ' ']),
    ];
    prop::collection::vec(c, 0..200).prop_map(|cs| cs.into_iter().collect())
}

fn code() -> impl Strategy<Value = String> {
    let piece = prop::sample::select(vec![
        "fn",
        " main",
        "()",
        " {",
        "\n    ",
        "let",
        " x_1",
        " =",
        " vec!",
        "[1, 2]",
        ";",
        "\n",
        "}",
        "// note",
        "\n\n",
        "self.items.iter()",
        "->",
        " Result<()>",
        "\t",
    ]);
    prop::collection::vec(piece, 0..120).prop_map(|ps| ps.concat())
}

/// One word far longer than any chunk, alone or among short ones.
fn long_word() -> impl Strategy<Value = String> {
    ("[a-z]{1,3}", "[a-zA-Z]{60,400}", "[a-z ]{0,20}").prop_map(|(a, w, b)| format!("{a} {w} {b}"))
}

fn text() -> impl Strategy<Value = String> {
    prop_oneof![english(), chinese(), code(), long_word()]
}

fn config() -> impl Strategy<Value = ChunkingConfig> {
    (1usize..48, any::<prop::sample::Index>(), any::<bool>()).prop_map(|(max, ix, plain)| {
        ChunkingConfig {
            max_tokens: max,
            overlap_tokens: ix.index(max),
            strategy: if plain {
                ChunkStrategy::Tokens
            } else {
                ChunkStrategy::Sentence
            },
        }
    })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(200))]

    #[test]
    fn chunks_cover_every_token_with_the_configured_overlap(text in text(), cfg in config()) {
        for (name, tok) in tokenizers() {
            let spans = tok.token_spans(&text).unwrap();
            let chunks = chunk_tokens(&text, &spans, &cfg);
            let n = spans.len();
            if n == 0 {
                prop_assert!(chunks.is_empty(), "{name}");
                prop_assert!(text.trim().is_empty(), "{name}: no tokens in {text:?}");
                continue;
            }
            prop_assert_eq!(chunks[0].tokens.start, 0, "{}", name);
            prop_assert_eq!(chunks.last().unwrap().tokens.end, n, "{}", name);
            if n <= cfg.max_tokens {
                prop_assert_eq!(chunks.len(), 1, "{} fits one chunk", name);
            }
            for (i, c) in chunks.iter().enumerate() {
                let len = c.tokens.len();
                prop_assert!(len >= 1 && len <= cfg.max_tokens, "{name}: chunk {i} has {len}");
                prop_assert_eq!(
                    c.bytes.clone(),
                    spans[c.tokens.start].0..spans[c.tokens.end - 1].1,
                    "{}", name
                );
                prop_assert!(text.get(c.bytes.clone()).is_some(), "{name}: not on char bounds");
                if let Some(next) = chunks.get(i + 1) {
                    prop_assert_eq!(next.tokens.start + cfg.overlap_tokens, c.tokens.end);
                }
            }
            // Every visible character lies inside some chunk's text.
            for (at, ch) in text.char_indices().filter(|(_, ch)| !ch.is_whitespace()) {
                prop_assert!(
                    chunks.iter().any(|c| c.bytes.contains(&at)),
                    "{name}: {ch:?} at {at} is in no chunk of {text:?}"
                );
            }
        }
    }
}

#[test]
fn sentence_chunks_of_real_prose_end_at_sentence_ends() {
    let text = "The boundary layer separates ahead of the shock. Downstream the flow \
                reattaches and a bubble forms. Heat transfer peaks at reattachment, \
                where the shear layer meets the wall again. The measured pressures agree \
                with theory to within five percent over the whole range of Mach numbers.";
    let cfg = ChunkingConfig {
        max_tokens: 24,
        overlap_tokens: 4,
        strategy: ChunkStrategy::Sentence,
    };
    for (name, tok) in tokenizers() {
        let spans = tok.token_spans(text).unwrap();
        let chunks = chunk_tokens(text, &spans, &cfg);
        assert!(chunks.len() >= 3, "{name}: {chunks:?}");
        for c in &chunks[..chunks.len() - 1] {
            let piece = &text[c.bytes.clone()];
            assert!(
                piece.ends_with('.') || piece.ends_with(','),
                "{name}: {piece:?}"
            );
        }
    }
}

#[test]
fn text_capacity_leaves_room_for_special_tokens() {
    let caps: Vec<usize> = tokenizers()
        .iter()
        .map(|(_, t)| t.text_capacity())
        .collect();
    // BERT adds [CLS] and [SEP]; the raw Qwen3 tokenizer adds nothing.
    assert_eq!(caps, [510, 512]);
}
