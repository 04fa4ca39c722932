"""The Marp slide decks: local links resolve, code fences close, every deck renders to HTML."""

import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SLIDES_DIR = ROOT / "01_materials" / "slides"
SLIDES = sorted(SLIDES_DIR.glob("*.md"))
MARP = ROOT / "scripts" / "marp"
MARP_CLI = MARP / "node_modules" / "@marp-team" / "marp-cli" / "marp-cli.js"
IMAGE = re.compile(r"!\[[^\]]*\]\(([^)\s]+)[^)]*\)|<img[^>]+src=[\"']([^\"']+)")


def _local_targets(text):
    targets = [a or b for a, b in IMAGE.findall(text)]
    return [t for t in targets if not re.match(r"(https?:|data:|#)", t)]


@pytest.mark.parametrize("path", SLIDES, ids=lambda p: p.name)
def test_deck_images_exist_and_code_fences_close(path):
    text = path.read_text(encoding="utf-8")
    missing = [t for t in _local_targets(text) if not (path.parent / t).is_file()]
    assert not missing, f"broken image link(s): {missing}"
    assert not re.search(r"!\[[^\]]*\]\(https?://(?!127\.0\.0\.1|localhost)", text), "offline"
    fences = re.findall(r"^```", text, re.M)
    assert len(fences) % 2 == 0, "a code block is not closed"


def test_a_broken_image_link_is_caught(tmp_path):
    deck = tmp_path / "deck.md"
    deck.write_text("![a plot](figures/missing.png)\n<img src='ok.png'>\n")
    (tmp_path / "ok.png").write_bytes(b"")
    text = deck.read_text()
    assert [t for t in _local_targets(text) if not (tmp_path / t).is_file()] == [
        "figures/missing.png"
    ]


@pytest.fixture(scope="module")
def marp():
    """The Marp CLI command (installed with `npm ci --prefix scripts/marp`)."""
    node = shutil.which("node")
    if node is None or not MARP_CLI.is_file():
        message = "rendering the slides needs Node.js and `npm ci --prefix scripts/marp`"
        if os.environ.get("CI"):
            pytest.fail(message + " (scripts/test.sh installs it when npm is present)")
        pytest.skip(message)
    return [node, str(MARP_CLI), "--no-stdin", "--allow-local-files"]


def test_every_deck_renders_to_html_with_all_its_slides(marp, tmp_path):
    run = subprocess.run(
        [*marp, "--input-dir", str(SLIDES_DIR), "--output", str(tmp_path)],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert run.returncode == 0, run.stdout + run.stderr
    for deck in SLIDES:
        html = (tmp_path / deck.with_suffix(".html").name).read_text(encoding="utf-8")
        n_slides = len(deck.read_text(encoding="utf-8").split("\n---\n")) - 1
        assert len(re.findall(r"<section\b", html)) >= n_slides, deck.name
