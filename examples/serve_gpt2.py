"""Chapter 1 of *Learning Ray*, Example 1-8: serve a GPT-2 model with Ray Serve.

The book's code as it stands, with ``from raylite import serve`` in place of ``from ray import
serve``. It needs ``pip install transformers torch`` and the model's weights (downloaded by
transformers on first use, or a local copy). Pick the model with the first argument or the
RAYLITE_SERVE_MODEL environment variable (default "gpt2"), and the port with
RAYLITE_SERVE_HTTP_PORT (default 8000; ``serve.start()`` reads it too)::

    python examples/serve_gpt2.py                      # the book's "gpt2"
    python examples/serve_gpt2.py /models/distilgpt2   # a local copy, no download
    HF_HUB_OFFLINE=1 python examples/serve_gpt2.py /models/gpt2   # and never try to download

As the book says, loading the model inside the function for every request is slow but the
quickest way to show a deployment; a class deployment that loads it once in ``__init__`` is the
real thing.
"""

import os
import sys

MODEL = sys.argv[1] if len(sys.argv) > 1 else os.environ.get("RAYLITE_SERVE_MODEL", "gpt2")
PORT = int(os.environ.get("RAYLITE_SERVE_HTTP_PORT", "8000"))

# Example 1-8.
from raylite import serve
from transformers import pipeline
import requests

serve.start()


@serve.deployment
def model(request):
    language_model = pipeline("text-generation", model=MODEL)
    query = request.query_params["query"]
    return language_model(query, max_length=100)


model.deploy()

query = "What's the meaning of life?"
response = requests.get(f"http://localhost:{PORT}/model?query={query}")
print(response.text)

serve.shutdown()
