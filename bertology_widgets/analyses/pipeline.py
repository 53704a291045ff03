"""The classical NLP pipeline, probed on every layer under the head mask (Tenney, Das and Pavlick, 2019).

:func:`pipeline_probe` reads, for each probing task, how well a linear probe
recovers the annotation from each layer, from a learned scalar mix of all
layers, and from the mix of layers ``0..l`` (cumulative scoring):

* ``upos``: a word's universal POS tag (UD English-EWT; trained on dev, scored on test);
* ``deprel``: the relation between a word and its head, from their two
  vectors concatenated (subtypes stripped, root arcs left out);
* ``task``: the GLUE task's label of the sentence, from the pooled sentence
  state (``task_pooling``: the first token, or the last for a decoder, or the
  mean of the tokens; trained on a subset of the task's train split, scored on
  its dev split). :func:`~bertology_widgets.analyses.probe.layer_probe` and the
  ``LayerProbe`` panel show this row.

More word tasks are one small function each (:func:`bertology_widgets.analyses.ud.register_task`).
The hidden states come through :func:`~bertology_widgets.core.gating.mask_heads`,
so a head mask (zero or mean ablation) acts on the probes exactly as on the
score. For a causal model (GPT-2, Llama) a word's state has seen only the
words to its left. The probes and their optimiser are described in
:mod:`bertology_widgets.analyses.linear_probes`.

The result, :class:`PipelineResult`, saves as ``pipeline.npz`` and
``pipeline.json``. ``pipeline.json`` (format ``"bertology-widgets-pipeline"``,
version 1) holds:

- ``"tasks"``: task names in row order; ``"layers"``: the model's layer count ``L``;
- ``"mask"``: the ``(layers, heads)`` head mask as nested lists, or null; ``"ablation"``: ``"zero"`` or ``"mean"``;
- one dictionary per quantity, keyed by task: ``"accuracy"`` (test accuracy of the
  probe on each layer, a list of ``L + 1``, index 0 = embeddings), ``"majority"``
  (majority-class baseline), ``"mix_weights"`` (softmax of the scalar mix, ``L + 1``),
  ``"expected_layer"`` (``sum_l l * s_l``), ``"mix_accuracy"``, ``"cumulative"``
  (``P(l)``, accuracy of the probe on the mix of layers ``0..l``, ``L + 1``),
  ``"delta"`` (``P(l) - P(l - 1)``, first entry null), ``"centre_of_gravity"``
  (``sum_l l * Delta(l) / sum_l Delta(l)``), ``"n_train"``, ``"n_test"``, ``"classes"``;
- ``"dropped_words"`` (words cut by ``max_length``), ``"seconds"``, ``"options"``, ``"model"``.

NaN values are written as null.
"""

from __future__ import annotations

import hashlib
import json
import math
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Sequence

import numpy as np

from ..core.bound import BoundModel, as_bound
from ..runtime.progress import Progress, progress_reporter
from .linear_probes import (
    DEFAULT_L2,
    DEFAULT_MAX_ITER,
    ProbeData,
    TaskScores,
    centre_of_gravity,
    deltas,
    expected_layer,
    score_task,
    standardise,
)

if TYPE_CHECKING:
    from torch import nn
    from transformers import PreTrainedTokenizerBase

    from ..core.gating import HeadMaskLike
    from ..glue import Example
    from .ud import UDSentence

FORMAT = "bertology-widgets-pipeline"
VERSION = 1
#: The sentence-level row: the GLUE task's label.
GLUE_TASK_ROW = "task"
DEFAULT_TASKS = ("upos", "deprel", GLUE_TASK_ROW)
#: Per-task quantities written to pipeline.json / pipeline.npz, in the order of :class:`PipelineResult`.
PER_TASK_ARRAYS = ("accuracy", "mix_weights", "cumulative")
PER_TASK_SCALARS = ("majority", "mix_gamma", "mix_accuracy", "n_train", "n_test")


