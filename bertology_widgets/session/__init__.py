"""The model session: live state and incremental re-scoring (no ipywidgets here)."""

from .session import ModelSession

__all__ = ["ModelSession"]
