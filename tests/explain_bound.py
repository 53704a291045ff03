"""``bind`` for the explanation tests: the bound model's, or a stand-in with the same attributes until it lands."""

from __future__ import annotations

import contextlib

import torch

try:
    from bertology_widgets.bound import bind  # noqa: F401
except ImportError:  # the bound model is not on this branch yet
    from bertology_widgets.architectures import adapter_for
    from bertology_widgets.heads import as_head_mask, kept_heads, mask_heads, model_shape

    class _StandIn:
        def __init__(self, model, tokenizer):
            self.model, self.tokenizer, self.adapter = model, tokenizer, adapter_for(model)
            self.num_layers, self.num_heads = model_shape(model)
            self.head_dim = self.adapter.head_dim(model)
            self.shape = (self.num_layers, self.num_heads)
            self.is_causal = self.adapter.causal
            self._ablation = ("zero", None)

        device = property(lambda self: next(self.model.parameters()).device)
        dtype = property(lambda self: next(self.model.parameters()).dtype)
        ablation = property(lambda self: self._ablation)

        def set_ablation(self, mode, means=None):
            self._ablation = (mode, None if means is None else torch.as_tensor(means))

        def gates(self, mask):
            return as_head_mask(mask, self.num_layers, self.num_heads)

        def kept_heads(self):
            return kept_heads(self.model)

        def task_logits(self, logits):
            return logits

        @contextlib.contextmanager
        def masked(self, mask, ablation=None, means=None):
            if ablation is None:
                ablation, means = self._ablation
            with mask_heads(self.model, mask, ablation, means):
                yield self

    def bind(model, tokenizer, task=None, label_map=None):  # type: ignore[no-redef]
        return _StandIn(model, tokenizer)

    import sys
    import types

    _module = types.ModuleType("bertology_widgets.bound")
    _module.bind = bind  # type: ignore[attr-defined]
    sys.modules.setdefault("bertology_widgets.bound", _module)  # the CLI's `from ..bound import bind`
