"""The Chat tab's API served on loopback, called through gradio_client: /chat streams the toy chat model's answer, a
follow-up reuses the chat (its image is not encoded again), bad input gets our messages, and Stop or a cancelled
job stops the generation itself."""

from __future__ import annotations

import threading

import pytest
from gradio_client import handle_file
from gradio_client.exceptions import AppError

import pipelines
import toyworld
from tests.conftest import models_put_back
from tests.test_chat import build_untrained

SEED = toyworld.HELD_OUT_SEED + 60_000  # scenes no toy model was trained or measured on
LONG = 512  # new tokens asked for where an answer must still be running when it is stopped
HOLD = 60  # seconds a held generation waits at most for the test to go on (it never should)


@pytest.fixture(scope="module")
def scenes(tmp_path_factory):
    """Fresh single-shape scenes saved as PNG files: [(scene, path)]."""
    directory = tmp_path_factory.mktemp("chat")
    found = []
    for seed in range(SEED, SEED + 4):
        scene = toyworld.scene(seed)
        scene.image.save(directory / f"{seed}.png")
        found.append((scene, str(directory / f"{seed}.png")))
    return found


@pytest.fixture
def vision_runs():
    """Images the toy chat model's vision tower encodes while a test runs (the server shares this process)."""
    chat = pipelines.load("chat")
    seen = []
    hook = chat.model.model.vision_model.register_forward_hook(lambda module, args, output: seen.append(1))
    yield seen
    hook.remove()


def streamed(job) -> list[str]:
    """Every update the job streamed (the answer so far), then its end."""
    updates = [update for update in job]
    assert job.status().success
    return updates


def test_a_streamed_answer_describes_the_scene(client, scenes):
    scene, path = scenes[0]
    job = client.submit("Describe this image.", [handle_file(path)], api_name="/chat")
    updates = [update for update in streamed(job) if update]
    answer = job.result()
    assert answer.startswith("The image shows") and scene.color in answer
    # Token by token: several updates, each one the answer so far.
    assert len(set(updates)) >= 3
    assert all(answer.startswith(update) for update in updates) and updates[-1] == answer


def test_a_follow_up_in_the_same_chat_is_answered_without_encoding_the_image_again(client, scenes, vision_runs):
    scene, path = scenes[1]
    image = handle_file(path)
    first = client.predict("How many shapes are there?", [image], None, api_name="/chat")
    assert first == "one" and len(vision_runs) == 1
    history = [
        {"role": "user", "content": [{"type": "image", "image": image}, "How many shapes are there?"]},
        {"role": "assistant", "content": first},
    ]
    assert client.predict("What color is the shape?", None, history, api_name="/chat") == scene.color
    assert len(vision_runs) == 1  # the image's keys and values came from the chat's cache
    # The same words about another image are another chat: that image is read, not the cached one.
    other, other_path = next((s, p) for s, p in scenes if s.color != scene.color)
    history[0]["content"][0]["image"] = handle_file(other_path)
    assert client.predict("What color is the shape?", None, history, api_name="/chat") == other.color
    assert len(vision_runs) == 2


def test_bad_input_gets_our_message_and_the_next_request_works(client, scenes, tmp_path):
    scene, path = scenes[0]
    not_an_image = tmp_path / "photo.png"
    not_an_image.write_text("this is no image")
    refused = {
        "The message is empty. Type a message": ("", None, None, None),
        "Too many images: this chat would hold 5; the limit is 4": ("What is it?", [handle_file(path)] * 5),
        "The message is too long: 5,000 characters": ("x" * 5000, [handle_file(path)]),
        r"This file is not an image \('photo.png'": ("What is it?", [handle_file(str(not_an_image))]),
        "Unknown chat model 'toy-blip'.*Registry names: .*toy-smolvlm": ("Hi", [handle_file(path)], None, "toy-blip"),
        "it is a 'blip' model, not a chat model": (
            "Hi",
            [handle_file(path)],
            None,
            "assets/models/toy/blip-caption",
        ),
        "Message 1 of the history has a part the chat cannot read": (
            "What shape is it?",
            None,
            [{"role": "user", "content": [{"type": "image", "image": {"path": "/etc/passwd"}}]}],
        ),
    }
    for message, arguments in refused.items():
        with pytest.raises(AppError, match=message):
            client.predict(*arguments, api_name="/chat")
        # The next request is answered as if nothing had happened.
        assert client.predict("What color is the shape?", [handle_file(path)], api_name="/chat") == scene.color


@pytest.fixture(scope="module")
def untrained_dir(tmp_path_factory):
    """An untrained tiny SmolVLM: its answers never end on their own, so they are still running when stopped."""
    directory = tmp_path_factory.mktemp("untrained-chat")
    build_untrained(directory)
    with models_put_back():
        yield str(directory)


@pytest.fixture
def held(untrained_dir):
    """The untrained model's decoding steps, held at the 6th until ``go`` is set: (steps, reached, go)."""
    chat = pipelines.load("chat", untrained_dir)  # the server loads the same one
    steps, reached, go = [], threading.Event(), threading.Event()

    def hold(module, args, output):
        steps.append(1)
        if len(steps) == 6:
            reached.set()
            go.wait(HOLD)

    hook = chat.model.model.text_model.register_forward_hook(hold)
    yield steps, reached, go
    go.set()
    hook.remove()


def settled(steps: list, chat) -> int:
    """The number of decoding steps once the generation has ended (its cache is back in the store)."""
    for _ in range(600):
        if len(chat.conversations):
            return len(steps)
        threading.Event().wait(0.1)
    raise AssertionError("the generation did not end")


def test_stop_ends_the_generation_and_the_answer_so_far_is_the_result(client, scenes, untrained_dir, held):
    steps, reached, go = held
    chat = pipelines.load("chat", untrained_dir)
    chat.forget()
    job = client.submit(
        "Describe this image.", [handle_file(scenes[0][1])], None, untrained_dir, LONG, api_name="/chat"
    )
    assert reached.wait(HOLD), "the answer never started"
    client.predict(api_name="/chat_stop")  # the Stop button's request, from the same visitor
    go.set()
    answer = job.result()
    assert settled(steps, chat) <= 8  # the step under way, and at most one more: not the 512 asked for
    assert 0 < len(answer.split()) <= 8


def test_a_cancelled_job_stops_the_generation(client, scenes, untrained_dir, held):
    steps, reached, go = held
    chat = pipelines.load("chat", untrained_dir)
    chat.forget()
    job = client.submit(
        "Describe this image.", [handle_file(scenes[1][1])], None, untrained_dir, LONG, api_name="/chat"
    )
    assert reached.wait(HOLD), "the answer never started"
    # The server ends the job at once but can close its stream only between two pieces: the held step goes on soon
    # after the cancel was sent (the cancel returns once the stream is closed).
    threading.Timer(0.5, go.set).start()
    job.cancel()
    count = settled(steps, chat)
    assert count < 40  # the page's cancel reached the generate thread: it did not run on to 512 tokens
    for _ in range(600):  # the client hears the job's end
        if job.done():
            break
        threading.Event().wait(0.1)
    assert job.done()
    seen = len(job.outputs())
    threading.Event().wait(1.0)
    assert len(job.outputs()) == seen and len(steps) == count  # no further tokens arrive
