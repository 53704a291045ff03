"""bertology-widgets: Jupyter widgets for looking inside transformers while they run.

The API starts at :class:`ModelSession` (the live model + GLUE state, no
widgets) and :class:`Dashboard` (the widgets on top of a session). The
engine functions (:func:`mask_heads`, :func:`prune_heads`, :func:`capture`,
:func:`head_importance`, ...) work on any supported transformers model.

Imports are lazy so ``import bertology_widgets`` stays fast.
"""

from importlib import import_module

from ._version import __version__
from .runtime.memory import cap_onednn_caches

cap_onednn_caches()  # before torch builds its first oneDNN primitive: ~45 MiB less per bf16 kernel

_EXPORTS = {
    "mask_heads": "heads",
    "as_head_mask": "heads",
    "model_shape": "heads",
    "kept_heads": "heads",
    "prune_heads": "pruning",
    "PruneReport": "pruning",
    "capture": "capturing",
    "Capture": "capturing",
    "adapter_for": "architectures",
    "supported_architectures": "architectures",
    "UnsupportedArchitectureError": "architectures",
    "GLUE_TASKS": "glue",
    "get_task": "glue",
    "load_glue": "glue",
    "compute_metrics": "glue",
    "evaluate": "evaluation",
    "load_model": "models",
    "default_model_dir": "default_model",
    "load_default_or": "default_model",
    "ModelSession": "session",
    "Dashboard": "widgets",
    "head_importance": "importance",
    "masking_curve": "masking",
    "random_masking_curve": "masking",
    "keep_one_head_per_layer": "masking",
    "prune_and_compare": "masking",
    # what a head does: roles, mean ablation, activation patching
    "head_roles": "head_roles",
    "HeadRoles": "head_roles",
    "head_output_means": "ablation",
    "set_ablation": "ablation",
    "ablation_mode": "ablation",
    "patch_heads": "patching",
    "run_patching": "patching",
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