def known_tasks() -> tuple:
    """Every task name :func:`pipeline_probe` accepts (registered word tasks, then ``"task"``)."""
    from .ud import WORD_TASKS

    return (*WORD_TASKS, GLUE_TASK_ROW)


def check_tasks(tasks: Sequence[str]) -> tuple:
    """``tasks`` as a tuple, or ``ValueError`` naming an unknown or repeated task and the known ones."""
    tasks = tuple(tasks)
    known = known_tasks()
    if not tasks:
        raise ValueError(f"no probing task given; choose from {', '.join(known)}")
    for name in tasks:
        if name not in known:
            raise ValueError(f"unknown probing task {name!r}; choose from {', '.join(known)}")
    if len(set(tasks)) != len(tasks):
        raise ValueError(f"a probing task is named twice in {','.join(tasks)}")
    return tasks


@dataclass(frozen=True)
class PipelineResult:
    """What each layer knows, for each task.

    Attributes
    ----------
    tasks : tuple of str
    accuracy : np.ndarray ``(tasks, layers + 1)``
        Test accuracy of the probe on each layer (column 0: the embeddings).
    majority : np.ndarray ``(tasks,)``
        Test accuracy of the most frequent training label.
    mix_weights : np.ndarray ``(tasks, layers + 1)``
        ``softmax(a)`` of the scalar mix of all layers; ``mix_gamma`` (always 1), ``mix_accuracy`` ``(tasks,)``.
    cumulative : np.ndarray ``(tasks, layers + 1)``
        ``P(l)``: test accuracy of the probe on the mix of layers ``0..l``.
    n_train, n_test : np.ndarray int ``(tasks,)``
        Items the probes were trained and scored on.
    classes : dict of str -> list of str
    mask : np.ndarray ``(layers, heads)`` or None; ablation : str
    dropped_words : int
        Words left out because their tokens did not fit ``max_length``.
    seconds : float
    options : dict
        ``l2``, ``max_iter``, ``max_length``, ``max_sentences``, ``max_task_train``, ``task_pooling``.
    model : str
    """

    tasks: tuple
    accuracy: np.ndarray
    majority: np.ndarray
    mix_weights: np.ndarray
    mix_gamma: np.ndarray
    mix_accuracy: np.ndarray
    cumulative: np.ndarray
    n_train: np.ndarray
    n_test: np.ndarray
    classes: dict = field(default_factory=dict)
    mask: np.ndarray | None = None
    ablation: str = "zero"
    dropped_words: int = 0
    seconds: float = 0.0
    options: dict = field(default_factory=dict)
    model: str = ""

    @property
    def num_layers(self) -> int:
        return int(self.accuracy.shape[1]) - 1

    @property
    def expected_layer(self) -> np.ndarray:
        """``(tasks,)``: ``E_s[l] = sum_l l * s_l`` of each task's scalar mix."""
        return np.array([expected_layer(w) for w in self.mix_weights])

    @property
    def delta(self) -> np.ndarray:
        """``(tasks, layers + 1)``: ``P(l) - P(l - 1)``; column 0 is NaN."""
        return np.array([deltas(c) for c in self.cumulative])

    @property
    def centre_of_gravity(self) -> np.ndarray:
        """``(tasks,)``: ``sum_l l * Delta(l) / sum_l Delta(l)``."""
        return np.array([centre_of_gravity(c) for c in self.cumulative])

    @property
    def normalised_accuracy(self) -> np.ndarray:
        """``(tasks, layers + 1)``: accuracy scaled to 0 at the majority baseline and 1 at the best layer."""
        best = self.accuracy.max(axis=1, keepdims=True)
        base = self.majority[:, None]
        return (self.accuracy - base) / np.maximum(best - base, 1e-12)

    @property
    def heads_masked(self) -> int:
        return 0 if self.mask is None else int((np.asarray(self.mask) == 0).sum())

    def row(self, task: str) -> int:
        if task not in self.tasks:
            raise ValueError(f"this result has no task {task!r}; it has {', '.join(self.tasks)}")
        return self.tasks.index(task)

    # -- files -------------------------------------------------------------------------------
    def to_json(self) -> dict:
        """The documented ``pipeline.json`` content (see the module docstring)."""
        def per_task(values):
            return {t: _clean(v) for t, v in zip(self.tasks, values)}

        return {
            "format": FORMAT, "version": VERSION, "tasks": list(self.tasks), "layers": self.num_layers,
            "model": self.model, "mask": None if self.mask is None else np.asarray(self.mask).tolist(),
            "ablation": self.ablation, "heads_masked": self.heads_masked,
            "accuracy": per_task(self.accuracy), "majority": per_task(self.majority),
            "mix_weights": per_task(self.mix_weights), "expected_layer": per_task(self.expected_layer),
            "mix_gamma": per_task(self.mix_gamma), "mix_accuracy": per_task(self.mix_accuracy),
            "cumulative": per_task(self.cumulative), "delta": per_task(self.delta),
            "centre_of_gravity": per_task(self.centre_of_gravity),
            "n_train": per_task(self.n_train), "n_test": per_task(self.n_test),
            "classes": {t: list(self.classes.get(t, [])) for t in self.tasks},
            "dropped_words": int(self.dropped_words), "seconds": float(self.seconds), "options": self.options,
        }

    @classmethod
    def from_json(cls, data: dict) -> PipelineResult:
        """The result written by :meth:`to_json` (arrays rebuilt from the per-task lists)."""
        if data.get("format") != FORMAT:
            raise ValueError(f"not a pipeline result (format {data.get('format')!r}, expected {FORMAT!r})")
        tasks = tuple(data["tasks"])

        def rows(key, dtype=float):
            return np.array([_unclean(data[key][t]) for t in tasks], dtype=dtype)

        mask = data.get("mask")
        return cls(tasks=tasks, accuracy=rows("accuracy"), majority=rows("majority"),
                   mix_weights=rows("mix_weights"), mix_gamma=rows("mix_gamma"),
                   mix_accuracy=rows("mix_accuracy"), cumulative=rows("cumulative"),
                   n_train=rows("n_train", np.int64), n_test=rows("n_test", np.int64),
                   classes={t: list(v) for t, v in data.get("classes", {}).items()},
                   mask=None if mask is None else np.asarray(mask, dtype=np.float32),
                   ablation=data.get("ablation", "zero"), dropped_words=int(data.get("dropped_words", 0)),
                   seconds=float(data.get("seconds", 0.0)), options=dict(data.get("options", {})),
                   model=str(data.get("model", "")))

    def save(self, folder: str | Path) -> list[Path]:
        """Write ``pipeline.json`` and ``pipeline.npz`` (the arrays, with ``tasks``) into ``folder``."""
        folder = Path(folder)
        folder.mkdir(parents=True, exist_ok=True)
        json_path, npz_path = folder / "pipeline.json", folder / "pipeline.npz"
        json_path.write_text(json.dumps(self.to_json(), indent=1) + "\n", encoding="utf-8")
        arrays = {name: np.asarray(getattr(self, name)) for name in
                  ("accuracy", "majority", "mix_weights", "mix_gamma", "mix_accuracy", "cumulative", "delta",
                   "expected_layer", "centre_of_gravity", "n_train", "n_test")}
        arrays["tasks"] = np.array(self.tasks)
        if self.mask is not None:
            arrays["mask"] = np.asarray(self.mask, dtype=np.float32)
        np.savez(npz_path, **arrays)  # type: ignore[arg-type]
        return [npz_path, json_path]

    @classmethod
    def load(cls, folder: str | Path) -> PipelineResult:
        """Read ``pipeline.json`` from ``folder`` (or the file itself)."""
        path = Path(folder)
        path = path / "pipeline.json" if path.is_dir() else path
        return cls.from_json(json.loads(path.read_text(encoding="utf-8")))

    def state_names(self) -> list[str]:
        """The hidden states' names, as every view and table writes them: ``"emb"``, then ``"L0"``, ``"L1"``, ..."""
        return ["emb"] + [f"L{layer}" for layer in range(self.num_layers)]

    def table(self) -> str:
        """A plain-text table: per-layer accuracy, baseline, mix, expected layer and centre of gravity."""
        names = self.state_names()
        head = f"{'task':<8} {'majority':>8} " + " ".join(f"{name:>6}" for name in names)
        head += f" {'mix':>6} {'E[l]':>5} {'CoG':>5}"
        lines = [head]
        for i, task in enumerate(self.tasks):
            cells = " ".join(f"{a:6.3f}" for a in self.accuracy[i])
            lines.append(f"{task:<8} {self.majority[i]:8.3f} {cells} {self.mix_accuracy[i]:6.3f} "
                         f"{self.expected_layer[i]:5.2f} {self.centre_of_gravity[i]:5.2f}")
        lines.append("")
        lines.append("cumulative P(l) (probe on the mix of layers 0..l)")
        for i, task in enumerate(self.tasks):
            lines.append(f"{task:<8} {'':8} " + " ".join(f"{a:6.3f}" for a in self.cumulative[i]))
        lines.append("")
        lines.append("scalar-mix weights s_l")
        for i, task in enumerate(self.tasks):
            lines.append(f"{task:<8} {'':8} " + " ".join(f"{w:6.3f}" for w in self.mix_weights[i]))
        return "\n".join(lines)

    def plot(self, path: str | Path | None = None, baseline: PipelineResult | None = None):
        """Tenney's Figure 1 in matplotlib: normalised accuracy by layer, mix weights, E[l] and CoG markers.

        Returns the figure; writes it to ``path`` (``.png`` or ``.svg``) when given.
        ``baseline`` (e.g. the unmasked result) is drawn dashed beneath.
        """
        import matplotlib

        if path is not None:
            matplotlib.use("Agg", force=False)
        import matplotlib.pyplot as plt

        layers = np.arange(self.num_layers + 1)
        fig, (lines, heat) = plt.subplots(2, 1, figsize=(7, 2.2 + 0.5 * len(self.tasks) + 3),
                                          gridspec_kw={"height_ratios": [3, max(1, len(self.tasks))]})
        colours = plt.rcParams["axes.prop_cycle"].by_key()["color"]
        for i, task in enumerate(self.tasks):
            colour = colours[i % len(colours)]
            lines.plot(layers, self.normalised_accuracy[i], marker="o", color=colour,
                       label=f"{task} (best {self.accuracy[i].max():.3f}, majority {self.majority[i]:.3f})")
            if baseline is not None and task in baseline.tasks:
                lines.plot(layers, baseline.normalised_accuracy[baseline.row(task)], ls="--", color=colour, alpha=.5)
            for value, marker in ((self.expected_layer[i], "v"), (self.centre_of_gravity[i], "D")):
                if math.isfinite(value):
                    lines.plot([value], [1.08], marker=marker, color=colour, ls="none")
        lines.set_xticks(layers, self.state_names())
        lines.set_xlabel("hidden state (emb = embeddings)")
        lines.set_ylabel("accuracy, normalised\n(0 = majority, 1 = best layer)")
        lines.set_title(f"What each layer knows ({self.heads_masked} heads masked, {self.ablation} ablation)"
                        "\nv expected layer of the mix, \u25c6 centre of gravity")
        lines.legend(fontsize="small", loc="lower right")
        image = heat.imshow(self.mix_weights, aspect="auto", cmap="viridis", vmin=0)
        heat.set_yticks(range(len(self.tasks)), self.tasks)
        heat.set_xticks(layers, self.state_names())
        heat.set_xlabel("hidden state")
        heat.set_title("scalar-mix weights s_l")
        fig.colorbar(image, ax=heat)
        fig.tight_layout()
        if path is not None:
            fig.savefig(path)
            plt.close(fig)
        return fig


