"""A visitor's uploads: images and zips, with everything a zip can do wrong; nothing lands outside the cache dir."""

from __future__ import annotations

import io
import zipfile

import pytest

import toyworld
from pipelines.core.errors import InputError
from pipelines.search.gallery import MAX_UPLOAD_FILES, Gallery
from pipelines.search.uploads import image_store


def png(seed: int) -> bytes:
    buffer = io.BytesIO()
    toyworld.scene(toyworld.HELD_OUT_SEED + seed).image.save(buffer, "PNG")
    return buffer.getvalue()


def make_zip(path, entries: dict[str, bytes], compression=zipfile.ZIP_DEFLATED):
    with zipfile.ZipFile(path, "w", compression) as archive:
        for name, data in entries.items():
            archive.writestr(name, data)
    return path


def files_under(folder) -> set[str]:
    return {str(p.relative_to(folder)) for p in folder.rglob("*") if p.is_file()}


def test_a_messy_zip_adds_its_images_and_says_what_it_skipped(cache_dir, tmp_path):
    upload = tmp_path / "upload"
    upload.mkdir()
    archive = make_zip(
        upload / "holiday.zip",
        {
            "red_circle.png": png(1),
            "trip/day1/blue_square.png": png(2),  # nested folders
            "trip/day2/copy_of_red_circle.png": png(1),  # the same picture again
            "notes.txt": b"not an image",
            "../../evil.png": png(3),  # would escape the folder if extracted by name
            "/etc/absolute.png": png(4),
            "inner.zip": b"PK\x03\x04",
            "__MACOSX/._red_circle.png": b"\x00\x05\x16\x07",
        },
    )
    before = files_under(tmp_path)
    gallery = Gallery("my images")
    report = gallery.add_uploads([archive])
    assert (report.added, report.duplicates) == (2, 1)
    assert sorted(item.label for item in gallery.items) == ["blue square", "red circle"]
    summary = report.summary()
    for expected in (
        "notes.txt (not an image)",
        "../../evil.png (unsafe path",
        "/etc/absolute.png (unsafe path",
        "inner.zip (an archive inside the zip",
        "1 duplicate skipped",
    ):
        assert expected in summary
    written = files_under(tmp_path) - before - {"cache/upload.key"}  # the install's secret for file names
    assert written and all(name.startswith("cache/images/") for name in written)
    assert not any("evil" in name or "absolute" in name for name in files_under(tmp_path.parent))


def test_a_zip_bomb_is_refused_before_anything_is_unpacked(cache_dir, tmp_path):
    bomb = make_zip(tmp_path / "bomb.zip", {"big.png": b"\x00" * (64 * 2**20)})
    assert bomb.stat().st_size < 2**20
    with pytest.raises(InputError, match="looks like a zip bomb.*Nothing was unpacked"):
        Gallery("my images").add_uploads([bomb])
    assert not image_store().exists()


def test_ten_thousand_files_are_refused_with_the_offline_alternative(cache_dir, tmp_path):
    archive = make_zip(tmp_path / "many.zip", {f"img{i}.png": b"x" for i in range(10_000)}, zipfile.ZIP_STORED)
    with pytest.raises(InputError, match=f"10,000 files; at most {MAX_UPLOAD_FILES:,}.*python -m pipelines.index"):
        Gallery("my images").add_uploads([archive])


def test_uploaded_image_files_and_duplicates(cache_dir, tmp_path):
    (tmp_path / "a.png").write_bytes(png(5))
    (tmp_path / "b.png").write_bytes(png(5))
    (tmp_path / "empty.png").write_bytes(b"")
    (tmp_path / "notes.png").write_text("meeting notes")
    gallery = Gallery("my images")
    report = gallery.add_uploads(
        [tmp_path / "a.png", tmp_path / "b.png", tmp_path / "empty.png", tmp_path / "notes.png"]
    )
    assert (report.added, report.duplicates, len(gallery)) == (1, 1, 1)
    assert "empty.png (empty file)" in report.summary() and "notes.png (not an image)" in report.summary()
    assert gallery.add_uploads([tmp_path / "a.png"]).duplicates == 1  # adding it again later


@pytest.mark.parametrize(
    "files,message",
    [
        ([], "No files were given"),
        (["not_a_zip.zip"], "not a readable zip file"),
    ],
)
def test_uploads_that_cannot_be_used(cache_dir, tmp_path, files, message):
    for name in files:
        (tmp_path / name).write_text("hello")
    with pytest.raises(InputError, match=message):
        Gallery("my images").add_uploads([tmp_path / name for name in files])
