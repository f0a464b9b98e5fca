import subprocess
import sys
import threading
import time

import pytest
import torch

import pipelines
from pipelines.core import runtime
from pipelines.core.errors import InputError
from pipelines.core.registry import PROJECT_ROOT


def test_cpu_runs_fp32_and_never_bf16():
    assert runtime.resolve_dtype(torch.device("cpu")) == torch.float32


def test_cuda_cannot_be_forced_without_a_gpu():
    if torch.cuda.is_available():
        pytest.skip("this machine has a GPU")
    with pytest.raises(InputError, match="no CUDA GPU"):
        runtime.resolve_device("cuda")


def test_the_system_panel_explains_a_device_that_is_not_there():
    if torch.cuda.is_available():
        pytest.skip("this machine has a GPU")
    before = runtime.settings()
    runtime.configure(device="cuda")
    try:
        info = pipelines.system_info()
    finally:
        runtime.configure(device=before.device)
    assert "no CUDA GPU" in info["device"] and info["profile"] == before.profile


def test_auto_device_is_cpu_without_a_gpu():
    expected = "cuda" if torch.cuda.is_available() else "cpu"
    assert runtime.resolve_device("auto").type == expected


def test_cache_builds_each_value_once_under_concurrent_first_requests():
    cache, builds = runtime.ModelCache(), []

    def build():
        builds.append(1)
        time.sleep(0.2)  # a slow load: every other thread arrives while it runs
        return object()

    results = [None] * 8
    threads = [threading.Thread(target=lambda i=i: results.__setitem__(i, cache.get(("k",), build))) for i in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(builds) == 1
    assert all(result is results[0] for result in results)


def test_a_failed_load_is_retried_not_cached():
    cache, attempts = runtime.ModelCache(), []

    def flaky():
        attempts.append(1)
        if len(attempts) == 1:
            raise RuntimeError("first try fails")
        return "ok"

    with pytest.raises(RuntimeError):
        cache.get(("k",), flaky)
    assert cache.get(("k",), flaky) == "ok"


def test_load_returns_the_same_pipeline_and_loads_it_once_across_threads(monkeypatch):
    from pipelines.caption.blip import BlipCaptioner

    runtime.cache.clear()
    loads = []
    original = BlipCaptioner.load.__func__

    def counting_load(cls, *args):
        loads.append(1)
        return original(cls, *args)

    monkeypatch.setattr(BlipCaptioner, "load", classmethod(counting_load))
    got = []
    threads = [threading.Thread(target=lambda: got.append(pipelines.load("caption"))) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(loads) == 1 and len(got) == 4 and all(p is got[0] for p in got)
    assert pipelines.load("caption") is got[0]


def test_preload_warms_what_it_can_and_reports_the_rest(default_profile, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    failures = pipelines.preload()
    assert set(failures) == {"caption", "search", "ask", "chat"}  # hub-only models; transcribe falls back to tiny.en
    assert all("cannot reach the Hugging Face Hub" in message for message in failures.values())
    assert any(line.startswith("whisper-tiny.en-embedded") for line in pipelines.loaded_models())


FAULTS_PER_CYCLE = """
import resource, sys
import numpy as np
from pipelines.core import runtime
if sys.argv[1] == "tuned":
    runtime.tune_allocator()
if sys.argv[1] == "pipeline":  # what a notebook does: build a pipeline, nothing else
    import torch
    from pipelines.core import registry
    from pipelines.core.base import Pipeline
    Pipeline(registry.resolve("search", None, "toy"), torch.device("cpu"), torch.float32)

def cycle():  # what a forward pass does: activations of tens of MB allocated, written, freed
    blocks = [np.ones(5 << 20, dtype=np.float32) for _ in range(4)]  # 4 x 20 MB: 20,480 pages
    del blocks

cycle()
before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
for _ in range(10):
    cycle()
print((resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before) / 10)
"""


def faults(mode: str) -> float:
    """Page faults per allocate-and-free cycle in a fresh process: plain, tuned, or after building a pipeline."""
    run = subprocess.run(
        [sys.executable, "-c", FAULTS_PER_CYCLE, mode], capture_output=True, text=True, check=True, cwd=PROJECT_ROOT
    )
    return float(run.stdout)


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc's malloc and /proc page-fault counts")
def test_freed_activation_memory_is_reused_not_faulted_in_again():
    assert faults("tuned") < 0.01 * 20_480 < faults("plain")


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc's malloc and /proc page-fault counts")
def test_building_a_pipeline_leaves_the_process_allocator_alone():
    """A notebook that loads a model keeps its own malloc settings: only the app's entry point tunes them."""
    assert faults("pipeline") > 0.01 * 20_480


def test_the_app_tunes_the_allocator_before_it_serves(monkeypatch):
    import app

    order = []
    monkeypatch.setattr(runtime, "_settings", runtime.settings())  # main() configures the process: put it back
    monkeypatch.setattr(runtime, "tune_allocator", lambda: order.append("tune allocator"))
    monkeypatch.setattr(app.logging, "basicConfig", lambda **kwargs: None)
    monkeypatch.setattr(app, "build_demo", lambda: "demo")
    monkeypatch.setattr(app, "serve", lambda demo, **kwargs: order.append(f"serve {demo}"))
    app.main(["--profile", "toy"])
    assert order == ["tune allocator", "serve demo"]