def _clean(value):
    if isinstance(value, np.ndarray):
        return [_clean(v) for v in value.tolist()]
    if isinstance(value, (float, np.floating)):
        return None if not math.isfinite(float(value)) else float(value)
    if isinstance(value, np.integer):
        return int(value)
    return value


def _unclean(value):
    if isinstance(value, list):
        return [np.nan if v is None else v for v in value]
    return np.nan if value is None else value


# -- data for each task --------------------------------------------------------------------------------
def _word_items(task_name: str, sentences: Sequence[UDSentence], offsets: np.ndarray, kept: np.ndarray):
    """``(index (items, k), labels list)`` of a word task, leaving out items that read a dropped word."""
    from .ud import WORD_TASKS

    task = WORD_TASKS[task_name]
    index, labels = [], []
    for i, sentence in enumerate(sentences):
        for words, label in task.items(sentence):
            rows = [int(offsets[i] + w) for w in words]
            if all(kept[r] for r in rows):
                index.append(rows)
                labels.append(label)
    return np.asarray(index, dtype=np.int64).reshape(-1, task.span_count), labels


def _label_ids(train_labels: list, test_labels: list) -> tuple[np.ndarray, np.ndarray, list]:
    """Integer labels; classes are the training labels, sorted; a test label never seen in training maps to -1."""
    classes = sorted(set(train_labels))
    ids = {c: i for i, c in enumerate(classes)}
    return (np.array([ids[c] for c in train_labels], dtype=np.int64),
            np.array([ids.get(c, -1) for c in test_labels], dtype=np.int64), classes)


