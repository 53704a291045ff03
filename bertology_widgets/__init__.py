"""bertology-widgets: Jupyter widgets for looking inside transformers while they run.

The API starts at :class:`ModelSession` (the live model + GLUE state, no
widgets) and :class:`Dashboard` (the widgets on top of a session). The
engine functions (:func:`mask_heads`, :func:`prune_heads`, :func:`capture`,
:func:`head_importance`, ...) work on any supported transformers model.

The layers, one per folder, lowest first; a module imports only from its own
layer or a lower one (``tests/unit/test_layering.py`` checks it)::

    glue/       GLUE tasks, loaders and metrics
    runtime/    files, caches, processes, progress, memory: no model in sight
    core/       gating, adapters, capture, the layer-by-layer runner, pruning, precision, the bound model
    analyses/   evaluation, importance, masking curve, head roles, patching, ablation, probes
    models/     loading, the default model, fine-tuning, the small GPT-2
    session/    ModelSession: traitlets, no widgets
    widgets/    the views: ipywidgets + bqplot over a session
    commands/   the ``bertology`` command line (with cli.py, benchmark/ and this facade)

Data flows one way: model and data -> engine (``core/``, ``analyses/``: torch,
no Jupyter) -> :class:`ModelSession` -> views.

Imports are lazy so ``import bertology_widgets`` stays fast.
"""

from importlib import import_module

from ._version import __version__

_EXPORTS = {
    "bind": "core.bound",
    "BoundModel": "core.bound",
    "EvalSet": "core.bound",
    "as_bound": "core.bound",
    "Objective": "core.objective",
    "mask_heads": "core.gating",
    "as_head_mask": "core.gating",
    "prune_heads": "core.pruning",
    "PruneReport": "core.pruning",
    "capture": "core.capturing",
    "Capture": "core.capturing",
    "adapter_for": "core.architectures",
    "supported_architectures": "core.architectures",
    "UnsupportedArchitectureError": "core.architectures",
    "GLUE_TASKS": "glue",
    "get_task": "glue",
    "load_glue": "glue",
    "compute_metrics": "glue",
    "evaluate": "analyses.evaluation",
    "load_model": "models.loading",
    "default_model_dir": "models.default_model",
    "load_default_or": "models.default_model",
    "ModelSession": "session",
    "Dashboard": "widgets",
    "head_importance": "analyses.importance",
    "masking_curve": "analyses.masking_curve",
    "random_masking_curve": "analyses.masking_curve",
    "keep_one_head_per_layer": "analyses.masking_curve",
    "prune_and_compare": "analyses.masking_curve",
    # what a head does: roles, mean ablation, activation patching
    "head_roles": "analyses.head_roles",
    "HeadRoles": "analyses.head_roles",
    "head_output_means": "analyses.ablation",
    "patch_heads": "analyses.patching",
    "run_patching": "analyses.patching",
    # why this prediction (attention_flow and attention_norms are imported from their modules,
    # whose names they share: a package attribute would return the module once it is loaded)
    "token_attributions": "analyses.attribution",
    "attention_rollout": "analyses.attention_flow",
    "attribution_agreement": "analyses.faithfulness",
}

__all__ = ["__version__", *_EXPORTS]


def __getattr__(name):
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'bertology_widgets' has no attribute {name!r}")
    value = getattr(import_module(f".{module}", __name__), name)
    globals()[name] = value
    return value


def __dir__():
    return sorted(__all__)
