#!/usr/bin/env python3
"""Peer throughput run for Quiver's embedding benchmark (crates/quiver-embed/benches/throughput.rs).

Runs the same work as the Rust benchmark with PyTorch + transformers (float32, eager
attention, a fixed number of threads) so the benchmark can print ours/peer ratios:

* embedding: for each batch shape, tokenize the given texts (left padding, the tokenizer's
  own post-processor), run the Qwen3 model, pool the last token, L2-normalize;
* reranking: build `prefix + <Instruct>/<Query>/<Document> body + suffix` token ids per pair,
  run the decoder, and score sigmoid(yes - no) from ONLY the two LM-head rows, as Quiver does.

Input: --model-dir holding config.json (+ model.safetensors, else random weights from the
config) and --work, a JSON file {"embed": {"1x32": [texts...], ...}, "rerank": {"query": ...,
"docs": [...], "instruction": ...}} written by the benchmark. Output: one JSON object per line
on stdout, e.g. {"kind": "embed", "shape": "1x32", "tokens": 32, "seconds": 0.41}.

Install: pip install -r scripts/peers/requirements.txt
"""

import argparse
import json
import os
import sys
import time

PREFIX = (
    "<|im_start|>system\nJudge whether the Document meets the requirements based on the "
    'Query and the Instruct provided. Note that the answer can only be "yes" or "no".'
    "<|im_end|>\n<|im_start|>user\n"
)
SUFFIX = "<|im_end|>\n<|im_start|>assistant\n<think>\n\n</think>\n\n"
DEFAULT_TASK = "Given a web search query, retrieve relevant passages that answer the query"


def timed(fn, min_seconds, max_runs):
    """Runs fn once to warm up, then until min_seconds have passed (at least once)."""
    fn()
    runs, start = 0, time.perf_counter()
    while True:
        fn()
        runs += 1
        elapsed = time.perf_counter() - start
        if elapsed >= min_seconds or runs >= max_runs:
            return elapsed / runs


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model-dir", required=True)
    parser.add_argument("--tokenizer", required=True, help="tokenizer.json")
    parser.add_argument("--work", required=True, help="JSON file of texts per shape")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--min-seconds", type=float, default=3.0)
    parser.add_argument("--max-runs", type=int, default=5)
    args = parser.parse_args()

    import torch
    from tokenizers import Tokenizer
    from transformers import AutoConfig, AutoModelForCausalLM

    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    config = AutoConfig.from_pretrained(args.model_dir)
    config._attn_implementation = "eager"
    if os.path.exists(os.path.join(args.model_dir, "model.safetensors")):
        lm = AutoModelForCausalLM.from_pretrained(
            args.model_dir, config=config, dtype=torch.float32, attn_implementation="eager"
        )
    else:
        lm = AutoModelForCausalLM.from_config(config, dtype=torch.float32)
    lm.eval()
    decoder = lm.model
    tokenizer = Tokenizer.from_file(args.tokenizer)
    pad_id = config.eos_token_id if isinstance(config.eos_token_id, int) else 151643
    with open(args.work, encoding="utf-8") as f:
        work = json.load(f)

    def left_pad(rows):
        width = max(len(r) for r in rows)
        ids = torch.full((len(rows), width), pad_id, dtype=torch.long)
        mask = torch.zeros((len(rows), width), dtype=torch.long)
        for i, row in enumerate(rows):
            ids[i, width - len(row):] = torch.tensor(row, dtype=torch.long)
            mask[i, width - len(row):] = 1
        return ids, mask

    eos = tokenizer.token_to_id("<|endoftext|>")

    def embed(texts):
        # Qwen3-Embedding's tokenizer ends every input with <|endoftext|>, the pooled token.
        rows = [e.ids for e in tokenizer.encode_batch(texts)]
        rows = [r if r and r[-1] == eos else r + [eos] for r in rows]
        ids, mask = left_pad(rows)
        with torch.inference_mode():
            hidden = decoder(input_ids=ids, attention_mask=mask).last_hidden_state
            pooled = hidden[:, -1]
            return torch.nn.functional.normalize(pooled, p=2, dim=1), sum(len(r) for r in rows)

    for shape, texts in work.get("embed", {}).items():
        _, tokens = embed(texts)
        seconds = timed(lambda: embed(texts), args.min_seconds, args.max_runs)
        print(json.dumps({"kind": "embed", "shape": shape, "tokens": tokens, "seconds": seconds}))
        sys.stdout.flush()

    rerank = work.get("rerank")
    if rerank:
        yes = tokenizer.token_to_id("yes")
        no = tokenizer.token_to_id("no")
        rows_w = lm.get_output_embeddings().weight[[yes, no]].detach()
        prefix = tokenizer.encode(PREFIX, add_special_tokens=False).ids
        suffix = tokenizer.encode(SUFFIX, add_special_tokens=False).ids
        instruction = rerank.get("instruction") or DEFAULT_TASK

        def score():
            rows = []
            for doc in rerank["docs"]:
                body = f"<Instruct>: {instruction}\n<Query>: {rerank['query']}\n<Document>: {doc}"
                rows.append(prefix + tokenizer.encode(body, add_special_tokens=False).ids + suffix)
            ids, mask = left_pad(rows)
            with torch.inference_mode():
                last = decoder(input_ids=ids, attention_mask=mask).last_hidden_state[:, -1]
                logits = last @ rows_w.T
                return torch.sigmoid(logits[:, 0] - logits[:, 1]), sum(len(r) for r in rows)

        _, tokens = score()
        seconds = timed(score, args.min_seconds, args.max_runs)
        pairs = len(rerank["docs"])
        print(json.dumps({"kind": "rerank", "pairs": pairs, "tokens": tokens, "seconds": seconds}))


if __name__ == "__main__":
    main()
