"""Dynamic batching across requests (pipelines.core.batching), on the real toy captioner."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

import pytest

import pipelines
import toyworld
from pipelines.core.batching import Batcher
from pipelines.core.errors import InputError


@pytest.fixture(scope="module")
def captioner():
    return pipelines.load("caption")


def concurrently(batcher, captioner, images, **options):
    def one(image):
        try:
            return batcher.run(captioner, [image], **options)[0].text
        except InputError as error:
            return error

    with ThreadPoolExecutor(len(images)) as pool:
        return list(pool.map(one, images))


def test_concurrent_requests_share_forward_passes_and_each_gets_its_own_caption(captioner):
    scenes = toyworld.scenes(8, start_seed=toyworld.HELD_OUT_SEED + 300)
    batcher = Batcher(max_batch=8, wait=0.5)
    captions = concurrently(batcher, captioner, [s.image for s in scenes])
    assert sum(batcher.calls) == 8 and len(batcher.calls) < 8  # joined
    for scene, caption in zip(scenes, captions):
        assert scene.color in caption and scene.shape in caption


def test_different_options_are_not_joined(captioner):
    image = toyworld.scene(toyworld.HELD_OUT_SEED + 310).image
    batcher = Batcher(max_batch=8, wait=0.3)
    with ThreadPoolExecutor(2) as pool:
        list(pool.map(lambda beams: batcher.run(captioner, [image], num_beams=beams), [1, 3]))
    assert sorted(batcher.calls) == [1, 1]


def test_one_bad_input_fails_only_its_own_request(captioner):
    scenes = toyworld.scenes(5, start_seed=toyworld.HELD_OUT_SEED + 320)
    images = [s.image for s in scenes] + [b"these are meeting notes, not an image"]
    batcher = Batcher(max_batch=8, wait=0.5)
    results = concurrently(batcher, captioner, images)
    assert isinstance(results[-1], InputError) and "not an image" in str(results[-1])
    for scene, caption in zip(scenes, results[:-1]):
        assert isinstance(caption, str) and scene.shape in caption


def test_batches_never_exceed_the_maximum(captioner):
    scenes = toyworld.scenes(7, start_seed=toyworld.HELD_OUT_SEED + 330)
    batcher = Batcher(max_batch=3, wait=0.5)
    concurrently(batcher, captioner, [s.image for s in scenes])
    assert sum(batcher.calls) == 7 and max(batcher.calls) <= 3


def test_concurrent_visitors_captions_are_joined_by_the_app_and_each_is_right(tmp_path):
    from gradio_client import Client, handle_file

    from pipelines.core.batching import batcher
    from tests.serving import serve

    demo = serve("toy")
    try:
        scenes = toyworld.scenes(8, start_seed=toyworld.HELD_OUT_SEED + 340)
        paths = []
        for i, scene in enumerate(scenes):
            scene.image.save(tmp_path / f"scene{i}.png")
            paths.append(str(tmp_path / f"scene{i}.png"))
        Client(demo.local_url, verbose=False).predict(handle_file(paths[0]), api_name="/caption")  # load the models
        before = len(batcher.calls)
        clients = [Client(demo.local_url, verbose=False) for _ in paths]
        with ThreadPoolExecutor(len(paths)) as pool:
            captions = list(
                pool.map(lambda i: clients[i].predict(handle_file(paths[i]), api_name="/caption")[0], range(len(paths)))
            )
        joined = list(batcher.calls)[before:]
        assert len(joined) < len(paths) and max(joined) > 1  # some visitors shared a forward pass
        for scene, caption in zip(scenes, captions):
            assert scene.color in caption and scene.shape in caption
    finally:
        demo.close()
