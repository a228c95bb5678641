//! Shared helpers for the model tests: unpacks the committed fixtures (gzip-compressed
//! weights and tokenizers) into temporary model directories, reads `expected.json`, and
//! compares vectors.

#![allow(dead_code)]

use std::fs::File;
use std::io::{BufReader, BufWriter};
use std::path::{Path, PathBuf};

use serde_json::Value;

pub fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures")
}

pub fn expected() -> Value {
    let text = std::fs::read_to_string(fixtures().join("expected.json")).unwrap();
    serde_json::from_str(&text).unwrap()
}

fn gunzip(src: &Path, dst: &Path) {
    let mut input = flate2::read::GzDecoder::new(BufReader::new(File::open(src).unwrap()));
    let mut output = BufWriter::new(File::create(dst).unwrap());
    std::io::copy(&mut input, &mut output).unwrap();
}

/// A model directory (`config.json`, `tokenizer.json`, `model.safetensors`) built from
/// fixture `name` (`qwen3-embed`, `qwen3-rerank` or `bert`).
pub fn model_dir(name: &str) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    let src = fixtures().join(name);
    std::fs::copy(src.join("config.json"), dir.path().join("config.json")).unwrap();
    gunzip(
        &src.join("model.safetensors.gz"),
        &dir.path().join("model.safetensors"),
    );
    let tok = if name == "bert" {
        src.join("tokenizer.json.gz")
    } else {
        fixtures().join("qwen3-tokenizer.json.gz")
    };
    gunzip(&tok, &dir.path().join("tokenizer.json"));
    dir
}

/// The tokenizer of fixture `name` (`qwen3` or `bert`), unpacked into `dir`.
pub fn tokenizer_file(name: &str, dir: &Path) -> PathBuf {
    let src = match name {
        "bert" => fixtures().join("bert/tokenizer.json.gz"),
        _ => fixtures().join("qwen3-tokenizer.json.gz"),
    };
    let path = dir.join(format!("{name}-tokenizer.json"));
    gunzip(&src, &path);
    path
}

pub fn strings(v: &Value) -> Vec<String> {
    v.as_array()
        .unwrap()
        .iter()
        .map(|s| s.as_str().unwrap().to_string())
        .collect()
}

pub fn ids(v: &Value) -> Vec<u32> {
    v.as_array()
        .unwrap()
        .iter()
        .map(|x| u32::try_from(x.as_u64().unwrap()).unwrap())
        .collect()
}

pub fn matrix(v: &Value) -> Vec<Vec<f32>> {
    v.as_array().unwrap().iter().map(floats).collect()
}

pub fn floats(v: &Value) -> Vec<f32> {
    v.as_array()
        .unwrap()
        .iter()
        .map(|x| x.as_f64().unwrap() as f32)
        .collect()
}

/// Largest absolute difference between two equally shaped matrices.
pub fn max_abs_err(got: &[Vec<f32>], want: &[Vec<f32>]) -> f32 {
    assert_eq!(got.len(), want.len(), "row count");
    got.iter()
        .zip(want)
        .map(|(g, w)| {
            assert_eq!(g.len(), w.len(), "row width");
            g.iter()
                .zip(w)
                .map(|(a, b)| (a - b).abs())
                .fold(0.0f32, f32::max)
        })
        .fold(0.0f32, f32::max)
}

/// Parity bar against the reference implementation.
pub const TOLERANCE: f32 = 1e-4;

/// Asserts parity and prints the observed error so test logs record it.
pub fn assert_close(label: &str, got: &[Vec<f32>], want: &[Vec<f32>]) {
    let err = max_abs_err(got, want);
    println!("{label}: max abs error {err:.3e}");
    assert!(
        err <= TOLERANCE,
        "{label}: max abs error {err} > {TOLERANCE}"
    );
}