def sentences_digest(sentences: Sequence[UDSentence]) -> str:
    """SHA-256 of the words and annotations, for the results cache."""
    h = hashlib.sha256()
    for s in sentences:
        h.update(json.dumps([s.words, s.upos, s.heads, s.deprels]).encode())
    return h.hexdigest()


def pipeline_probe(model: nn.Module | BoundModel, tokenizer: PreTrainedTokenizerBase | None,
                   tasks: Sequence[str] = ("upos", "deprel"),
                   *, train: Sequence[UDSentence] | None = None, test: Sequence[UDSentence] | None = None,
                   ud_dir: str | Path | None = None, task_train: Sequence[Example] | None = None,
                   task_test: Sequence[Example] | None = None, mask: HeadMaskLike = None,
                   ablation: str | None = None, means=None, max_sentences: int | None = None,
                   max_task_train: int | None = 2000, task_pooling: str = "cls", l2: float = DEFAULT_L2,
                   max_iter: int = DEFAULT_MAX_ITER, batch_size: int = 32, max_length: int = 128,
                   progress: Progress = False, cache: bool = False) -> PipelineResult:
    """Probe every layer for each task: per-layer accuracy, scalar mix, cumulative scoring.

    Parameters
    ----------
    model, tokenizer
        A supported model (sequence classifier or base model) and its fast tokenizer, or a
        :class:`~bertology_widgets.core.bound.BoundModel` (``tokenizer`` then ``None``).
    tasks : sequence of str
        Names from :func:`known_tasks`: ``"upos"``, ``"deprel"`` (and any registered word task), ``"task"``.
    train, test : sequences of :class:`~bertology_widgets.analyses.ud.UDSentence`, optional
        Treebank sentences the word probes are trained and scored on; default:
        English-EWT dev and test (``ud_dir``, ``$BERTOLOGY_UD_DIR``, else the embedded copy).
    task_train, task_test : sequences of GLUE examples
        Needed for the ``"task"`` row (labelled, a classification task).
    mask : array-like ``(layers, heads)``, optional; ablation : {"zero", "mean"}; means : ``(layers, heads, d_head)``
        The head gating the hidden states are computed under (see :func:`~bertology_widgets.core.gating.mask_heads`);
        ``ablation=None``: the bound model's default ablation (``BoundModel.ablation``).
    max_sentences : int, optional
        Use only the first N treebank sentences of each split (quick runs, tests).
    max_task_train : int, optional
        Random subset (seed 0) of the task's training examples, as the layer probe's default
        (None: all of them).
    task_pooling : {"cls", "mean"}
        The ``"task"`` row's sentence vector: the first token (encoders) or the last (decoders),
        or the mean of every token (see :func:`~bertology_widgets.analyses.pipeline_states.sentence_positions`).
    l2, max_iter
        The probes' regularisation and L-BFGS iterations (see :mod:`~bertology_widgets.analyses.linear_probes`).
    batch_size, max_length : int
        Forward-pass batches (they change nothing but speed and memory) and tokens per sentence.
    progress : bool or callable
        A tqdm bar, none, or ``progress(done, total)`` in steps (batches and probe fits).
    cache : bool
        Share the result through :mod:`~bertology_widgets.runtime.results_cache`, keyed by model, mask,
        ablation, data and options.

    Returns
    -------
    PipelineResult
    """
    from .representations import POOLINGS

    tasks = check_tasks(tasks)
    if task_pooling not in POOLINGS:
        raise ValueError(f"task_pooling must be one of {POOLINGS}, got {task_pooling!r}")
    word_tasks = [t for t in tasks if t != GLUE_TASK_ROW]
    if word_tasks:
        from .ud import load_ud

        train = list(train) if train is not None else load_ud("dev", ud_dir)
        test = list(test) if test is not None else load_ud("test", ud_dir)
        if max_sentences is not None:
            train, test = train[:max_sentences], test[:max_sentences]
        if not train or not test:
            raise ValueError(f"the word probes need training and test sentences; got {len(train)} and {len(test)}")
    glue_train = glue_test = None
    if GLUE_TASK_ROW in tasks:
        from .task_examples import class_labels, subsample

        if task_train is None or task_test is None:
            raise ValueError("the 'task' row needs the GLUE task's examples: task_train= and task_test=")
        glue_train, glue_test = subsample(task_train, max_task_train, 0), list(task_test)
        if not glue_train or not glue_test:
            raise ValueError(f"the 'task' row needs training and dev examples; got {len(glue_train)} and "
                             f"{len(glue_test)}")
        class_labels(glue_train, "training"), class_labels(glue_test, "dev")  # clear errors for regression / no labels
    bound = as_bound(model, tokenizer)
    model = bound.model
    if ablation is None:
        ablation, means = bound.ablation
    options = {"l2": float(l2), "max_iter": int(max_iter), "max_length": int(max_length),
               "max_sentences": max_sentences, "max_task_train": max_task_train, "task_pooling": task_pooling}
    mask_array = None if mask is None else np.array(mask, dtype=np.float32)

    def compute() -> dict:
        result = _compute(bound, tasks, train, test, glue_train, glue_test, mask_array, ablation, means,
                          options, l2, max_iter, batch_size, max_length, progress)
        return result.to_json()

    if not cache:
        return PipelineResult.from_json(compute())
    from ..runtime.results_cache import cached_result, examples_digest, model_fingerprint

    key = {"model": model_fingerprint(model), "tasks": list(tasks), "mask": mask_array, "ablation": ablation,
           "means": None if means is None or ablation != "mean" else np.asarray(means, dtype=np.float32),
           "train": sentences_digest(train) if word_tasks and train is not None else None,
           "test": sentences_digest(test) if word_tasks and test is not None else None,
           "task_train": examples_digest(glue_train) if glue_train else None,
           "task_test": examples_digest(glue_test) if glue_test else None, "options": options}
    value, _ = cached_result("pipeline", key, compute)
    return PipelineResult.from_json(value)


