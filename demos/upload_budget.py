"""A byte budget for uploads: no visitor can fill the server's disk through Gradio's upload route.

Gradio stores every file posted to ``/gradio_api/upload`` (up to ``max_file_size`` each) in its temporary folder
and deletes it a day later (``delete_cache``), whether or not a request ever uses it: without a budget, one client
posting 200 MB files in a loop fills the disk. ``UploadBudget`` is ASGI middleware, given to the app through
``launch(app_kwargs={"middleware": [...]})`` (a public Gradio parameter), that answers an upload with 429 and a
message once its client address has uploaded ``limits().address_upload_bytes`` in the last hour, or everyone
together ``limits().daily_upload_bytes`` in the last day (what Gradio's folder can then hold). It counts an
upload's declared length before Gradio reads a byte, so an upload without one is refused (411): browsers and
gradio_client always declare it.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from collections import defaultdict, deque

from pipelines.core import limits

log = logging.getLogger(__name__)

UPLOAD_PATH = "/gradio_api/upload"
HOUR, DAY = 3600.0, 86400.0
BUCKET = 60.0  # seconds: uploads are added up per minute, so the ledger stays small under a flood
# A refused upload's first bytes are read and dropped before the answer, so a client still sending a small file gets
# the message, not a reset connection; a bigger one is cut off after them.
DRAIN_BYTES = 2**20


class Ledger:
    """Bytes uploaded per client address over the last hour and by everyone over the last day, per minute."""

    def __init__(self, clock=time.monotonic):
        self._clock = clock
        self._lock = threading.Lock()
        self._by_address: dict[str, deque[list[float]]] = defaultdict(deque)  # address -> [[minute, bytes], ...]
        self._everyone: deque[list[float]] = deque()

    def admit(self, address: str, size: int) -> str | None:
        """Records ``size`` bytes from ``address`` and returns None, or returns why it is refused (nothing kept)."""
        bounds = limits.limits()
        now = self._clock()
        with self._lock:
            mine = self._by_address[address]
            _forget(mine, now - HOUR)
            _forget(self._everyone, now - DAY)
            if _total(mine) + size > bounds.address_upload_bytes:
                return (
                    f"Your network address has uploaded {_mib(_total(mine))} in the last hour; the limit is "
                    f"{_mib(bounds.address_upload_bytes)} per hour ({limits.ADDRESS_UPLOAD_BYTES_ENV}). "
                    "Try again later, with fewer or smaller files."
                )
            if _total(self._everyone) + size > bounds.daily_upload_bytes:
                return (
                    "The server has taken all the uploads it can hold today "
                    f"({_mib(bounds.daily_upload_bytes)}, {limits.DAILY_UPLOAD_BYTES_ENV}). Try again later."
                )
            _add(mine, now, size)
            _add(self._everyone, now, size)
            self._prune()
        return None

    def _prune(self) -> None:
        """Drop addresses with nothing in the last hour (a flood from many addresses leaves no trail)."""
        if len(self._by_address) > 1024:
            cutoff = self._clock() - HOUR
            for address in [a for a, buckets in self._by_address.items() if not buckets or buckets[-1][0] < cutoff]:
                del self._by_address[address]


def _forget(buckets: deque[list[float]], before: float) -> None:
    while buckets and buckets[0][0] < before:
        buckets.popleft()


def _add(buckets: deque[list[float]], now: float, size: int) -> None:
    if buckets and now - buckets[-1][0] < BUCKET:
        buckets[-1][1] += size
    else:
        buckets.append([now, size])


def _total(buckets: deque[list[float]]) -> float:
    return sum(size for _, size in buckets)


def _mib(size: float) -> str:
    return f"{size / 2**20:,.0f} MiB"


class UploadBudget:
    """ASGI middleware: uploads over their address's or everyone's budget are refused before Gradio reads them."""

    def __init__(self, app, ledger: Ledger | None = None):
        self.app, self.ledger = app, ledger or Ledger()

    async def __call__(self, scope, receive, send):
        if scope["type"] == "http" and scope["method"] == "POST" and scope["path"].endswith(UPLOAD_PATH):
            refusal = self._refusal(scope)
            if refusal is not None:
                status, message = refusal
                log.warning("upload refused: %s", message)
                await _drain(receive)
                await _answer(send, status, message)
                return
        await self.app(scope, receive, send)

    def _refusal(self, scope) -> tuple[int, str] | None:
        headers = dict(scope.get("headers") or [])
        try:
            size = int(headers[b"content-length"])
        except (KeyError, ValueError):
            size = -1
        if size < 0:  # missing, not a number, or negative (which would lower the totals)
            return 411, "Uploads must declare their length (Content-Length). Upload the file again."
        address = (scope.get("client") or ("unknown", 0))[0]
        message = self.ledger.admit(address, size)
        return None if message is None else (429, message)


async def _drain(receive) -> None:
    read = 0
    while read < DRAIN_BYTES:
        message = await receive()
        read += len(message.get("body", b""))
        if message["type"] != "http.request" or not message.get("more_body"):
            return


async def _answer(send, status: int, message: str) -> None:
    body = json.dumps({"detail": message, "error": message}).encode()
    headers = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})
