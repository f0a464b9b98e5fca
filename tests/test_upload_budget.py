"""No visitor can fill the disk through Gradio's upload route: uploads count against a byte budget per address
(per hour) and for everyone (per day), and an upload over it is refused before Gradio stores a byte."""

from __future__ import annotations

import json
import urllib.error
import urllib.request
import uuid

import pytest

from demos.upload_budget import Ledger
from pipelines.core import limits
from tests.serving import serve


class Clock:
    def __init__(self):
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_an_address_over_its_hourly_budget_is_refused_until_the_hour_has_passed(monkeypatch):
    monkeypatch.setenv(limits.ADDRESS_UPLOAD_BYTES_ENV, "1000")
    clock = Clock()
    ledger = Ledger(clock)
    assert ledger.admit("10.0.0.1", 600) is None
    refusal = ledger.admit("10.0.0.1", 600)
    assert "in the last hour" in refusal and limits.ADDRESS_UPLOAD_BYTES_ENV in refusal
    assert ledger.admit("10.0.0.2", 600) is None  # another address has its own budget
    clock.now += 3500
    assert ledger.admit("10.0.0.1", 600) is not None  # still within the hour
    clock.now += 101
    assert ledger.admit("10.0.0.1", 600) is None


def test_everyone_together_stops_at_the_daily_budget(monkeypatch):
    monkeypatch.setenv(limits.DAILY_UPLOAD_BYTES_ENV, "1000")
    clock = Clock()
    ledger = Ledger(clock)
    assert ledger.admit("10.0.0.1", 500) is None
    assert ledger.admit("10.0.0.2", 400) is None
    assert limits.DAILY_UPLOAD_BYTES_ENV in ledger.admit("10.0.0.3", 200)
    clock.now += 86000
    assert ledger.admit("10.0.0.3", 200) is not None  # still within the day
    clock.now += 401
    assert ledger.admit("10.0.0.3", 200) is None


def _upload(url: str, data: bytes, *, declare_length: bool = True) -> tuple[int, dict]:
    boundary = uuid.uuid4().hex
    body = (
        (
            f'--{boundary}\r\nContent-Disposition: form-data; name="files"; filename="x.bin"\r\n'
            "Content-Type: application/octet-stream\r\n\r\n"
        ).encode()
        + data
        + f"\r\n--{boundary}--\r\n".encode()
    )
    request = urllib.request.Request(
        f"{url.rstrip('/')}/gradio_api/upload",
        data=iter([body]) if not declare_length else body,
        headers={"Content-Type": f"multipart/form-data; boundary={boundary}"},
        method="POST",
    )
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as error:
        return error.code, json.loads(error.read() or b"{}")


@pytest.fixture(scope="module")
def small_budget_app():
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv(limits.ADDRESS_UPLOAD_BYTES_ENV, str(300_000))
        demo = serve("toy")
        yield demo
        demo.close()


def test_uploads_past_the_address_budget_are_refused_with_the_limit_named(small_budget_app):
    url = small_budget_app.local_url
    statuses = [_upload(url, bytes(100_000))[0] for _ in range(2)]
    assert statuses == [200, 200]
    status, answer = _upload(url, bytes(150_000))
    assert status == 429
    assert "in the last hour" in answer["detail"] and limits.ADDRESS_UPLOAD_BYTES_ENV in answer["detail"]
    assert _upload(url, bytes(10_000))[0] == 200  # what still fits is taken


def test_an_upload_that_does_not_declare_its_length_is_refused(small_budget_app):
    status, answer = _upload(small_budget_app.local_url, bytes(10), declare_length=False)
    assert status == 411 and "Content-Length" in answer["detail"]
