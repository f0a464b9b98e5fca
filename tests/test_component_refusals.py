"""A value the app's controls refuse, sent through the API (a slider out of its range, a number that is NaN, a choice
not offered): the visitor reads which input, what it takes and what to do; the log gets one warning line and no
traceback; the server goes on answering."""

from __future__ import annotations

import logging

import httpx
import pytest
from gradio_client.exceptions import AppError


def refusal(client, api_name: str, **inputs) -> str:
    with pytest.raises(AppError) as info:
        client.predict(api_name=api_name, **inputs)
    return str(info.value)


def warnings_logged(caplog) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.name == "demos.common" and r.levelno == logging.WARNING]


def test_a_slider_value_out_of_range_names_the_slider_and_its_range(client, caplog, capfd):
    capfd.readouterr()
    with caplog.at_level(logging.WARNING, logger="demos.common"):
        message = refusal(client, "/search", query="a red circle", top_k=99)
    assert "Results must be a number from 1 to 48; got 99" in message and "try again" in message
    assert "greater than maximum" not in message  # not in Gradio's words
    [logged] = warnings_logged(caplog)
    assert "Results must be a number from 1 to 48" in logged
    assert "Traceback" not in capfd.readouterr().err
    images, details = client.predict(query="a red circle", top_k=2, api_name="/search")
    assert len(images) == 2  # the server goes on answering


def test_a_choice_not_offered_names_the_input_and_its_choices(client, capfd):
    capfd.readouterr()
    message = refusal(client, "/search", query="a red circle", gallery="everything")
    assert "Gallery must be one of 'examples', 'mine'; got 'everything'" in message
    message = refusal(client, "/transcribe", audio=None, language="klingon")
    assert "Language must be one of the" in message and "'auto'" in message and "got 'klingon'" in message
    assert "Traceback" not in capfd.readouterr().err


def test_a_seed_that_is_not_a_number_names_the_seed(client, caplog, capfd):
    # gradio_client will not send NaN (it is not JSON), but a raw request can: Python's JSON reader takes it.
    # The caption API's inputs: image, model, decoding, eight option numbers, the seed, prefix, CLIP weight.
    url, json = client.src.rstrip("/"), {"content-type": "application/json"}
    body = '{"data": [null, null, "sampling", 3, 3, 1.0, 1.0, 0, 20, 0.9, 1.0, NaN, "", 0.5]}'
    capfd.readouterr()
    with caplog.at_level(logging.WARNING, logger="demos.common"):
        started = httpx.post(f"{url}/gradio_api/call/caption", content=body, headers=json)
        answer = httpx.get(f"{url}/gradio_api/call/caption/{started.json()['event_id']}", timeout=120).text
    assert "event: error" in answer and "Seed must be a whole number; got nan" in answer
    assert "cannot convert" not in answer and "preprocess" not in answer  # not Gradio's internal error
    [logged] = warnings_logged(caplog)
    assert "Seed must be a whole number" in logged
    assert "Traceback" not in capfd.readouterr().err
    assert client.predict(query="a red circle", top_k=1, api_name="/search")[0]  # still serving
