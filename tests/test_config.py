import pytest

from production.config import ConfigurationError, get_settings, mask_url, repo_root


def test_embedded_defaults_need_no_services(embedded_defaults):
    settings = get_settings()
    assert (
        settings.database_url
        == f"sqlite:///{(embedded_defaults / 'data/production.db').as_posix()}"
    )
    assert settings.mlflow_tracking_uri.startswith("sqlite:///")
    assert settings.mlflow_tracking_uri.endswith("mlruns/mlflow.db")
    assert settings.mlflow_artifact_uri.startswith("file://")
    assert settings.dask_scheduler_address is None
    assert not settings.uses_services
    assert set(settings.sources.values()) == {"default"}


def test_environment_wins_over_env_file(monkeypatch, embedded_defaults):
    (embedded_defaults / ".env").write_text(
        "DATABASE_URL=postgresql+psycopg2://course:fromfile@db.example:5432/course\n"
        "MLFLOW_TRACKING_URI=http://127.0.0.1:5000\n"
    )
    monkeypatch.setenv("MLFLOW_TRACKING_URI", "http://127.0.0.1:6000")
    settings = get_settings()
    assert settings.database_url.endswith("@db.example:5432/course")
    assert settings.sources["DATABASE_URL"] == ".env"
    assert settings.mlflow_tracking_uri == "http://127.0.0.1:6000"
    assert settings.sources["MLFLOW_TRACKING_URI"] == "environment"
    assert settings.mlflow_artifact_uri is None
    assert settings.uses_services


def test_nothing_happens_at_import(embedded_defaults):
    import importlib

    import production

    importlib.reload(production)
    assert list(embedded_defaults.iterdir()) == []


def test_describe_masks_passwords(monkeypatch):
    monkeypatch.setenv("DATABASE_URL", "postgresql+psycopg2://course:hunter2@127.0.0.1:5432/course")
    described = get_settings().describe()
    assert "hunter2" not in repr(described)
    assert described["DATABASE_URL"][0] == "postgresql+psycopg2://course:***@127.0.0.1:5432/course"


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("postgresql://ana:s3cret@localhost:5432/db", "postgresql://ana:***@localhost:5432/db"),
        ("http://u:p@[::1]:5000/x", "http://u:***@[::1]:5000/x"),
        ("sqlite:///data/x.db", "sqlite:///data/x.db"),
        ("http://127.0.0.1:5000", "http://127.0.0.1:5000"),
        (None, ""),
    ],
)
def test_mask_url(url, expected):
    assert mask_url(url) == expected


@pytest.mark.parametrize("char", ["/", "#", "?", "@", ":", "%", " "])
@pytest.mark.parametrize(
    "template",
    ["postgresql+psycopg2://course:{}@db.example:5432/course", "http://ana:{}@127.0.0.1:5000/x"],
)
def test_mask_url_hides_passwords_with_url_characters(template, char):
    password = f"top{char}secret{char}42"
    masked = mask_url(template.format(password))
    assert "secret" not in masked and "top" not in masked and "42" not in masked
    assert masked.endswith(template.split("@")[-1]) or masked == "<unparseable URL>"
    assert ":***@" in masked or masked == "<unparseable URL>"


@pytest.mark.parametrize("url", ["not a url", "http://u:topsecret@h:abc", "::topsecret::"])
def test_mask_url_never_echoes_an_unparseable_url(url):
    assert mask_url(url) == "<unparseable URL>"


@pytest.mark.parametrize(
    ("variable", "value", "match"),
    [
        ("DATABASE_URL", "not a url", "DATABASE_URL is not a valid URL"),
        ("DATABASE_URL", "mysql://u:topsecret@h/db", "must point at SQLite or PostgreSQL"),
        ("DATABASE_URL", "postgresql://u:topsecret@/course", "needs a host and a database"),
        ("DATABASE_URL", "postgresql://u:topsecret@h:port/course", "not a valid URL"),
        ("DATABASE_URL", "postgresql://u:top/secret@h:port/course", "not a valid URL"),
        ("DATABASE_URL", "postgresql://u:top@secret@h:5432/course", "write it as %40"),
        ("MLFLOW_TRACKING_URI", "http://u:top@secret@h:5000", "write it as %40"),
        ("MLFLOW_TRACKING_URI", "ftp://u:topsecret@h", "must start with http"),
        ("MLFLOW_TRACKING_URI", "http://u:topsecret@:5000", "has no host"),
        ("MLFLOW_TRACKING_URI", "http://u:topsecret@h:abc", "not a valid URL"),
        ("DASK_SCHEDULER_ADDRESS", "just-a-host", "tcp://host:port"),
        ("DASK_SCHEDULER_ADDRESS", "tcp://h:port", "tcp://host:port"),
    ],
)
def test_bad_configuration_names_the_variable_and_hides_the_password(
    monkeypatch, variable, value, match
):
    monkeypatch.setenv(variable, value)
    with pytest.raises(ConfigurationError, match=match) as info:
        get_settings()
    assert variable in str(info.value)
    assert "secret" not in str(info.value)


def test_settings_from_an_explicit_env_file(tmp_path):
    env_file = tmp_path / "other.env"
    env_file.write_text("DASK_SCHEDULER_ADDRESS=tcp://10.0.0.1:8786\n")
    settings = get_settings(env_file)
    assert settings.dask_scheduler_address == "tcp://10.0.0.1:8786"
    assert settings.sources["DASK_SCHEDULER_ADDRESS"] == ".env"
    assert settings.describe()["DASK_SCHEDULER_ADDRESS"] == ("tcp://10.0.0.1:8786", ".env")
    assert settings.uses_services


def test_scheduler_address_gets_a_scheme(monkeypatch):
    monkeypatch.setenv("DASK_SCHEDULER_ADDRESS", "127.0.0.1:8786")
    assert get_settings().dask_scheduler_address == "tcp://127.0.0.1:8786"


def test_repo_root_follows_production_home(embedded_defaults):
    assert repo_root() == embedded_defaults.resolve()


def test_data_dir_override(monkeypatch, tmp_path):
    monkeypatch.setenv("PRODUCTION_DATA_DIR", str(tmp_path / "elsewhere"))
    settings = get_settings()
    assert settings.data_dir == (tmp_path / "elsewhere").resolve()
    assert "elsewhere/production.db" in settings.database_url


@pytest.mark.parametrize("char", ["/", "#", "?", "@"])
def test_production_check_prints_only_masked_urls(monkeypatch, capsys, char):
    from course.cli import main

    monkeypatch.setenv(
        "DATABASE_URL", f"postgresql+psycopg2://course:pw{char}topsecret@127.0.0.1:1/db"
    )
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"http://ana:pw{char}topsecret@127.0.0.1:1")
    assert main(["check"]) == 1  # nothing listens on port 1
    printed = capsys.readouterr()
    assert "topsecret" not in printed.out + printed.err
    if char == "@":  # refused before any connection: the password must be percent-encoded
        assert "DATABASE_URL has an '@' in its password" in printed.err
    else:
        assert "course:***@127.0.0.1:1/db" in printed.out
        assert "127.0.0.1:1" in printed.err
