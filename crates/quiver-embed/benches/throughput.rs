//! Embedding and reranking throughput of the Qwen3 model at the real 0.6B shape (hidden 1024,
//! 28 layers, 16 query / 8 key-value heads, head_dim 128, intermediate 3072, vocab 151669)
//! with random weights, on 2 threads, against PyTorch running the same weights and inputs.
//!
//! `cargo bench -p quiver-embed --bench throughput` writes a random `model.safetensors`, the
//! config and the committed Qwen3 tokenizer into a temp dir, loads it with
//! `Qwen3Embedder::load_with` (f32 at the default and at the highest matmul precision,
//! then int8) and `Qwen3Reranker::load`, and prints
//! tokens/s at batch x length 1x32, 8x128 and 4x512 and reranker pairs/s. When a Python with torch and transformers is
//! found (`QUIVER_PEER_PYTHON`, else `python3`), it runs `scripts/peers/embed_throughput.py`
//! on the same model directory and texts (float32) after each round of ours, and prints
//! ours/peer per shape for each of our precisions. `QUIVER_BENCH_ROUNDS` rounds (3) alternate
//! the two sides, so a slow spell of a shared machine falls on both; each side's fastest
//! round counts.
//!
//! Without `--bench` (as `cargo test --all-targets` runs it) it builds a tiny model, runs
//! each step once and skips the peer. `QUIVER_BENCH_SHAPES=8x128,rerank` limits the work.

use std::collections::HashMap;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Instant;

use candle_core::{DType, Device, Tensor};
use quiver_embed::{ModelOptions, Precision, Qwen3Embedder, Qwen3Reranker, Reranker, TextEmbedder};

/// Architecture of the generated model.
struct Shape {
    hidden: usize,
    layers: usize,
    heads: usize,
    kv_heads: usize,
    head_dim: usize,
    intermediate: usize,
    vocab: usize,
}

const REAL_0_6B: Shape = Shape {
    hidden: 1024,
    layers: 28,
    heads: 16,
    kv_heads: 8,
    head_dim: 128,
    intermediate: 3072,
    vocab: 151_669,
};

/// Smoke size: tiny layers, but the real vocabulary so every token id is valid.
const TINY: Shape = Shape {
    hidden: 64,
    layers: 2,
    heads: 4,
    kv_heads: 2,
    head_dim: 16,
    intermediate: 128,
    vocab: 151_669,
};

const WORDS: &[&str] = &[
    "the",
    "vector",
    "search",
    "engine",
    "stores",
    "documents",
    "and",
    "finds",
    "nearest",
    "neighbours",
    "quickly",
    "with",
    "graphs",
    "while",
    "queries",
    "arrive",
    "from",
    "many",
    "users",
    "over",
    "time",
    "data",
    "model",
    "text",
];

type BoxError = Box<dyn std::error::Error>;

