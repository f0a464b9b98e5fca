"""Uploads are private and bounded: no visitor can fetch another's images or learn that someone uploaded the same
picture; per-visitor and whole-store byte quotas (images, embeddings and shown copies) cut an upload with a clear
message; "Clear my gallery", a dropped session and the age-based sweep delete files from disk, the copies the
results were shown from included."""

from __future__ import annotations

import errno
import hashlib
import io
import os
import pickle
import stat
import time
import urllib.error
import urllib.parse
import urllib.request
import zipfile
from pathlib import Path

import numpy as np
import pytest
from gradio_client import Client, handle_file
from PIL import Image

import pipelines
import toyworld
from demos import search as search_tab
from pipelines.core.limits import STORE_BYTES_ENV, UPLOAD_HOURS_ENV, VISITOR_BYTES_ENV
from pipelines.search.gallery import Gallery
from pipelines.search.uploads import (
    IMAGE_ALLOWANCE,
    QuotaExceeded,
    StoreWriteError,
    image_store,
    shown_folder,
    upload_store,
)

SCENES = [("orange", "square", 11), ("green", "circle", 12), ("blue", "triangle", 13), ("red", "circle", 14)]


def png(color: str, shape: str, seed: int, padding: int = 0) -> bytes:
    """A toy scene as PNG bytes; ``padding`` random bytes after its end (image readers ignore them)."""
    buffer = io.BytesIO()
    toyworld.render([(color, shape)], np.random.default_rng(seed)).image.save(buffer, "PNG")
    return buffer.getvalue() + np.random.default_rng(seed).bytes(padding)


def make_zip(path: Path, padding: int = 0) -> Path:
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as archive:
        for color, shape, seed in SCENES:
            archive.writestr(f"album/{color}_{shape}_{seed}.png", png(color, shape, seed, padding))
    return path


def stored_files(root: Path) -> list[Path]:
    return sorted(p for p in root.rglob("*.png") if p.is_file())


def stored_bytes(root: Path) -> int:
    return sum(p.stat().st_size for p in stored_files(root))


def disk_bytes(root: Path) -> int:
    """Every file under ``root``: images, embeddings, indexes."""
    return sum(p.stat().st_size for p in root.rglob("*") if p.is_file())


def http_status(url: str) -> int:
    try:
        with urllib.request.urlopen(url, timeout=30) as response:
            return response.status
    except urllib.error.HTTPError as error:
        return error.code


# ------------------------------------------------------------------------------------- the store on its own


def test_each_gallery_keeps_its_uploads_in_a_folder_of_its_own_under_keyed_names(cache_dir, tmp_path):
    archive = make_zip(tmp_path / "album.zip")
    alice, bob = Gallery("my images"), Gallery("my images")
    alice.add_uploads([archive]), bob.add_uploads([archive])
    assert alice.owner and bob.owner and alice.owner != bob.owner
    mine, theirs = stored_files(image_store() / alice.owner), stored_files(image_store() / bob.owner)
    assert len(mine) == len(theirs) == len(SCENES)
    assert not {p.name for p in mine} & {p.name for p in theirs}  # the same image, unrelated names
    hashes = {hashlib.sha256(png(*scene)).hexdigest() for scene in SCENES}
    assert not any(h[:16] in str(p) for h in hashes for p in mine + theirs)  # no file is named by its SHA-256
    key = cache_dir / "upload.key"
    assert stat.S_IMODE(key.stat().st_mode) == 0o600
    restored = pickle.loads(pickle.dumps(alice))  # ZeroGPU sends a session's gallery to a worker
    assert restored.owner == alice.owner and [i.path for i in restored.items] == [i.path for i in alice.items]


def test_the_sweep_removes_uploads_older_than_the_age_and_their_folders(cache_dir, tmp_path, monkeypatch):
    monkeypatch.setenv(UPLOAD_HOURS_ENV, "2")
    old, recent = Gallery("old"), Gallery("recent")
    old.add_uploads([make_zip(tmp_path / "album.zip")])
    recent.add_uploads([make_zip(tmp_path / "album.zip")])
    shown = [upload_store().shown_copy(item.path) for item in old.items]  # results the old visitor was shown
    three_hours_ago = time.time() - 3 * 3600
    for path in (image_store() / old.owner).rglob("*"):
        os.utime(path, (three_hours_ago, three_hours_ago))
    assert upload_store().sweep() == len(SCENES)
    assert not (image_store() / old.owner).exists() and not any(copy.exists() for copy in shown)
    assert len(stored_files(image_store() / recent.owner)) == len(SCENES)
    assert upload_store().used() == stored_bytes(image_store())


