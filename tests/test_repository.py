"""Repository hygiene: notebooks, secrets, services definitions, set-up commands."""

import json
import re
import subprocess
import tomllib
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]


def _tracked(*patterns):
    out = subprocess.run(
        ["git", "ls-files", "--cached", "--others", "--exclude-standard", *patterns],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    return [ROOT / p for p in out.splitlines() if (ROOT / p).exists()]


NOTEBOOKS = _tracked("*.ipynb")


def test_there_are_notebooks():
    assert any("01_materials" in str(p) for p in NOTEBOOKS)


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: str(p.relative_to(ROOT)))
def test_notebook_is_clean(path):
    notebook = json.loads(path.read_text())
    code = [c for c in notebook["cells"] if c["cell_type"] == "code"]
    assert code, "a notebook with no code"
    with_outputs = [i for i, c in enumerate(code) if c.get("outputs") or c.get("execution_count")]
    assert not with_outputs, f"code cells {with_outputs} carry outputs: run nbstripout"
    source = "\n".join("".join(c["source"]) for c in code)
    assert "sys.path" not in source, "reach the package by installing it, not through sys.path"
    assert "%run" not in source
    assert not re.search(r"https?://(?!127\.0\.0\.1|localhost)", source), "notebooks stay offline"
    first = "".join(code[0]["source"])
    package = "course" if path.parent.name == "quizzes" else "production"  # quizzes: the bank
    assert f"from {package}" in first or f"import {package}" in first, (
        f"the first code cell imports the installed package {package}"
    )


def test_no_env_file_is_committed():
    assert not [p for p in _tracked() if p.name == ".env"]
    assert (ROOT / ".env.example").is_file()
    assert ".env" in (ROOT / ".gitignore").read_text().splitlines()


def test_no_password_is_committed():
    pattern = re.compile(r"(password|passwd|secret)[ \t]*[:=][ \t]*['\"]?([\w!@#%^&*+-]{6,})", re.I)
    allowed = {"***", "YOUR_PASSWORD"}
    offenders = []
    for path in _tracked():
        if path.suffix in {".lock", ".png"} or path.is_dir():
            continue
        for match in pattern.finditer(path.read_text(errors="ignore")):
            value = match.group(2)
            if value not in allowed:
                offenders.append(f"{path.relative_to(ROOT)}: {match.group(0)}")
    assert not offenders


@pytest.fixture(scope="module")
def compose():
    return yaml.safe_load((ROOT / "docker-compose.yml").read_text())


def test_compose_ports_are_local_only(compose):
    for name, service in compose["services"].items():
        for port in service.get("ports", []):
            assert port.startswith("127.0.0.1:"), f"{name} publishes {port} beyond this machine"


def test_compose_images_are_pinned_and_healthy(compose):
    services = compose["services"]
    for name, service in services.items():
        image = service.get("image", "")
        assert re.search(r":\d+\.\d+", image), f"{name}: image {image!r} is not pinned"
    for name in ("postgres", "mlflow"):
        assert "healthcheck" in services[name]
    assert services["mlflow"]["depends_on"]["postgres"]["condition"] == "service_healthy"
    assert services["pgadmin"]["profiles"] == ["admin"]


def test_compose_passwords_come_from_env(compose):
    postgres = compose["services"]["postgres"]["environment"]
    assert postgres["POSTGRES_PASSWORD"].startswith("${POSTGRES_PASSWORD:?")
    store = compose["services"]["mlflow"]["environment"]["MLFLOW_BACKEND_STORE_URI"]
    assert "${POSTGRES_PASSWORD:?" in store
    example = (ROOT / ".env.example").read_text()
    assert re.search(r"^POSTGRES_PASSWORD=$", example, re.M), ".env.example ships no password"


def test_mlflow_server_matches_the_lock(compose):
    lock = tomllib.loads((ROOT / "uv.lock").read_text())
    locked = {p["name"]: p["version"] for p in lock["package"]}
    dockerfile = (ROOT / "docker/mlflow/Dockerfile").read_text()
    assert f'"mlflow=={locked["mlflow"]}"' in dockerfile
    assert f'"psycopg2-binary=={locked["psycopg2-binary"]}"' in dockerfile
    assert compose["services"]["mlflow"]["image"].endswith(f":{locked['mlflow']}")
    command = " ".join(compose["services"]["mlflow"]["command"])
    assert "--serve-artifacts" in command and "--allowed-hosts=mlflow," in command


def test_init_script_creates_the_mlflow_database():
    script = (ROOT / "docker/postgres/init/01-create-databases.sh").read_text()
    assert "CREATE DATABASE mlflow" in script


def test_readme_commands_exist_and_ci_calls_the_test_command():
    readme = (ROOT / "README.md").read_text()
    for command in ("bash scripts/demo.sh", "bash scripts/test.sh", "bash scripts/lab.sh"):
        assert command in readme
        assert (ROOT / command.split()[1]).is_file()
    assert "bash scripts/test.sh" in (ROOT / ".ci/run").read_text()


def test_package_is_installed_not_path_hacked():
    import production

    assert Path(production.__file__).resolve().is_relative_to(ROOT / "05_src")
    pyproject = tomllib.loads((ROOT / "pyproject.toml").read_text())
    assert pyproject["tool"]["setuptools"]["packages"]["find"]["where"] == ["05_src"]
    hack = re.compile(r"sys\.path\.(append|insert)\(")
    offenders = [p for p in _tracked("*.py") if p != Path(__file__) and hack.search(p.read_text())]
    assert not offenders


def test_github_workflows_parse_and_pin_actions():
    for path in (ROOT / ".github/workflows").glob("*.yml"):
        workflow = yaml.safe_load(path.read_text())
        assert "jobs" in workflow, path.name
        for job in workflow["jobs"].values():
            for step in job.get("steps", []):
                if "uses" in step:
                    assert re.search(r"@[0-9a-f]{40}$", step["uses"]), (
                        f"{path.name}: {step['uses']}"
                    )


SLIDES = sorted((ROOT / "01_materials" / "slides").glob("*.md"))


def test_sessions_three_to_eight_have_a_slide_deck():
    decks = {p.name[:2] for p in SLIDES}
    assert {f"{n:02d}" for n in range(3, 9)} <= decks, sorted(decks)


@pytest.mark.parametrize("path", SLIDES, ids=lambda p: p.name)
def test_slide_deck_is_marp_with_10_to_20_slides_and_names_its_lab(path):
    text = path.read_text(encoding="utf-8")
    assert text.startswith("---\nmarp: true\n"), "Marp front matter first"
    slides = text.split("\n---\n")[1:]  # the front matter's closing line starts slide 1
    assert 10 <= len(slides) <= 20, f"{len(slides)} slides"
    labs = re.findall(r"01_materials/labs/(\d\d_\w+\.ipynb)", text)
    assert labs and all((ROOT / "01_materials" / "labs" / lab).exists() for lab in labs), labs