fn main() -> Result<(), BoxError> {
    let full = std::env::args().any(|a| a == "--bench");
    if std::env::var_os("RAYON_NUM_THREADS").is_none() {
        // Runs before any thread exists; candle and gemm size their pools from this.
        std::env::set_var("RAYON_NUM_THREADS", "2");
    }
    let only: Option<Vec<String>> = std::env::var("QUIVER_BENCH_SHAPES")
        .ok()
        .map(|s| s.split(',').map(str::to_string).collect());
    let wanted = |name: &str| only.as_ref().is_none_or(|o| o.iter().any(|s| s == name));
    let shape = if full { &REAL_0_6B } else { &TINY };
    let dir = tempfile::tempdir()?;
    let started = Instant::now();
    write_model(dir.path(), shape)?;
    eprintln!("model written in {:.1}s", started.elapsed().as_secs_f64());

    let shapes: Vec<(usize, usize)> = if full {
        vec![(1, 32), (8, 128), (4, 512)]
    } else {
        vec![(2, 16)]
    };
    let rounds: usize = match std::env::var("QUIVER_BENCH_ROUNDS") {
        Ok(v) => v.parse()?,
        Err(_) if full => 3,
        Err(_) => 1,
    };
    let mut embedders = Vec::new();
    let precisions = [
        ("f32", Precision::F32),
        ("f32-highest", Precision::F32Highest),
        ("int8", Precision::Int8),
    ];
    for (label, precision) in precisions {
        let options = ModelOptions {
            precision,
            ..ModelOptions::default()
        };
        embedders.push((label, Qwen3Embedder::load_with(dir.path(), options)?));
    }
    // The texts of each wanted shape, (name, tokens, texts).
    let mut cells = Vec::new();
    for &(batch, len) in &shapes {
        let name = format!("{batch}x{len}");
        if wanted(&name) {
            let texts: Vec<String> = (0..batch)
                .map(|i| text_of_tokens(&embedders[0].1, len, i))
                .collect::<Result<_, _>>()?;
            cells.push((name, batch * len, texts));
        }
    }
    let work: serde_json::Map<String, serde_json::Value> = cells
        .iter()
        .map(|(name, _, texts)| (name.clone(), serde_json::json!(texts)))
        .collect();
    let query = "which engine finds nearest neighbours quickly";
    let reranker = if wanted("rerank") {
        let (pairs, doc_words) = if full { (8, 100) } else { (2, 8) };
        let docs: Vec<String> = (0..pairs).map(|i| words(doc_words, i)).collect();
        Some((Qwen3Reranker::load(dir.path())?, docs))
    } else {
        None
    };
    let work = serde_json::json!({
        "embed": work,
        "rerank": reranker.as_ref().map(|(_, docs)| serde_json::json!({"query": query, "docs": docs, "instruction": null})),
    });

    // Rounds alternate ours and the peer's, so a slow spell of a shared machine falls on
    // both sides; each side's fastest round counts (best tokens/s per precision and shape).
    let mut ours: HashMap<(&str, String), f64> = HashMap::new();
    let mut ours_pairs: Option<f64> = None;
    let mut peer = PeerBest::default();
    for round in 1..=rounds {
        for (label, embedder) in &embedders {
            for (name, tokens, texts) in &cells {
                let refs: Vec<&str> = texts.iter().map(String::as_str).collect();
                let seconds = timed(full, || embedder.embed(&refs, None).map(drop))?;
                let rate = *tokens as f64 / seconds;
                println!("round {round} embed {label:>11} {name:>6}: {rate:8.1} tokens/s ({seconds:.3} s per batch)");
                let best = ours.entry((*label, name.clone())).or_insert(0.0);
                *best = best.max(rate);
            }
        }
        if let Some((reranker, docs)) = &reranker {
            let refs: Vec<&str> = docs.iter().map(String::as_str).collect();
            let tokens: usize = refs
                .iter()
                .map(|d| reranker.count_tokens(query, d, None))
                .sum::<Result<_, _>>()?;
            let seconds = timed(full, || reranker.score(query, &refs, None).map(drop))?;
            let pairs = refs.len() as f64 / seconds;
            println!(
                "round {round} rerank {} pairs: {pairs:8.2} pairs/s ({:.1} tokens/s, {seconds:.3} s per call)",
                refs.len(),
                tokens as f64 / seconds
            );
            ours_pairs = Some(ours_pairs.unwrap_or(0.0).max(pairs));
        }
        if full && !peer.run(dir.path(), &work) {
            break;
        }
    }
    println!("best of {rounds} rounds:");
    for (label, _) in &embedders {
        for (name, _, _) in &cells {
            let mine = ours[&(*label, name.clone())];
            match peer.embed.get(name) {
                Some(theirs) => println!(
                    "embed {label:>11} {name:>6}: ours {mine:8.1} tokens/s, peer {theirs:8.1} tokens/s, ours/peer {:.2}",
                    mine / theirs
                ),
                None => println!("embed {label:>11} {name:>6}: ours {mine:8.1} tokens/s"),
            }
        }
    }
    if let Some(mine) = ours_pairs {
        match peer.pairs {
            Some(theirs) => println!(
                "rerank: ours {mine:8.2} pairs/s, peer {theirs:8.2} pairs/s, ours/peer {:.2}",
                mine / theirs
            ),
            None => println!("rerank: ours {mine:8.2} pairs/s"),
        }
    }
    Ok(())
}

