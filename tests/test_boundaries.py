"""The rooms keep their walls: pipelines/ has no UI code, demos/ has no model libraries."""

import ast
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
MODEL_LIBRARIES = {"torch", "transformers", "open_clip", "faster_whisper", "ctranslate2", "torchvision"}


def imported_modules(folder: str) -> dict[str, set[str]]:
    found = {}
    for path in (ROOT / folder).rglob("*.py"):
        names = set()
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Import):
                names.update(alias.name.split(".")[0] for alias in node.names)
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                names.add(node.module.split(".")[0])
        found[str(path.relative_to(ROOT))] = names
    return found


@pytest.mark.parametrize("path,names", imported_modules("pipelines").items())
def test_pipelines_import_no_gradio(path, names):
    assert "gradio" not in names, f"{path} imports gradio"


@pytest.mark.parametrize("path,names", imported_modules("demos").items())
def test_demos_import_no_model_library(path, names):
    assert not names & MODEL_LIBRARIES, f"{path} imports {names & MODEL_LIBRARIES}"


def test_the_ui_builds_without_loading_a_model_library():
    """Cold start: the page is served before torch & co. load (they load with the first model, in a handler)."""
    script = (
        f"import sys, app; app.demo; print(sorted(name for name in {sorted(MODEL_LIBRARIES)!r} if name in sys.modules))"
    )
    done = subprocess.run(
        [sys.executable, "-c", script],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, "MM_PROFILE": "toy"},
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "[]", f"building the app imported {done.stdout.strip()}"