def test_dropping_a_session_deletes_its_files(cache_dir, tmp_path):
    gallery = Gallery("my images")
    gallery.add_uploads([make_zip(tmp_path / "album.zip")])
    folder, shown = image_store() / gallery.owner, shown_folder(gallery.owner)
    copy = upload_store().shown_copy(gallery.items[0].path)  # a result shown to this visitor
    assert stored_files(folder) and copy.read_bytes() == Path(gallery.items[0].path).read_bytes()
    search_tab.forget_gallery(gallery).join()  # what Gradio calls when it drops the session's state
    assert not folder.exists() and not shown.exists() and len(gallery) == 0


def tiny_pngs(folder: Path, count: int, start: int = 0) -> list[Path]:
    """``count`` different 8x8 PNGs of about 100 bytes each: the cheapest images to fill a store with."""
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for i in range(start, start + count):
        path = folder / f"tiny{i}.png"
        Image.new("RGB", (8, 8), (i % 256, i // 256, 7)).save(path)
        paths.append(path)
    return paths


def test_embeddings_count_against_the_quotas_so_tiny_images_cannot_fill_the_disk(cache_dir, tmp_path, monkeypatch):
    quota = 200 * 2**10
    monkeypatch.setenv(STORE_BYTES_ENV, str(quota))
    space = pipelines.load("search").space
    for visitor in range(3):  # each fills a gallery with tiny images and searches it (embeddings written)
        gallery = Gallery("my images")
        gallery.add_uploads(tiny_pngs(tmp_path / f"visitor{visitor}", 8, start=8 * visitor))
        gallery.prepare(space)
        assert disk_bytes(image_store()) <= upload_store().used() <= quota
    assert 0 < len(stored_files(image_store())) < 3 * 8  # the quota stopped the uploads
    upload_store().sweep()  # recounts every file on disk
    assert upload_store().used() == disk_bytes(image_store()) > stored_bytes(image_store())


def test_a_padded_png_zip_cannot_grow_the_store_past_the_global_quota(cache_dir, tmp_path, monkeypatch):
    quota = 1_500_000
    monkeypatch.setenv(STORE_BYTES_ENV, str(quota))
    padded = make_zip(tmp_path / "padded.zip", padding=400_000)  # 4 valid PNGs of ~400 KB, incompressible
    reports = [Gallery(f"visitor {i}").add_uploads([padded]) for i in range(3)]  # three visitors, one zip each
    assert stored_bytes(image_store()) <= quota
    assert reports[0].added == 3 and "space for uploaded images" in reports[0].summary()
    assert reports[2].added == 0 and "Try again later" in reports[2].summary()


def test_a_full_disk_stops_an_upload_with_a_message_not_a_crash(cache_dir, tmp_path, monkeypatch):
    archive = make_zip(tmp_path / "album.zip")

    def disk_full(self, data):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(Path, "write_bytes", disk_full)
    gallery = Gallery("my images")
    report = gallery.add_uploads([archive])
    assert report.added == 0 and len(gallery) == 0
    assert "could not store it" in report.summary() and "No space left" not in report.summary()
    assert "limit" not in report.summary()  # not told of a quota it did not pass
    with pytest.raises(StoreWriteError) as refused:
        upload_store().put("a" * 32, png(*SCENES[0]), "0" * 64, ".png")
    assert not isinstance(refused.value, QuotaExceeded)
    assert not stored_files(image_store()) and upload_store().used() == 0


# ---------------------------------------------------------------------------------- what visitors see


def visitor(app) -> Client:
    return Client(app.local_url, verbose=False)  # a new browser session


def test_a_second_visitor_cannot_fetch_an_upload_by_its_hash_or_its_store_path(app_with_own_cache, tmp_path):
    alice, bob = visitor(app_with_own_cache), visitor(app_with_own_cache)
    image = tmp_path / "red_circle_21.png"
    image.write_bytes(png("red", "circle", 21))
    before = set(stored_files(image_store()))
    status, _ = alice.predict([handle_file(str(image))], api_name="/add_images")
    assert "1 image in your gallery" in status
    [stored] = set(stored_files(image_store())) - before
    results, _ = alice.predict("a red circle", 1, "mine", api_name="/search")
    assert Path(results[0]["image"]).read_bytes() == image.read_bytes()  # shown to its own visitor
    sha = hashlib.sha256(image.read_bytes()).hexdigest()
    base = app_with_own_cache.local_url.rstrip("/")
    for path in (stored, image_store() / sha[:2] / f"{sha}.png", image_store() / f"{sha}.png"):
        assert http_status(f"{base}/gradio_api/file={urllib.parse.quote(str(path))}") in (403, 404)
    with pytest.raises(Exception, match="Your gallery is empty"):
        bob.predict("a red circle", 1, "mine", api_name="/search")


def test_a_second_visitor_uploading_the_same_images_sees_no_cache_hit(app_with_own_cache, tmp_path):
    archive = make_zip(tmp_path / "album.zip")
    alice, bob = visitor(app_with_own_cache), visitor(app_with_own_cache)
    status, _ = alice.predict([handle_file(str(archive))], api_name="/add_images")
    assert f"{len(SCENES)} encoded, 0 from the cache" in status
    status, _ = bob.predict([handle_file(str(archive))], api_name="/add_images")
    assert f"{len(SCENES)} images added" in status and f"{len(SCENES)} encoded, 0 from the cache" in status


def test_quotas_cut_an_upload_with_a_clear_message(app_with_own_cache, tmp_path, monkeypatch):
    archive = make_zip(tmp_path / "album.zip")
    sizes = [len(png(*scene)) + IMAGE_ALLOWANCE for scene in SCENES]  # each image is charged for its embeddings too
    monkeypatch.setenv(VISITOR_BYTES_ENV, str(sizes[0] + sizes[1] + sizes[2] // 2))
    status, source = visitor(app_with_own_cache).predict([handle_file(str(archive))], api_name="/add_images")
    assert "2 images in your gallery" in status and source == "mine"
    assert "Stopped at album/blue_triangle_13.png" in status and "the 2 images before it were added" in status
    assert "limit per visitor" in status and "Clear your gallery" in status

    monkeypatch.delenv(VISITOR_BYTES_ENV)
    monkeypatch.setenv(STORE_BYTES_ENV, str(upload_store().used() + sizes[0] // 2))
    status, source = visitor(app_with_own_cache).predict([handle_file(str(archive))], api_name="/add_images")
    assert "0 images in your gallery" in status and source == "examples"
    assert "space for uploaded images" in status and "Try again later" in status and "nothing was added" in status


def test_clear_my_gallery_deletes_the_files_from_disk(app_with_own_cache, tmp_path):
    alice = visitor(app_with_own_cache)
    before = set(image_store().iterdir())
    alice.predict([handle_file(str(make_zip(tmp_path / "album.zip")))], api_name="/add_images")
    [folder] = set(image_store().iterdir()) - before
    assert len(stored_files(folder)) == len(SCENES)
    status, source = alice.predict(api_name="/clear_images")
    assert "deleted from the server" in status and source == "examples"
    assert not folder.exists()


def test_clear_my_gallery_deletes_the_copies_its_results_were_shown_from(app_with_own_cache, tmp_path):
    alice = Client(app_with_own_cache.local_url, verbose=False, download_files=False)  # answers name server files
    album = tmp_path / "album.zip"
    with zipfile.ZipFile(album, "w") as archive:
        for seed in (41, 42):
            archive.writestr(f"purple_square_{seed}.png", png("purple", "square", seed))
    alice.predict([handle_file(str(album))], api_name="/add_images")
    results, _ = alice.predict("a purple square", 2, "mine", api_name="/search")
    shown = [Path(result["image"]["path"]) for result in results]
    assert len(shown) == 2 and all(path.is_file() for path in shown)  # copies in Gradio's cache, served to alice
    base = app_with_own_cache.local_url.rstrip("/")
    assert http_status(f"{base}/gradio_api/file={urllib.parse.quote(str(shown[0]))}") == 200
    alice.predict(api_name="/clear_images")
    assert not any(path.exists() for path in shown)
    assert http_status(f"{base}/gradio_api/file={urllib.parse.quote(str(shown[0]))}") in (403, 404)