/// Seconds per call: one warm-up, then calls until 3 s have passed (at most 5); the peer
/// script uses the same rule. Smoke mode makes a single call.
fn timed(full: bool, mut f: impl FnMut() -> quiver_embed::Result<()>) -> Result<f64, BoxError> {
    if !full {
        let start = Instant::now();
        f()?;
        return Ok(start.elapsed().as_secs_f64());
    }
    f()?;
    let start = Instant::now();
    let mut runs = 0;
    loop {
        f()?;
        runs += 1;
        let elapsed = start.elapsed().as_secs_f64();
        if elapsed >= 3.0 || runs >= 5 {
            return Ok(elapsed / runs as f64);
        }
    }
}

fn words(n: usize, offset: usize) -> String {
    (0..n)
        .map(|i| WORDS[(i * 7 + offset * 5) % WORDS.len()])
        .collect::<Vec<_>>()
        .join(" ")
}

/// A document that tokenizes to exactly `len` tokens (the trailing `<|endoftext|>` included).
fn text_of_tokens(model: &Qwen3Embedder, len: usize, offset: usize) -> Result<String, BoxError> {
    let mut n = len.saturating_sub(1).max(1);
    for _ in 0..4 * len {
        let text = words(n, offset);
        let have = model.tokenize(&text, None)?.len();
        match have.cmp(&len) {
            std::cmp::Ordering::Equal => return Ok(text),
            std::cmp::Ordering::Less => n += 1,
            std::cmp::Ordering::Greater if n > 1 => n -= 1,
            std::cmp::Ordering::Greater => break,
        }
    }
    Err(format!("no text of exactly {len} tokens").into())
}

/// Writes config.json, tokenizer.json and a random model.safetensors (decoder at the root,
/// tied embeddings, as Qwen3-Embedding checkpoints are laid out).
fn write_model(dir: &Path, s: &Shape) -> Result<(), BoxError> {
    let config = serde_json::json!({
        "architectures": ["Qwen3ForCausalLM"],
        "model_type": "qwen3",
        "vocab_size": s.vocab,
        "hidden_size": s.hidden,
        "intermediate_size": s.intermediate,
        "num_hidden_layers": s.layers,
        "num_attention_heads": s.heads,
        "num_key_value_heads": s.kv_heads,
        "head_dim": s.head_dim,
        "hidden_act": "silu",
        "max_position_embeddings": 32768,
        "rms_norm_eps": 1e-6,
        "rope_theta": 1_000_000.0,
        "tie_word_embeddings": true,
        "attention_bias": false,
        "use_sliding_window": false,
        "eos_token_id": 151_643,
        "torch_dtype": "float32",
    });
    std::fs::write(dir.join("config.json"), serde_json::to_vec_pretty(&config)?)?;
    let fixture =
        Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/qwen3-tokenizer.json.gz");
    let mut tokenizer = Vec::new();
    flate2::read::GzDecoder::new(std::fs::File::open(&fixture)?).read_to_end(&mut tokenizer)?;
    std::fs::write(dir.join("tokenizer.json"), tokenizer)?;

    let dev = Device::Cpu;
    let rand = |shape: &[usize]| Tensor::randn(0f32, 0.02, shape, &dev);
    let ones = |n: usize| Tensor::ones(n, DType::F32, &dev);
    let (h, d, i) = (s.hidden, s.head_dim, s.intermediate);
    let mut t: HashMap<String, Tensor> = HashMap::new();
    t.insert("embed_tokens.weight".into(), rand(&[s.vocab, h])?);
    t.insert("norm.weight".into(), ones(h)?);
    for l in 0..s.layers {
        let p = format!("layers.{l}");
        for (name, shape) in [
            ("self_attn.q_proj", vec![s.heads * d, h]),
            ("self_attn.k_proj", vec![s.kv_heads * d, h]),
            ("self_attn.v_proj", vec![s.kv_heads * d, h]),
            ("self_attn.o_proj", vec![h, s.heads * d]),
            ("mlp.gate_proj", vec![i, h]),
            ("mlp.up_proj", vec![i, h]),
            ("mlp.down_proj", vec![h, i]),
        ] {
            t.insert(format!("{p}.{name}.weight"), rand(&shape)?);
        }
        for (name, n) in [
            ("input_layernorm", h),
            ("post_attention_layernorm", h),
            ("self_attn.q_norm", d),
            ("self_attn.k_norm", d),
        ] {
            t.insert(format!("{p}.{name}.weight"), ones(n)?);
        }
    }
    candle_core::safetensors::save(&t, dir.join("model.safetensors"))?;
    Ok(())
}

