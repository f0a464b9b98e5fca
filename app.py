"""Multimodal demo studio: caption, search, ask, chat and transcribe, over one shared CLIP fusion layer.

python app.py                  # hub checkpoints (default profile)
python app.py --profile toy    # bundled toy models: runs offline, nothing to download
"""

from __future__ import annotations

import argparse
import logging
import os
import threading
from pathlib import Path

import gradio as gr
from starlette.middleware import Middleware

import pipelines
import toyworld
from demos import ask, caption, chat, common, fairness, fusion_lab, readiness, search, studio, system, transcribe
from demos.examples import EXAMPLES
from demos.upload_budget import UploadBudget
from pipelines import readiness as model_readiness
from pipelines.core import runtime

TITLE = "Multimodal demo studio"
MAX_FILE_SIZE = "200mb"  # larger uploads are refused before any model runs; 10 min of 48 kHz 24-bit stereo WAV fits
QUEUE_SIZE = 64  # requests waiting beyond this are turned away with a "busy" message
# Within it, each visitor and each client address may have only a few jobs waiting or running (demos/fairness.py,
# MM_MAX_QUEUED_PER_VISITOR and MM_MAX_QUEUED_PER_ADDRESS), so one client cannot fill it for everyone else.
# After every event Gradio summarises its last 10,000 with pandas (for a monitoring page this app does not link):
# about 10 ms of CPU per request, holding up the others. Once every 1,000 events is enough.
os.environ.setdefault("GRADIO_ANALYTICS_CACHE_FREQUENCY", "1000")
MAX_SESSIONS = 1000  # visitors whose state (e.g. an uploaded gallery) is kept; the least recently active go first

PROFILE_MODELS = {"default": "Hugging Face Hub models", "toy": "bundled toy models"}  # what the title line says
STYLE = Path(__file__).resolve().parent / "demos" / "style.css"  # layout rules for every tab

log = logging.getLogger("app")


def build_demo() -> gr.Blocks:
    settings = runtime.settings()
    # Hourly, Gradio deletes its copies of uploads and results older than a day: a long-running Space keeps its disk
    with gr.Blocks(title=TITLE, delete_cache=(3600, 24 * 3600)) as demo:
        gr.Markdown(
            f"# {TITLE}\nWhat multimodal models do, live: describe an image, find images from words, "
            f"answer questions about an image, and turn speech into text. Profile: **{settings.profile}** "
            f"({PROFILE_MODELS[settings.profile]})."
        )
        if settings.profile == "toy":
            gr.Markdown(toy_banner(), elem_id="toy-banner", elem_classes="toy-banner")
        panels = []  # each model tab opens with what its models need (hidden once they are ready)
        with gr.Tabs() as tabs:
            with gr.Tab("Studio", id="studio"):
                panels.append(readiness.build("studio"))
                studio.build()
            with gr.Tab("Caption", id="caption"):
                panels.append(readiness.build("caption"))
                caption.build()
            with gr.Tab("Search", id="search"):
                panels.append(readiness.build("search"))
                search_tab = search.build()
            with gr.Tab("Ask", id="ask"):
                panels.append(readiness.build("ask"))
                ask.build()
            with gr.Tab("Chat", id="chat"):
                panels.append(readiness.build("chat"))
                chat.build()
            with gr.Tab("Transcribe", id="transcribe"):
                panels.append(readiness.build("transcribe"))
                transcript, to_search = transcribe.build()
            with gr.Tab("Fusion lab", id="fusion-lab"):
                panels.append(readiness.build("fusion-lab"))
                fusion_lab.build()
            with gr.Tab("System", id="system") as system_tab:
                system_panel = system.build()
            system_tab.select(system.report, outputs=system_panel, api_visibility="private", queue=False)  # current
        readiness.install(demo, panels, system_panel, system.report)
        # Speech hands its transcript to the fusion layer: search the gallery by what was said.
        # The words go to Search's box, the Search tab opens, and the search runs.
        handed = to_search.click(
            lambda text: (text, gr.Tabs(selected="search")),
            inputs=transcript,
            outputs=[search_tab.query, tabs],
            api_visibility="private",
        )
        search_tab.search_after(handed)
    common.release_memory_after(demo)  # the whole-model jobs' buffers go back to the system once they finish
    common.clear_results_on_failure(demo)  # a refused event's stale results and Error pills go; others stay
    demo.queue(max_size=QUEUE_SIZE)
    fairness.install(demo)
    return demo


def toy_banner() -> str:
    """One sentence: what the toy models know, and how to get real ones."""
    colours = ", ".join(toyworld.COLORS)
    shapes = ", ".join(f"{shape}s" for shape in toyworld.SHAPES)
    return (
        f"**Toy models:** they know only a synthetic world of one or two coloured shapes ({shapes}; "
        f"{colours}) on a light background, so on photos their answers mean nothing; for real models run "
        "`python -m pipelines.download` and start `python app.py` (the default profile)."
    )


