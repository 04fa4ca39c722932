"""Build a notebook from a plain-text source with `# %% [markdown]` / `# %%` cells.

Notebooks are written as .py "percent" sources by authors and tools, then built here, so
that the committed .ipynb has no outputs and a stable kernel spec:

    python scripts/build_notebook.py source.py 01_materials/labs/01_ml_system_design.ipynb
"""

import re
import sys
from pathlib import Path

import nbformat


def build(source: str) -> nbformat.NotebookNode:
    """Return a notebook whose cells are the percent-format cells of ``source``."""
    notebook = nbformat.v4.new_notebook()
    notebook.metadata = {
        "kernelspec": {"display_name": "Python 3", "language": "python", "name": "python3"},
        "language_info": {"name": "python"},
    }
    for chunk in re.split(r"^# %%", source, flags=re.M)[1:]:
        header, _, body = chunk.partition("\n")
        body = body.strip("\n")
        if header.strip() == "[markdown]":
            text = "\n".join(line.removeprefix("# ").removeprefix("#") for line in body.split("\n"))
            notebook.cells.append(nbformat.v4.new_markdown_cell(text))
        else:
            notebook.cells.append(nbformat.v4.new_code_cell(body))
    for index, cell in enumerate(notebook.cells):
        cell["id"] = f"cell-{index:02d}"
    return notebook


if __name__ == "__main__":
    source_path, target_path = map(Path, sys.argv[1:3])
    nbformat.write(build(source_path.read_text()), target_path)
    print(f"wrote {target_path} ({len(build(source_path.read_text()).cells)} cells)")