def _compute(bound, tasks, train, test, glue_train, glue_test, mask, ablation, means, options, l2,
             max_iter, batch_size, max_length, progress) -> PipelineResult:
    from .pipeline_states import encode_sentences, encode_words, unit_states

    start = time.perf_counter()
    model, tokenizer = bound.model, bound.tokenizer
    word_tasks = [t for t in tasks if t != GLUE_TASK_ROW]
    layers = bound.num_layers + 1
    encodings = {}
    if word_tasks:
        encodings["train"] = encode_words(tokenizer, train, max_length)
        encodings["test"] = encode_words(tokenizer, test, max_length)
    if GLUE_TASK_ROW in tasks:
        causal = bound.is_causal
        pooling = options["task_pooling"]
        encodings["task_train"] = encode_sentences(tokenizer, glue_train, causal, max_length, pooling)
        encodings["task_test"] = encode_sentences(tokenizer, glue_test, causal, max_length, pooling)
    batches = sum(-(-len(e.encoded) // batch_size) for e in encodings.values())
    fits = len(tasks) * (2 * layers - 1)
    scores: dict[str, TaskScores] = {}
    sizes, classes = {}, {}
    with progress_reporter(progress, batches + fits, desc="pipeline probes", unit="step") as report:
        def states_of(name):
            return unit_states(bound, None, encodings[name], mask, ablation, means, batch_size,
                               progress=lambda done, total: report.update(1) if done else None)

        def fitted():
            report.update(1)

        if word_tasks:
            train_states, test_states = states_of("train"), states_of("test")
            standardise(train_states, test_states, encodings["train"].kept)
            for name in word_tasks:
                train_index, train_labels = _word_items(name, train, encodings["train"].offsets,
                                                        encodings["train"].kept)
                test_index, test_labels = _word_items(name, test, encodings["test"].offsets, encodings["test"].kept)
                train_y, test_y, names = _label_ids(train_labels, test_labels)
                data = ProbeData(train_states, train_index, train_y, test_states, test_index, test_y, names)
                scores[name] = score_task(data, l2=l2, max_iter=max_iter, report=fitted)
                sizes[name], classes[name] = (len(train_y), len(test_y)), names
            del train_states, test_states
        if GLUE_TASK_ROW in tasks:
            from .task_examples import class_labels

            train_states, test_states = states_of("task_train"), states_of("task_test")
            standardise(train_states, test_states)
            train_y, test_y = class_labels(glue_train, "training"), class_labels(glue_test, "dev")
            names = [str(c) for c in sorted(set(train_y.tolist()))]
            remap = {int(c): i for i, c in enumerate(sorted(set(train_y.tolist())))}
            train_y = np.array([remap[int(y)] for y in train_y], dtype=np.int64)
            test_y = np.array([remap.get(int(y), -1) for y in test_y], dtype=np.int64)
            data = ProbeData(train_states, np.arange(len(train_y))[:, None], train_y, test_states,
                             np.arange(len(test_y))[:, None], test_y, names)
            scores[GLUE_TASK_ROW] = score_task(data, l2=l2, max_iter=max_iter, report=fitted)
            sizes[GLUE_TASK_ROW], classes[GLUE_TASK_ROW] = (len(train_y), len(test_y)), names
    dropped = sum(encodings[k].dropped for k in ("train", "test") if k in encodings)
    rows = [scores[t] for t in tasks]
    return PipelineResult(
        tasks=tasks,
        accuracy=np.array([s.accuracy for s in rows]),
        majority=np.array([s.majority for s in rows]),
        mix_weights=np.array([s.mix_weights for s in rows]),
        mix_gamma=np.array([s.mix_gamma for s in rows]),
        mix_accuracy=np.array([s.mix_accuracy for s in rows]),
        cumulative=np.array([s.cumulative for s in rows]),
        n_train=np.array([sizes[t][0] for t in tasks], dtype=np.int64),
        n_test=np.array([sizes[t][1] for t in tasks], dtype=np.int64),
        classes=classes, mask=mask, ablation=ablation if mask is not None else ablation, dropped_words=dropped,
        seconds=time.perf_counter() - start, options=options,
        model=str(getattr(getattr(model, "config", None), "_name_or_path", "") or type(model).__name__),
    )


__all__ = ["DEFAULT_TASKS", "GLUE_TASK_ROW", "PipelineResult", "check_tasks", "known_tasks", "pipeline_probe"]
