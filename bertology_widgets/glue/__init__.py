"""GLUE for BERTology: the task registry, data loaders and metrics.

>>> from bertology_widgets.glue import load_glue, compute_metrics
>>> dev = load_glue("sst2", "validation", glue_dir="../shared/glue")  # doctest: +SKIP
>>> compute_metrics("sst2", predictions, dev.labels)                  # doctest: +SKIP
{'accuracy': 0.91}

Importing this package imports neither torch nor scikit-learn / scipy (the
metrics import those when called) nor ``datasets`` (imported only when GLUE
is fetched from the hub).
"""

from .examples import Example, GlueSplit
from .loaders import GLUE_DIR_ENV, glue_file_path, load_glue
from .metrics import compute_metrics, compute_mnli_metrics
from .tasks import GLUE_TASKS, GlueTask, get_task, resolve_task_split

__all__ = [
    "GLUE_DIR_ENV",
    "GLUE_TASKS",
    "Example",
    "GlueSplit",
    "GlueTask",
    "compute_metrics",
    "compute_mnli_metrics",
    "get_task",
    "glue_file_path",
    "load_glue",
    "resolve_task_split",
]
