"""Settings for the course package, read from the environment when asked.

Nothing happens at import. :func:`get_settings` reads ``os.environ`` and, for
variables the environment does not set, an optional ``.env`` file at the
repository root. With nothing set, everything runs on embedded defaults:

* ``DATABASE_URL`` unset -> a SQLite file ``data/production.db`` in the repository;
* ``MLFLOW_TRACKING_URI`` unset -> a local MLflow store ``mlruns/mlflow.db``;
* ``DASK_SCHEDULER_ADDRESS`` unset -> Dask's local threaded scheduler.

Set them (``docker compose up`` and the ``.env.example`` values) and the same
code uses PostgreSQL, the MLflow server and a Dask cluster.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

from dotenv import dotenv_values

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

_VARIABLES = (
    "DATABASE_URL",
    "MLFLOW_TRACKING_URI",
    "DASK_SCHEDULER_ADDRESS",
    "PRODUCTION_DATA_DIR",
)


class ConfigurationError(ValueError):
    """A setting has a value the package cannot use."""


@dataclass(frozen=True)
class Settings:
    """Where the package keeps its data, runs and computations.

    Attributes
    ----------
    database_url : str
        SQLAlchemy URL of the course database (SQLite or PostgreSQL).
    mlflow_tracking_uri : str
        MLflow tracking URI: ``sqlite:///...`` for the local store or ``http(s)://`` for a server.
    mlflow_artifact_uri : str or None
        Where a local store keeps artifacts; ``None`` when a server manages them.
    dask_scheduler_address : str or None
        Address of a Dask scheduler (``tcp://host:port``); ``None`` runs Dask locally.
    data_dir : pathlib.Path
        Folder for files the package writes (raw landing zone, parquet lake, SQLite file).
    sources : dict
        For each variable, where its value came from: ``"environment"``, ``".env"`` or ``"default"``.
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
        return (
            not self.database_url.startswith("sqlite")
            or self.mlflow_tracking_uri.startswith(("http://", "https://"))
            or self.dask_scheduler_address is not None
        )

    def describe(self) -> dict:
        """Return the settings as a dict safe to print: passwords are masked.

        Returns
        -------
        dict
            ``{name: (masked value, source)}``.
        """
        return {
            "DATABASE_URL": (mask_url(self.database_url), self.sources["DATABASE_URL"]),
            "MLFLOW_TRACKING_URI": (
                mask_url(self.mlflow_tracking_uri),
                self.sources["MLFLOW_TRACKING_URI"],
            ),
            "DASK_SCHEDULER_ADDRESS": (
                self.dask_scheduler_address or "(local scheduler)",
                self.sources["DASK_SCHEDULER_ADDRESS"],
            ),
            "PRODUCTION_DATA_DIR": (str(self.data_dir), self.sources["PRODUCTION_DATA_DIR"]),
        }


def repo_root() -> Path:
    """Return the repository root: ``PRODUCTION_HOME`` if set, else the checkout of this package.

    Returns
    -------
    pathlib.Path
        The folder holding ``pyproject.toml`` (the current directory for a non-editable install).
    """
    home = os.environ.get("PRODUCTION_HOME")
    if home:
        return Path(home).expanduser().resolve()
    checkout = Path(__file__).resolve().parents[2]
    if (checkout / "pyproject.toml").is_file():
        return checkout
    return Path.cwd()


def mask_url(url: str | None) -> str:
    """Return ``url`` with any password replaced by ``***``.

    Parameters
    ----------
    url : str or None
        A URL such as ``postgresql+psycopg2://user:secret@host:5432/db``.

    Returns
    -------
    str
        The same URL with the password masked; ``""`` for ``None``.

    Examples
    --------
    >>> mask_url("postgresql://ana:s3cret@localhost:5432/course")
    'postgresql://ana:***@localhost:5432/course'
    """
    if not url:
        return ""
    try:
        parts = urlsplit(url)
    except ValueError:
        return "<unparsable URL>"
    if parts.password is None:
        return url
    user = parts.username or ""
    host = parts.hostname or ""
    if ":" in host:  # IPv6 literal
        host = f"[{host}]"
    try:
        port = parts.port
    except ValueError:
        port = None
    netloc = f"{user}:***@{host}" + (f":{port}" if port else "")
    return urlunsplit((parts.scheme, netloc, parts.path, parts.query, parts.fragment))


def _validate_database_url(url: str) -> str:
    from sqlalchemy.engine import make_url
    from sqlalchemy.exc import ArgumentError

    try:
        parsed = make_url(url)
    except (ArgumentError, ValueError):
        raise ConfigurationError(
            f"DATABASE_URL is not a valid database URL: {mask_url(url)!r}. Expected e.g. "
            "'postgresql+psycopg2://user:password@127.0.0.1:5432/course' or "
            "'sqlite:///data/production.db'."
        ) from None
    if parsed.get_backend_name() not in ("sqlite", "postgresql"):
        raise ConfigurationError(
            f"DATABASE_URL must point at SQLite or PostgreSQL; got backend "
            f"{parsed.get_backend_name()!r} in {mask_url(url)!r}."
        )
    if parsed.get_backend_name() == "postgresql":
        if not parsed.host or not parsed.database:
            raise ConfigurationError(
                f"DATABASE_URL for PostgreSQL needs a host and a database name; got "
                f"{mask_url(url)!r}. Expected 'postgresql+psycopg2://user:password@host:port/db'."
            )
        try:
            _ = urlsplit(url).port
        except ValueError:
            raise ConfigurationError(
                f"DATABASE_URL has a port that is not a number: {mask_url(url)!r}."
            ) from None
    return url


def _validate_tracking_uri(uri: str) -> str:
    scheme = urlsplit(uri).scheme
    if scheme in ("http", "https"):
        parts = urlsplit(uri)
        if not parts.hostname:
            raise ConfigurationError(
                f"MLFLOW_TRACKING_URI has no host: {mask_url(uri)!r}. "
                "Expected e.g. 'http://127.0.0.1:5000'."
            )
        try:
            _ = parts.port
        except ValueError:
            raise ConfigurationError(
                f"MLFLOW_TRACKING_URI has a port that is not a number: {mask_url(uri)!r}."
            ) from None
        return uri
    if scheme in ("sqlite", "postgresql", "file", "databricks"):
        return uri
    raise ConfigurationError(
        f"MLFLOW_TRACKING_URI must start with http://, https:// or sqlite://; got {mask_url(uri)!r}."
    )


def _validate_scheduler_address(address: str) -> str:
    parts = urlsplit(address if "://" in address else f"tcp://{address}")
    try:
        port = parts.port
    except ValueError:
        port = None
    if not parts.hostname or port is None:
        raise ConfigurationError(
            f"DASK_SCHEDULER_ADDRESS must look like 'tcp://host:port'; got {address!r}."
        )
    return address if "://" in address else f"tcp://{address}"


def get_settings(env_file: str | os.PathLike | None = None) -> Settings:
    """Read the settings from the environment and an optional ``.env`` file.

    Variables set in the environment win over the ``.env`` file; unset or empty
    variables fall back to the embedded defaults.

    Parameters
    ----------
    env_file : path-like, optional
        The ``.env`` file to read. Defaults to ``.env`` at the repository root
        (a missing file is fine).

    Returns
    -------
    Settings
        The validated settings.

    Raises
    ------
    ConfigurationError
        If a variable has a value the package cannot use; the message names the
        variable and never shows a password.

    Examples
    --------
    >>> settings = get_settings()
    >>> settings.database_url  # doctest: +SKIP
    'sqlite:////home/me/production/data/production.db'
    """
    root = repo_root()
    path = Path(env_file) if env_file is not None else root / ".env"
    file_values = {k: v for k, v in dotenv_values(path).items() if v} if path.is_file() else {}

    values: dict[str, str | None] = {}
    sources: dict[str, str] = {}
    for name in _VARIABLES:
        env_value = os.environ.get(name, "").strip()
        if env_value:
            values[name], sources[name] = env_value, "environment"
        elif file_values.get(name, "").strip():
            values[name], sources[name] = file_values[name].strip(), ".env"
        else:
            values[name], sources[name] = None, "default"

    data_dir = Path(values["PRODUCTION_DATA_DIR"] or root / "data").expanduser().resolve()
    database_url = _validate_database_url(
        values["DATABASE_URL"] or f"sqlite:///{(data_dir / 'production.db').as_posix()}"
    )
    if values["MLFLOW_TRACKING_URI"]:
        tracking_uri = _validate_tracking_uri(values["MLFLOW_TRACKING_URI"])
        artifact_uri = None
    else:
        store = root / "mlruns"
        tracking_uri = f"sqlite:///{(store / 'mlflow.db').as_posix()}"
        artifact_uri = (store / "artifacts").as_uri()
    scheduler = values["DASK_SCHEDULER_ADDRESS"]
    return Settings(
        database_url=database_url,
        mlflow_tracking_uri=tracking_uri,
        mlflow_artifact_uri=artifact_uri,
        dask_scheduler_address=_validate_scheduler_address(scheduler) if scheduler else None,
        data_dir=data_dir,
        sources=sources,
    )
