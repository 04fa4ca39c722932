"""Course package for Production ML: card-transaction fraud detection, end to end.

Modules, one concern each: ``config`` (settings), ``db`` (the course database),
``simulate`` (transaction simulator), ``data`` (medallion pipeline), ``sampling``,
``features``, ``tuning``, ``tracking`` (MLflow), ``explain`` (SHAP), ``monitoring`` (drift),
``serving`` and ``api`` (batch and online scoring), ``grading`` (assignment grader).

Import what you need from its module, e.g. ``from production.db import read_table``.
"""

from production.config import RANDOM_STATE, get_settings

__all__ = ["RANDOM_STATE", "get_settings"]
__version__ = "0.1.0"
