"""Settings, read from the environment (and an optional ``.env``) when asked.

Unset, everything runs on embedded defaults: ``DATABASE_URL`` -> SQLite ``data/production.db``,
``MLFLOW_TRACKING_URI`` -> local store ``mlruns/mlflow.db``, ``DASK_SCHEDULER_ADDRESS`` -> Dask's
local scheduler. Set them (``.env.example``) and the same code uses the services.
"""

import os
from dataclasses import dataclass
from pathlib import Path

from dotenv import dotenv_values
from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError

__all__ = [
    "RANDOM_STATE",
    "Settings",
    "ConfigurationError",
    "get_settings",
    "mask_url",
    "repo_root",
]

#: The seed every notebook, test and helper uses unless told otherwise.
RANDOM_STATE = 42

_NAMES = ("DATABASE_URL", "MLFLOW_TRACKING_URI", "DASK_SCHEDULER_ADDRESS", "PRODUCTION_DATA_DIR")


class ConfigurationError(ValueError):
    """A setting has a value the package cannot use."""


@dataclass(frozen=True)
class Settings:
    """Where the package keeps its data, runs and computations.

    ``mlflow_artifact_uri`` is None when a server keeps artifacts; ``dask_scheduler_address``
    None for Dask's local scheduler; ``sources``: ``"environment"``, ``".env"`` or ``"default"``.
    """

    database_url: str
    mlflow_tracking_uri: str
    mlflow_artifact_uri: str | None
    dask_scheduler_address: str | None
    data_dir: Path
    sources: dict

    @property
    def uses_services(self) -> bool:
        """Whether any setting points at a service rather than an embedded default."""
        local = self.database_url.startswith("sqlite") and self.dask_scheduler_address is None
        return not local or self.mlflow_tracking_uri.startswith(("http://", "https://"))

    def describe(self) -> dict:
        """Return ``{variable: (value, source)}``, safe to print: passwords are masked."""
        urls = [mask_url(self.database_url), mask_url(self.mlflow_tracking_uri)]
        values = [*urls, self.dask_scheduler_address or "(local scheduler)", str(self.data_dir)]
        return {name: (values[i], self.sources[name]) for i, name in enumerate(_NAMES)}


def repo_root() -> Path:
    """Return ``PRODUCTION_HOME`` if set, else this checkout (else the current directory)."""
    if home := os.environ.get("PRODUCTION_HOME"):
        return Path(home).expanduser().resolve()
    checkout = Path(__file__).resolve().parents[2]
    return checkout if (checkout / "pyproject.toml").is_file() else Path.cwd()


def mask_url(url: str | None) -> str:
    """Return ``url`` with its password (up to the last ``@``) as ``***``; never echo bad URLs.

    E.g. ``postgresql://ana:s3cret@host/db`` -> ``postgresql://ana:***@host/db``.
    """
    if not url:
        return ""
    scheme, sep, rest = url.partition("://")
    userinfo, at, host = rest.rpartition("@")
    if sep and at and ":" in userinfo:
        url = f"{scheme}://{userinfo.split(':', 1)[0]}:***@{host}"
    try:
        return make_url(url).render_as_string(hide_password=True)
    except (ArgumentError, ValueError, TypeError):
        return "<unparseable URL>"


def _problem(name: str, value: str) -> str | None:
    """Return what is wrong with ``value`` for variable ``name``, or None."""
    scheme = value.split(":", 1)[0]
    if name == "DASK_SCHEDULER_ADDRESS":
        host, _, port = value.split("://")[-1].rpartition(":")
        return None if host and port.isdigit() else "must look like 'tcp://host:port'"
    if name == "MLFLOW_TRACKING_URI" and scheme not in ("http", "https"):
        local = scheme in ("sqlite", "postgresql", "file", "databricks")
        return None if local else "must start with http://, https:// or sqlite://"
    try:
        url = make_url(value)
    except (ArgumentError, ValueError):
        return "is not a valid URL, e.g. 'postgresql+psycopg2://user:password@host:5432/db'"
    if "@" in (url.host or ""):
        return "has an '@' in its password: write it as %40"
    if name == "MLFLOW_TRACKING_URI":
        return None if url.host else "has no host, e.g. 'http://127.0.0.1:5000'"
    if url.get_backend_name() not in ("sqlite", "postgresql"):
        return "must point at SQLite or PostgreSQL"
    if url.get_backend_name() == "postgresql" and not (url.host and url.database):
        return "needs a host and a database name for PostgreSQL"
    return None


def get_settings(env_file: str | os.PathLike | None = None) -> Settings:
    """Read the settings: the environment wins over the ``.env`` file, then the defaults.

    Parameters
    ----------
    env_file : path-like, optional
        The ``.env`` file to read; defaults to ``.env`` at the repository root (may be missing).

    Returns
    -------
    Settings

    Raises
    ------
    ConfigurationError
        If a variable has a value the package cannot use; names it, never shows a password.
    """
    root = repo_root()
    path = Path(env_file) if env_file is not None else root / ".env"
    from_file = dotenv_values(path) if path.is_file() else {}
    values, sources = {}, {}
    for name in _NAMES:
        env_value = os.environ.get(name, "").strip()
        file_value = (from_file.get(name) or "").strip()
        values[name] = env_value or file_value or None
        sources[name] = "environment" if env_value else ".env" if file_value else "default"
    data_dir = Path(values["PRODUCTION_DATA_DIR"] or root / "data").expanduser().resolve()
    database_url = values["DATABASE_URL"] or f"sqlite:///{(data_dir / 'production.db').as_posix()}"
    tracking_uri, artifact_uri = values["MLFLOW_TRACKING_URI"], None
    if tracking_uri is None:
        tracking_uri = f"sqlite:///{(root / 'mlruns' / 'mlflow.db').as_posix()}"
        artifact_uri = (root / "mlruns" / "artifacts").as_uri()
    if (scheduler := values["DASK_SCHEDULER_ADDRESS"]) and "://" not in scheduler:
        scheduler = f"tcp://{scheduler}"
    for name, value in zip(_NAMES[:3], (database_url, tracking_uri, scheduler), strict=True):
        problem = value and _problem(name, value)
        if problem:
            raise ConfigurationError(f"{name} {problem}; got {mask_url(value)!r}.")
    return Settings(database_url, tracking_uri, artifact_uri, scheduler, data_dir, sources)
