"""Drives a running Quiver server with stock clients that name no model, as their users
write them: huggingface_hub's InferenceClient against /embed, against the server root
(as against a text-embeddings-inference server), and the OpenAI client against /v1.

Usage: tei_clients.py URL MODEL
Prints one JSON object: the text, and the vector each client got for it, so the caller
can check them against each other and against the model.
"""

import json
import sys

from huggingface_hub import InferenceClient
from openai import OpenAI

TEXT = "What similarity laws must be obeyed when constructing aeroelastic models?"


def main():
    url, model = sys.argv[1].rstrip("/"), sys.argv[2]
    out = {"text": TEXT}
    for name, target in (("hf_embed", f"{url}/embed"), ("hf_root", url)):
        vec = InferenceClient(model=target).feature_extraction(TEXT)
        out[name] = [float(x) for x in vec.reshape(-1)]
    client = OpenAI(base_url=f"{url}/v1", api_key="unused")
    out["openai"] = client.embeddings.create(input=[TEXT], model=model).data[0].embedding
    print(json.dumps(out))


if __name__ == "__main__":
    main()
