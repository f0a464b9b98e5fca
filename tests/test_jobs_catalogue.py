"""A catalogue as the app serves it, without Ray: searches showing one image at once all get its copy."""

from __future__ import annotations

import threading

import toyworld
from pipelines.jobs.catalogue import shown_copy


def test_searches_showing_the_same_image_at_once_all_get_a_whole_copy(tmp_path):
    image = tmp_path / "scene.png"
    toyworld.scene(toyworld.HELD_OUT_SEED + 9600).image.save(image)
    for attempt in range(5):  # a few rounds: the searches race differently each time
        folder, copies, barrier = tmp_path / f"shown-{attempt}", [], threading.Barrier(12)

        def show(folder=folder, copies=copies, barrier=barrier):
            barrier.wait()
            copies.append(shown_copy(str(image), folder))

        threads = [threading.Thread(target=show) for _ in range(12)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        assert len(copies) == 12 and len(set(copies)) == 1 and copies[0] is not None
        assert open(copies[0], "rb").read() == image.read_bytes()
        assert [p.name for p in folder.iterdir()] == [copies[0].rpartition("/")[2]]  # no temporary file left
