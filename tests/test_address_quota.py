"""One client address cannot fill the upload store by opening many browser sessions: the galleries uploaded from
one address share a byte quota (MM_MAX_ADDRESS_BYTES); past it an upload stops with a message that names the
limit and what to do, while a client at another address still uploads; clearing a gallery, or the age sweep,
gives the address its bytes back."""

from __future__ import annotations

import io
import os
import time
from pathlib import Path

import numpy as np
from gradio_client import Client, handle_file

import toyworld
from pipelines.core.limits import ADDRESS_BYTES_ENV, UPLOAD_HOURS_ENV
from pipelines.search.gallery import Gallery
from pipelines.search.uploads import IMAGE_ALLOWANCE, image_store, upload_store

SCENES = [("orange", "square", 31), ("green", "circle", 32), ("blue", "triangle", 33), ("red", "circle", 34)]
HOME, NEIGHBOUR = "203.0.113.7", "198.51.100.9"  # documentation addresses: two clients behind a proxy


def scene_files(folder: Path) -> list[Path]:
    """One PNG file per scene of SCENES, each a different image."""
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for color, shape, seed in SCENES:
        buffer = io.BytesIO()
        toyworld.render([(color, shape)], np.random.default_rng(seed)).image.save(buffer, "PNG")
        path = folder / f"{color}_{shape}_{seed}.png"
        path.write_bytes(buffer.getvalue())
        paths.append(path)
    return paths


def charged(path: Path) -> int:
    """What storing an image costs its owner: the file and the allowance for its embeddings."""
    return path.stat().st_size + IMAGE_ALLOWANCE


def test_two_galleries_from_one_address_share_its_quota(cache_dir, tmp_path, monkeypatch):
    files = scene_files(tmp_path / "album")
    monkeypatch.setenv(ADDRESS_BYTES_ENV, str(sum(charged(p) for p in files[:3]) + charged(files[3]) // 2))
    first_tab, second_tab = Gallery("my images"), Gallery("my images")  # two sessions of one client

    assert first_tab.add_uploads(files[:2], address=HOME).added == 2
    report = second_tab.add_uploads(files[2:], address=HOME)
    assert report.added == 1 and len(second_tab) == 1
    summary = report.summary()
    assert f"Stopped at {files[3].name}" in summary and ADDRESS_BYTES_ENV in summary
    assert "your network address" in summary and "Clear a gallery" in summary

    neighbour = Gallery("my images")  # another client: what the home address holds is not its concern
    assert neighbour.add_uploads(files[2:], address=NEIGHBOUR).added == 2

    first_tab.clear()  # frees the home address's share
    assert second_tab.add_uploads(files[3:], address=HOME).added == 1
    assert len(second_tab) == 2


def test_the_age_sweep_gives_an_address_its_bytes_back(cache_dir, tmp_path, monkeypatch):
    files = scene_files(tmp_path / "album")
    monkeypatch.setenv(UPLOAD_HOURS_ENV, "2")
    monkeypatch.setenv(ADDRESS_BYTES_ENV, str(sum(charged(p) for p in files[:2]) + charged(files[2]) // 2))
    old_tab, new_tab = Gallery("my images"), Gallery("my images")
    assert old_tab.add_uploads(files[:2], address=HOME).added == 2
    assert new_tab.add_uploads(files[2:3], address=HOME).added == 0  # the address is full

    three_hours_ago = time.time() - 3 * 3600
    for path in (image_store() / old_tab.owner).rglob("*"):
        os.utime(path, (three_hours_ago, three_hours_ago))
    upload_store().sweep()
    assert new_tab.add_uploads(files[2:3], address=HOME).added == 1


def test_a_second_session_at_the_same_address_is_refused_over_the_api(app_with_own_cache, tmp_path, monkeypatch):
    files = scene_files(tmp_path / "album")

    def visitor(address: str) -> Client:
        """A new browser session, seen at ``address`` as a proxy on loopback (which the server trusts) reports it."""
        return Client(app_with_own_cache.local_url, headers={"X-Forwarded-For": address}, verbose=False)

    status, source = visitor(HOME).predict([handle_file(str(p)) for p in files[:2]], api_name="/add_images")
    assert "2 images in your gallery" in status and source == "mine"
    upload_store().sweep()  # counts what is on disk now (embeddings included), as the next uploads will see it
    monkeypatch.setenv(ADDRESS_BYTES_ENV, str(upload_store().address_used(HOME) + charged(files[2]) // 2))

    status, source = visitor(HOME).predict([handle_file(str(files[2]))], api_name="/add_images")
    assert "0 images in your gallery" in status and source == "examples"
    assert ADDRESS_BYTES_ENV in status and "your network address" in status and "nothing was added" in status

    status, source = visitor(NEIGHBOUR).predict([handle_file(str(files[2]))], api_name="/add_images")
    assert "1 image in your gallery" in status and source == "mine"
