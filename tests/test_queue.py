"""A crowd beyond the queue's size is turned away with "try again", and the app keeps serving those it took."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

from gradio_client import Client, handle_file

import app
from tests.conftest import ROOT
from tests.serving import serve

SPEECH = ROOT / "assets/examples/speech/what_color_is_the_shape.wav"


def test_a_full_queue_says_busy_try_again_and_the_app_keeps_serving(monkeypatch):
    monkeypatch.setattr(app, "QUEUE_SIZE", 2)
    demo = serve("toy")
    try:
        clients = [Client(demo.local_url, verbose=False) for _ in range(8)]  # connected first: they ask together

        def transcribe(client):
            try:
                return client.predict(handle_file(str(SPEECH)), api_name="/transcribe")
            except Exception as error:  # the ones turned away
                return error

        with ThreadPoolExecutor(len(clients)) as pool:
            outcomes = list(pool.map(transcribe, clients))
        refused = [o for o in outcomes if isinstance(o, Exception)]
        served = [o for o in outcomes if not isinstance(o, Exception)]
        assert refused and all("try again" in str(error).lower() for error in refused), refused
        assert served and all("color" in text.lower() for text, *_ in served)
        text, *_ = Client(demo.local_url, verbose=False).predict(handle_file(str(SPEECH)), api_name="/transcribe")
        assert "shape" in text.lower()
    finally:
        demo.close()