def _env(name: str, default=None):
    return os.environ.get(name, default)


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=TITLE, epilog="Each flag can also be set by the MM_* variable shown.")
    parser.add_argument(
        "--profile",
        choices=pipelines.registry.PROFILES,
        default=_env("MM_PROFILE", "default"),
        help="which models: 'default' = Hugging Face Hub checkpoints, 'toy' = bundled toy models (env MM_PROFILE)",
    )
    parser.add_argument(
        "--device",
        choices=runtime.DEVICES,
        default=_env("MM_DEVICE", "auto"),
        help="where models run; auto = CUDA when available (env MM_DEVICE)",
    )
    parser.add_argument(
        "--host",
        default=_env("MM_HOST", _env("GRADIO_SERVER_NAME", "127.0.0.1")),
        help="address to listen on; 0.0.0.0 for all interfaces (env MM_HOST)",
    )
    parser.add_argument(
        "--port",
        type=int,
        default=int(_env("MM_PORT", _env("GRADIO_SERVER_PORT", "7860"))),
        help="port to listen on (env MM_PORT)",
    )
    parser.add_argument(
        "--share",
        action="store_true",
        default=_env("MM_SHARE", "") == "1",
        help="also serve through a public Gradio share link; off unless given (env MM_SHARE=1)",
    )
    parser.add_argument(
        "--auth",
        type=parse_auth,
        default=_env("MM_AUTH"),
        metavar="USER:PASSWORD[,USER:PASSWORD]",
        help="ask visitors to log in, e.g. for a stakeholder demo on a public address (env MM_AUTH)",
    )
    parser.add_argument(
        "--public",
        action=argparse.BooleanOptionalAction,
        default=runtime.public_from_env(),
        help="public mode, for strangers: registry models only, no server paths or internals in the System panel "
        "or in errors (env MM_PUBLIC=1; on by default on a Hugging Face Space, where SPACE_ID is set)",
    )
    parser.add_argument(
        "--preload",
        action="store_true",
        default=_env("MM_PRELOAD", "") == "1",
        help="load every model at start instead of on first use (env MM_PRELOAD=1)",
    )
    parser.add_argument(
        "--warmup",
        action=argparse.BooleanOptionalAction,
        default=_env("MM_WARMUP", "1") != "0",
        help="once the page is served, load the profile's models and run each once in the background, so the "
        "first click is fast; --no-warmup loads each on first use (env MM_WARMUP=0)",
    )
    parser.add_argument(
        "--models-dir",
        type=Path,
        default=_env("MM_MODELS_DIR"),
        help="cache directory for downloaded models, e.g. one filled by "
        "`python -m pipelines.download` (env MM_MODELS_DIR)",
    )
    parser.add_argument(
        "--catalogue",
        type=Path,
        default=_env(search.CATALOGUE_ENV),
        help="also search this catalogue, read-only: the OUT folder of `python -m pipelines.jobs index SOURCE OUT` "
        "(env MM_CATALOGUE)",
    )
    return parser.parse_args(argv)


def parse_auth(value: str | None) -> list[tuple[str, str]] | None:
    """'ann:secret,bob:pw' -> [("ann", "secret"), ("bob", "pw")]; None or "" -> no login."""
    if not value:
        return None
    pairs = []
    for item in value.split(","):
        user, colon, password = item.strip().partition(":")
        if not (user and colon and password):
            raise argparse.ArgumentTypeError(f"expected USER:PASSWORD pairs separated by commas; got {item!r}")
        pairs.append((user, password))
    return pairs


def main(argv=None) -> None:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(levelname)s %(message)s")
    args = parse_args(argv)
    runtime.configure(profile=args.profile, device=args.device, models_dir=args.models_dir, public=args.public)
    runtime.tune_allocator()  # before the server's threads start
    search.open_catalogue(args.catalogue)
    if args.preload:
        for task, message in pipelines.preload().items():
            log.warning("%s model not preloaded: %s", task, message)
    serve(build_demo(), host=args.host, port=args.port, share=args.share, auth=args.auth, warmup=args.warmup)


def serve(
    demo: gr.Blocks, *, host: str, port: int, share: bool = False, auth=None, block: bool = True, warmup: bool = False
):
    """Launch with the app's limits: upload size and a byte budget for uploads (demos/upload_budget.py), sessions
    kept, a login if ``auth`` is given, and of the project's files only the example assets served from disk.

    ``warmup``: once the server answers, load the profile's models and run each once on a background thread
    (pipelines/readiness.py); the tabs' panels and the System panel say "loading…" until each is ready."""
    if proxies := fairness.space_proxies():  # read by the server at launch: visitors' own addresses, not the proxy's
        os.environ["FORWARDED_ALLOW_IPS"] = proxies
    launched = demo.launch(
        server_name=host,
        server_port=port,
        share=share,
        auth=auth,
        max_file_size=MAX_FILE_SIZE,
        state_session_capacity=MAX_SESSIONS,
        allowed_paths=[str(EXAMPLES)],
        css_paths=[STYLE],
        prevent_thread_lock=True,
        app_kwargs={"middleware": [Middleware(UploadBudget)]},
    )
    if warmup:  # never blocks the server: failures are recorded for the panels
        warming = model_readiness.warm_up()
        threading.Thread(target=_settle_after, args=(warming,), name="settle-heap", daemon=True).start()
    else:
        runtime.settle_heap()  # the UI and the libraries at least; models load on first use
    if block:
        demo.block_thread()
    return launched


def _settle_after(warming: threading.Thread) -> None:
    """Once the warm-up has loaded the models, leave them out of later garbage collections (runtime.settle_heap)."""
    warming.join()
    runtime.settle_heap()


def __getattr__(name: str):
    """``app.demo`` for `gradio app.py` (hot reload), built on first access from the MM_* variables."""
    if name != "demo":
        raise AttributeError(name)
    runtime.tune_allocator()  # `gradio app.py` starts the server itself: tune before its threads start
    globals()["demo"] = build_demo()
    return globals()["demo"]


if __name__ == "__main__":  # python app.py (also how Hugging Face Spaces starts it)
    main()