/// The PyTorch peer's fastest figures over the rounds it ran.
#[derive(Default)]
struct PeerBest {
    /// Tokens/s per shape.
    embed: HashMap<String, f64>,
    pairs: Option<f64>,
}

impl PeerBest {
    /// Runs the peer once on the same directory and texts and keeps its best figures;
    /// false (after saying why) when it cannot run.
    fn run(&mut self, dir: &Path, work: &serde_json::Value) -> bool {
        let python = std::env::var("QUIVER_PEER_PYTHON").unwrap_or_else(|_| "python3".into());
        let has_torch = Command::new(&python)
            .args(["-c", "import torch, transformers"])
            .output()
            .is_ok_and(|o| o.status.success());
        if !has_torch {
            println!("peer: skipped ({python} has no torch/transformers; see scripts/peers/requirements.txt)");
            return false;
        }
        let script: PathBuf =
            Path::new(env!("CARGO_MANIFEST_DIR")).join("../../scripts/peers/embed_throughput.py");
        let work_file = dir.join("work.json");
        if let Err(e) = std::fs::write(&work_file, work.to_string()) {
            println!("peer: skipped (cannot write {}: {e})", work_file.display());
            return false;
        }
        let output = Command::new(&python)
            .arg(&script)
            .arg("--model-dir")
            .arg(dir)
            .arg("--tokenizer")
            .arg(dir.join("tokenizer.json"))
            .arg("--work")
            .arg(&work_file)
            .args(["--threads", "2"])
            .output();
        let output = match output {
            Ok(o) if o.status.success() => o,
            Ok(o) => {
                println!(
                    "peer: failed: {}",
                    String::from_utf8_lossy(&o.stderr).trim()
                );
                return false;
            }
            Err(e) => {
                println!("peer: failed to start {python}: {e}");
                return false;
            }
        };
        for line in String::from_utf8_lossy(&output.stdout).lines() {
            let Ok(v) = serde_json::from_str::<serde_json::Value>(line) else {
                continue;
            };
            let seconds = v["seconds"].as_f64().unwrap_or(f64::NAN);
            match v["kind"].as_str() {
                Some("embed") => {
                    let shape = v["shape"].as_str().unwrap_or("?").to_string();
                    let rate = v["tokens"].as_f64().unwrap_or(f64::NAN) / seconds;
                    println!("peer embed {shape:>6}: {rate:8.1} tokens/s");
                    let best = self.embed.entry(shape).or_insert(0.0);
                    *best = best.max(rate);
                }
                Some("rerank") => {
                    let rate = v["pairs"].as_f64().unwrap_or(f64::NAN) / seconds;
                    println!("peer rerank: {rate:8.2} pairs/s");
                    self.pairs = Some(self.pairs.unwrap_or(0.0).max(rate));
                }
                _ => {}
            }
        }
        true
    }
}
