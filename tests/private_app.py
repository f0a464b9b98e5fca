"""The toy app served with a Gradio file cache of its own, for browser tests that click examples.

Gradio copies example files into its cache folder (/tmp/gradio by default, shared by every process on the machine,
under a folder named by the file's content hash) and deletes the files it copied when its server closes: a test
app closing in another process would delete the example a running test is about to click."""

from __future__ import annotations

import contextlib
import os
from pathlib import Path

from pipelines.core import runtime
from tests.serving import serve


@contextlib.contextmanager
def served_alone(folder: Path, profile: str = "toy"):
    """The app (``profile``) served on a loopback port, its Gradio cache and app cache under ``folder``."""
    before = os.environ.get("GRADIO_TEMP_DIR"), runtime.settings().cache_dir
    os.environ["GRADIO_TEMP_DIR"] = str(folder / "gradio")
    runtime.configure(cache_dir=folder / "cache")
    demo = serve(profile)
    try:
        yield demo
    finally:
        demo.close()
        if before[0] is None:
            os.environ.pop("GRADIO_TEMP_DIR", None)
        else:
            os.environ["GRADIO_TEMP_DIR"] = before[0]
        runtime.configure(cache_dir=before[1], profile="toy")
