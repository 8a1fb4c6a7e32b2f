"""Example 1-8 (examples/serve_gpt2.py) end to end, on a tiny GPT-2 built here: nothing is
downloaded. The tokenizer is a byte-level BPE trained on a few sentences with ``tokenizers``, the
model a 2-layer GPT2Config with random weights; both are saved with ``save_pretrained`` and the
example loads them by path through ``pipeline("text-generation", model=...)``."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest
from _support import free_port as _free_port

pytest.importorskip("torch")
pytest.importorskip("transformers")
pytest.importorskip("tokenizers")
pytest.importorskip("fastapi")

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TEXT = ["What's the meaning of life?", "To serve models and answer questions.",
        "Ray Serve hides the details of a model behind plain HTTP."] * 10


@pytest.fixture(scope="module")
def tiny_gpt2(tmp_path_factory):
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import GPT2Config, GPT2LMHeadModel, GPT2TokenizerFast

    path = tmp_path_factory.mktemp("tiny-gpt2")
    tokenizer = Tokenizer(models.BPE())
    tokenizer.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tokenizer.decoder = decoders.ByteLevel()
    tokenizer.train_from_iterator(TEXT, trainers.BpeTrainer(
        vocab_size=300, special_tokens=["<|endoftext|>"],
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet()))
    fast = GPT2TokenizerFast(tokenizer_object=tokenizer, bos_token="<|endoftext|>",
                             eos_token="<|endoftext|>", unk_token="<|endoftext|>")
    fast.save_pretrained(path)
    config = GPT2Config(vocab_size=len(fast), n_positions=128, n_embd=32, n_layer=2, n_head=2,
                        bos_token_id=fast.eos_token_id, eos_token_id=fast.eos_token_id)
    GPT2LMHeadModel(config).save_pretrained(path)
    return str(path)


def test_example_1_8_serves_a_local_gpt2_over_http(tiny_gpt2, tmp_path):
    env = dict(os.environ, HF_HUB_OFFLINE="1", TRANSFORMERS_OFFLINE="1",
               RAYLITE_SERVE_HTTP_PORT=str(_free_port()), PYTHONPATH=ROOT)
    result = subprocess.run([sys.executable, os.path.join(ROOT, "examples", "serve_gpt2.py"),
                             tiny_gpt2], cwd=tmp_path, env=env, capture_output=True,
                            text=True, timeout=240)
    assert result.returncode == 0, result.stderr[-3000:]
    answers = [line for line in result.stdout.splitlines() if line.startswith("[{")]
    assert answers, f"no JSON answer in the output:\n{result.stdout}\n{result.stderr[-3000:]}"
    (generated,) = json.loads(answers[-1])
    assert generated["generated_text"].startswith("What's the meaning of life?")
