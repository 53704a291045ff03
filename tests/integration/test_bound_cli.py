"""``bertology mask`` binds the model once and tokenizes the dev set once."""

from __future__ import annotations

import json

from bertology_widgets.cli import main
from bertology_widgets.testing import tiny_examples, tiny_model


def dev_folder(root, texts):
    (root / "glue" / "SST-2").mkdir(parents=True)
    rows = "".join(f"{t}\t{i % 2}\n" for i, t in enumerate(texts))
    (root / "glue" / "SST-2" / "dev.tsv").write_text("sentence\tlabel\n" + rows, encoding="utf-8")
    return root / "glue"


def test_bertology_mask_tokenizes_each_dev_text_once(tokenizer, tmp_path, tokenizer_calls):
    model = tiny_model("bert", seed=4)
    model.save_pretrained(tmp_path / "model")
    tokenizer.save_pretrained(tmp_path / "model")
    texts = sorted({ex.text_a for ex in tiny_examples(24, seed=8)})
    glue = dev_folder(tmp_path, texts)
    assert main(["mask", "--model", str(tmp_path / "model"), "--task", "sst2", "--glue-dir", str(glue),
                 "--out", str(tmp_path / "out"), "--random-seeds", "0", "--masking-amount", "0.25",
                 "--masking-threshold", "0.1"]) == 0
    steps = len(json.loads((tmp_path / "out" / "curve.json").read_text())["steps"])
    assert steps > 2  # several importance passes and scorings ran over the same encoding
    for text in texts:
        # one encoding (cut to max_length) and one untruncated pass that finds the truncated examples
        assert tokenizer_calls[(text, True)] == 1, text
        assert tokenizer_calls[(text, False)] <= 1, text


