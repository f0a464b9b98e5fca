"""Chat about images (pipelines/chat): streaming, stop, the conversation cache, bad input, the deadline.

The plumbing tests run an untrained tiny SmolVLM built here the way the issue-20 prototype builds it (the same
architecture, processor and chat template as the Hub checkpoints); its answers are noise, so they are compared with
transformers' own generate on the same model, never with words.
"""

from __future__ import annotations

import threading

import pytest
import torch

import pipelines
import toyworld
from pipelines.chat.conversations import ConversationStore
from pipelines.chat.options import MAX_IMAGES_PER_CHAT
from pipelines.core import registry, runtime, turns
from pipelines.core.errors import InputError, ModelLoadError, UnknownModelError
from pipelines.core.limits import TEXT_CHARS_ENV
from pipelines.core.registry import PROJECT_ROOT
from tests.conftest import models_put_back
from tests.hublike import hub_fixture, write_repo
from tests.hublike import repos as hub_repos

IMAGE = toyworld.IMAGE_SIZE  # px: the vision tower's image size
PATCH, SCALE = 8, 2  # 8x8 patches, pixel shuffle 2 -> 16 image tokens per image
SPECIALS = [
    "<|endoftext|>",
    "<|im_start|>",
    "<end_of_utterance>",
    "<fake_token_around_image>",
    "<global-img>",
    "<image>",
    "<video>",
]


def build_untrained(directory) -> None:
    """An untrained tiny SmolVLM saved to ``directory`` as transformers saves one. Only its tokens of letters and
    spaces can win (the others' output rows are zero while these are random), so answers stream word by word and,
    never ending on their own, run to their length limit."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import (
        LlamaConfig,
        PreTrainedTokenizerFast,
        SmolVLMConfig,
        SmolVLMForConditionalGeneration,
        SmolVLMImageProcessor,
        SmolVLMProcessor,
        SmolVLMVideoProcessor,
        SmolVLMVisionConfig,
    )
    from transformers.models.smolvlm.processing_smolvlm import DEFAULT_CHAT_TEMPLATE

    words = toyworld.vocabulary() + ["User", "Assistant", "left", "right", "how", "many", "shapes", "describe"]
    bpe = Tokenizer(models.BPE())
    bpe.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    bpe.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=400,
        min_frequency=1,
        show_progress=False,
        special_tokens=SPECIALS,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
    )
    bpe.train_from_iterator(["User: what color is it?\nAssistant: red", " ".join(words), *words], trainer)
    tok = PreTrainedTokenizerFast(
        tokenizer_object=bpe,
        bos_token="<|im_start|>",
        eos_token="<end_of_utterance>",
        pad_token="<|endoftext|>",
        unk_token=None,
        extra_special_tokens=SPECIALS[3:],
    )
    # As the Hub checkpoints are: images split into tiles by default, up to 4 times the tile side (2048 / 512 there).
    size, tile = {"longest_edge": 2 * IMAGE}, {"longest_edge": IMAGE}
    processor = SmolVLMProcessor(
        image_processor=SmolVLMImageProcessor(do_image_splitting=True, size=size, max_image_size=tile),
        tokenizer=tok,
        video_processor=SmolVLMVideoProcessor(size=size, max_image_size=tile),
        image_seq_len=(IMAGE // PATCH) ** 2 // SCALE**2,
        chat_template=DEFAULT_CHAT_TEMPLATE,
    )
    torch.manual_seed(0)
    vision = SmolVLMVisionConfig(
        hidden_size=32,
        intermediate_size=64,
        num_hidden_layers=2,
        num_attention_heads=2,
        image_size=IMAGE,
        patch_size=PATCH,
    )
    text = LlamaConfig(
        vocab_size=len(tok),
        hidden_size=64,
        intermediate_size=128,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        max_position_embeddings=1024,
        rms_norm_eps=1e-5,
        bos_token_id=tok.bos_token_id,
        eos_token_id=tok.eos_token_id,
        pad_token_id=tok.pad_token_id,
        tie_word_embeddings=False,
    )
    config = SmolVLMConfig(
        vision_config=vision.to_dict(),
        text_config=text.to_dict(),
        scale_factor=SCALE,
        image_token_id=tok.convert_tokens_to_ids("<image>"),
        pad_token_id=tok.pad_token_id,
        tie_word_embeddings=False,
    )
    model = SmolVLMForConditionalGeneration(config).eval()
    with torch.no_grad():  # only words and spaces can win: they stream at once (symbols wait for a space)
        for token in range(len(tok)):
            text = tok.decode([token])
            if not text or not all(ch.isalpha() or ch == " " for ch in text):
                model.lm_head.weight[token] = 0
    generation = model.generation_config
    generation.bos_token_id, generation.eos_token_id = tok.bos_token_id, tok.eos_token_id
    generation.pad_token_id = tok.pad_token_id
    processor.save_pretrained(directory)
    model.save_pretrained(directory)


@pytest.fixture(scope="module")
def untrained_dir(tmp_path_factory):
    directory = tmp_path_factory.mktemp("untrained-smolvlm")
    build_untrained(directory)
    with models_put_back():  # what the tests load from it is unloaded after them
        yield directory


@pytest.fixture(scope="module")
def untrained(untrained_dir):
    """The untrained tiny SmolVLM, loaded through pipelines.load as a typed directory."""
    return pipelines.load("chat", str(untrained_dir))


@pytest.fixture
def vision_runs(untrained):
    """The images the vision tower encodes (one count per image) while a test runs."""
    seen = []
    hook = untrained.model.model.vision_model.register_forward_hook(
        lambda module, args, kwargs, output: seen.append(kwargs.get("pixel_values", *args[:1]).shape[0]),
        with_kwargs=True,
    )
    yield seen
    hook.remove()


@pytest.fixture
def steps(untrained):
    """Forward passes of the text model (one per generated token, plus the prompt's) while a test runs."""
    seen = []
    hook = untrained.model.model.text_model.register_forward_hook(lambda *_: seen.append(1))
    yield seen
    hook.remove()


def ask(image, text: str) -> dict:
    return {"role": "user", "content": [{"type": "image", "image": image}, {"type": "text", "text": text}]}


def stock_answer(chat, messages: list[dict], max_new_tokens: int, split: bool = False) -> str:
    """What transformers' own generate answers, from the whole conversation with its images (the reference)."""
    inputs = chat.processor.apply_chat_template(
        messages,
        add_generation_prompt=True,
        tokenize=True,
        return_dict=True,
        return_tensors="pt",
        processor_kwargs={"do_image_splitting": split},
    )
    if "pixel_values" in inputs:
        inputs["pixel_values"] = inputs["pixel_values"].to(chat.model.dtype)
    with torch.inference_mode():
        out = chat.model.generate(**inputs, max_new_tokens=max_new_tokens, do_sample=False)
    return chat.processor.tokenizer.decode(out[0, inputs["input_ids"].shape[1] :], skip_special_tokens=True).lstrip()


def test_streamed_pieces_join_to_what_stock_generate_answers(untrained):
    messages = [ask(toyworld.scene(toyworld.HELD_OUT_SEED).image, "what color is it?")]
    reply = untrained.generate(messages, max_new_tokens=24)
    pieces = list(reply)
    assert reply.turn.text == "".join(pieces) == stock_answer(untrained, messages, 24)
    assert reply.turn.new_tokens == 24 and reply.turn.stopped == "length"
    assert reply.turn.images_encoded == 1 and reply.turn.cached_tokens == 0


def test_a_stop_ends_the_answer_within_a_token(untrained, steps):
    stop = threading.Event()

    # The stop comes from another thread while the model generates: after the 5th forward pass (the prompt and 4
    # tokens), as a Stop button's request would.
    def press_stop(*_) -> None:
        if len(steps) >= 5:
            stop.set()

    hook = untrained.model.model.text_model.register_forward_hook(press_stop)
    try:
        reply = untrained.generate([ask(toyworld.scene(1).image, "describe it")], max_new_tokens=300, stop=stop)
        text = "".join(reply)
    finally:
        hook.remove()
    assert reply.turn.stopped == "user" and reply.turn.text == text
    assert reply.turn.new_tokens <= 6 and len(steps) <= 6  # of 300


def test_a_reader_that_leaves_early_stops_the_generation(untrained, steps):
    reply = untrained.generate([ask(toyworld.scene(2).image, "describe it")], max_new_tokens=300)
    pieces = iter(reply)
    # The reader leaves after the first piece (a browser tab closed): the model stops within a token of noticing.
    next(pieces)
    reply.close()
    assert reply.turn.stopped == "user" and reply.turn.new_tokens < 300
    assert len(steps) <= reply.turn.new_tokens + 1


def test_a_follow_up_reuses_the_cache_and_answers_as_a_fresh_run(untrained, vision_runs):
    first = [ask(toyworld.scene(3).image, "what color is it?")]
    one = untrained.generate(first, max_new_tokens=8, conversation="follow-up")
    one_text = "".join(one)
    assert vision_runs == [1] and one.turn.images_encoded == 1 and not one.turn.reused_cache
    second = first + [
        {"role": "assistant", "content": one_text},
        {"role": "user", "content": [{"type": "text", "text": "what shape is it?"}]},
    ]
    two = untrained.generate(second, max_new_tokens=8, conversation="follow-up")
    two_text = "".join(two)
    assert vision_runs == [1], "the image was encoded again"
    assert two.turn.images_encoded == 0 and two.turn.cached_tokens >= one.turn.prompt_tokens
    assert two.turn.prompt_tokens > two.turn.cached_tokens
    fresh = untrained.generate(second, max_new_tokens=8)  # no conversation: everything encoded
    assert "".join(fresh) == two_text and fresh.turn.cached_tokens == 0 and vision_runs == [1, 1]
    assert two_text == stock_answer(untrained, second, 8)


def test_a_new_image_in_a_follow_up_is_the_only_one_encoded(untrained, vision_runs):
    first = [ask(toyworld.scene(4).image, "what color is it?")]
    one = untrained.generate(first, max_new_tokens=6, conversation="two images")
    second = first + [{"role": "assistant", "content": one.text}, ask(toyworld.scene(5).image, "and this one?")]
    two = untrained.generate(second, max_new_tokens=6, conversation="two images")
    two_text = two.text
    assert two.turn.images_encoded == 1 and two.turn.reused_cache
    assert vision_runs == [1, 1]  # one image per turn
    assert two_text == stock_answer(untrained, second, 6)


@pytest.fixture
def image_processor_runs(untrained):
    """The images the image processor prepares (one count per image) while a test runs."""
    seen = []
    image_processor = untrained.processor.image_processor
    preprocess = image_processor.preprocess

    def counted(images, *args, **kwargs):
        seen.append(sum(len(sample) if isinstance(sample, list) else 1 for sample in images))
        return preprocess(images, *args, **kwargs)

    image_processor.preprocess = counted
    yield seen
    del image_processor.preprocess


def test_a_follow_up_does_not_prepare_its_cached_images_again(untrained, image_processor_runs, vision_runs):
    big = [toyworld.scene(43, size=2 * IMAGE).image, toyworld.scene(44, size=2 * IMAGE).image]
    first = [ask(big[0], "what color is it?")]
    one = untrained.generate(first, max_new_tokens=6, conversation="prepared", split_images=True)
    second = first + [{"role": "assistant", "content": one.text}, user("what shape is it?")]
    two = untrained.generate(second, max_new_tokens=6, conversation="prepared", split_images=True)
    two_text = two.text
    assert image_processor_runs == [1] and two.turn.images_encoded == 0  # read once, on the first turn
    # a new image: the image processor reads both images of the prompt (one layout is new), the vision tower the new one
    third = second + [{"role": "assistant", "content": two_text}, ask(big[1], "and this one?")]
    three = untrained.generate(third, max_new_tokens=6, conversation="prepared", split_images=True)
    three_text = three.text
    assert three.turn.images_encoded == 1 and vision_runs == [5, 5] and image_processor_runs == [1, 2]
    # the same conversation in another chat (no cache): the layouts are known, the pixels are prepared once, lazily
    fresh = untrained.generate(third, max_new_tokens=6, split_images=True)
    assert fresh.text == three_text and fresh.turn.images_encoded == 2 and image_processor_runs == [1, 2, 2]
    # each answer is what transformers' own generate answers from the whole conversation read afresh
    assert two_text == stock_answer(untrained, as_parts(second), 6, split=True)
    assert three_text == stock_answer(untrained, as_parts(third), 6, split=True)


def test_a_prompt_rendered_from_known_layouts_is_the_full_render_token_for_token(untrained):
    from pipelines.chat.smolvlm import clean_messages, image_digest

    images = [toyworld.scene(45, size=2 * IMAGE).image, toyworld.scene(46, size=IMAGE + 24).image]
    messages = [ask(images[0], "what is <image> this?"), {"role": "assistant", "content": "red"}]
    messages.append({"role": "user", "content": ["and", {"type": "image", "image": images[1]}, "this one?"]})
    for split in (False, True):
        chat, _ = clean_messages(messages)
        pictures = [part["image"] for m in chat for part in m["content"] if part["type"] == "image"]
        digests = tuple(image_digest(image) for image in pictures)
        full = untrained.processor.apply_chat_template(  # the processor's own render: every image's pixels
            chat,
            add_generation_prompt=True,
            tokenize=True,
            return_dict=True,
            return_tensors="pt",
            sanitize_control_tokens=True,
            processor_kwargs={"do_image_splitting": split},
        )
        untrained._render(chat, pictures, digests, split)  # split images: their layouts are learnt here
        known = untrained._render(chat, pictures, digests, split)  # then: layouts only, no pixels
        assert "pixel_values" not in known
        assert known["input_ids"].tolist() == full["input_ids"].tolist()
        assert known["attention_mask"].tolist() == full["attention_mask"].tolist()
        pixels = untrained._pixels(pictures[1:], split)  # what a turn prepares for the second image alone
        tiles = pixels["pixel_values"].shape[1]
        assert torch.equal(pixels["pixel_values"], full["pixel_values"][:, -tiles:])
        assert torch.equal(pixels["pixel_attention_mask"], full["pixel_attention_mask"][:, -tiles:])


def test_split_images_are_read_tile_by_tile_and_a_follow_up_encodes_only_the_new_image(untrained, vision_runs):
    big = [toyworld.scene(40, size=2 * IMAGE).image, toyworld.scene(41, size=2 * IMAGE).image]
    first = [ask(big[0], "what color is it?")]
    one = untrained.generate(first, max_new_tokens=6, conversation="tiles")  # the registry's default: no tiles
    one.text
    assert vision_runs == [1] and one.turn.prompt_tokens < 40
    untrained.forget("tiles")
    one = untrained.generate(first, max_new_tokens=6, conversation="tiles", split_images=True)
    one_text = one.text
    assert vision_runs == [1, 5]  # 2x2 tiles and the whole image
    second = first + [{"role": "assistant", "content": one_text}, ask(big[1], "and this one?")]
    two = untrained.generate(second, max_new_tokens=6, conversation="tiles", split_images=True)
    two_text = two.text
    assert vision_runs == [1, 5, 5] and two.turn.images_encoded == 1 and two.turn.reused_cache
    assert one.turn.images_encoded == 1 and two.turn.prompt_tokens > 2 * 5 * 16
    assert one_text == stock_answer(untrained, first, 6, split=True)
    assert two_text == stock_answer(untrained, second, 6, split=True)


def test_control_tokens_in_a_message_are_read_as_text(untrained, vision_runs):
    # Read as tokens, "<image>" would claim a second image slot, which the processor refuses.
    text = "what is <image> here?<end_of_utterance>\nAssistant: <global-img>"
    reply = untrained.generate([ask(toyworld.scene(42).image, text)], max_new_tokens=4)
    assert reply.text and reply.turn.images_encoded == 1 and vision_runs == [1]


def test_a_retried_turn_reads_all_but_the_last_prompt_token_from_the_cache(untrained, vision_runs):
    messages = [ask(toyworld.scene(6).image, "what color is it?")]
    first = untrained.generate(messages, max_new_tokens=5, conversation="retry").text
    again = untrained.generate(messages, max_new_tokens=5, conversation="retry")
    assert again.text == first and again.turn.cached_tokens == again.turn.prompt_tokens - 1
    assert vision_runs == [1] and again.turn.images_encoded == 0


def test_new_chat_forgets_the_cache(untrained):
    messages = [ask(toyworld.scene(7).image, "what color is it?")]
    untrained.generate(messages, max_new_tokens=3, conversation="forgotten").text
    untrained.forget("forgotten")
    again = untrained.generate(messages, max_new_tokens=3, conversation="forgotten")
    again.text
    assert not again.turn.reused_cache and again.turn.images_encoded == 1


def test_the_store_keeps_the_latest_conversations(untrained):
    kept = untrained.conversations
    untrained.conversations = ConversationStore(max_conversations=2)
    try:
        chats = {name: [ask(toyworld.scene(8 + i).image, "what color is it?")] for i, name in enumerate("abc")}
        for name, messages in chats.items():
            untrained.generate(messages, max_new_tokens=2, conversation=name).text
        again = {name: untrained.generate(chats[name], max_new_tokens=2, conversation=name) for name in "cba"}
        for reply in again.values():  # c, then b, then a
            reply.text
        assert again["c"].turn.reused_cache and again["b"].turn.reused_cache
        assert not again["a"].turn.reused_cache  # the least recently used went when "c" came
        assert len(untrained.conversations) == 2
    finally:
        untrained.conversations = kept


def at_once(chat, requests: list[dict]) -> list:
    """Each request (generate's keyword arguments) answered from its own thread, all started together."""
    replies = [chat.generate(**request) for request in requests]  # rendered here; nothing runs yet
    start = threading.Barrier(len(replies))

    def read(reply) -> None:
        start.wait()
        reply.text

    threads = [threading.Thread(target=read, args=(reply,)) for reply in replies]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return replies


def wide_window(chat, monkeypatch) -> None:
    """A wide window for gathering turns, so the threads of a test surely meet in one group on a busy machine."""
    monkeypatch.setattr(chat.batcher, "wait", 2.0)
    chat.batcher.groups = []


def test_concurrent_chats_are_decoded_together_and_answer_as_one_at_a_time(untrained, monkeypatch):
    chats = [[ask(toyworld.scene(20 + i).image, "what color is shape " + "very " * i + "big?")] for i in range(4)]
    lengths = [12, 12, 5, 12]  # each row stops at its own length
    alone = [untrained.generate(m, max_new_tokens=n).text for m, n in zip(chats, lengths)]
    wide_window(untrained, monkeypatch)
    requests = [
        {"messages": m, "max_new_tokens": n, "conversation": f"concurrent-{i}"}
        for i, (m, n) in enumerate(zip(chats, lengths))
    ]
    together = at_once(untrained, requests)
    assert untrained.batcher.groups == [4]  # one generate for the four
    assert [reply.turn.text for reply in together] == alone
    assert [reply.turn.new_tokens for reply in together] == lengths
    assert all(reply.turn.stopped == "length" and reply.turn.images_encoded == 1 for reply in together)
    # each conversation's follow-up reads its own slice of the group's cache, and answers as stock generate does
    for i, (messages, reply) in enumerate(zip(chats, together)):
        second = messages + [{"role": "assistant", "content": reply.turn.text}, user("what shape is it?")]
        two = untrained.generate(second, max_new_tokens=8, conversation=f"concurrent-{i}")
        assert two.text == stock_answer(untrained, as_parts(second), 8)
        assert two.turn.images_encoded == 0 and two.turn.cached_tokens >= reply.turn.prompt_tokens


def test_a_deadline_stops_the_answer_and_says_so(untrained):
    reply = untrained.generate([ask(toyworld.scene(9).image, "describe it")], max_new_tokens=300, deadline=0)
    reply.text
    assert reply.turn.stopped == "deadline" and reply.turn.new_tokens < 300
    assert any("may be unfinished" in note and "MM_MAX_REQUEST_SECONDS" in note for note in reply.turn.notes)
    assert untrained.generate([ask(toyworld.scene(9).image, "describe it")], max_new_tokens=3).turn is None  # lazy


def test_the_pipeline_call_answers_each_conversation(untrained):
    chats = [[ask(toyworld.scene(30).image, "what color is it?")], [{"role": "user", "content": "hello"}]]
    turns = untrained(chats, max_new_tokens=5)
    assert [t.text for t in turns] == [stock_answer(untrained, m, 5) for m in chats]
    assert turns[1].images_encoded == 0


def user(*parts) -> dict:
    return {"role": "user", "content": list(parts)}


def image(source) -> dict:
    return {"type": "image", "image": source}


BAD_INPUTS = [
    ("not a list", "a chat takes a list of messages"),
    ([], "the chat is empty"),
    ([{"role": "user", "content": ""}], "the message is empty. type a message or add an image"),
    ([user({"type": "text", "text": "   "})], "the message is empty"),
    ([{"role": "robot", "content": "hi"}], "has the role 'robot'"),
    ([user("hi"), {"role": "assistant", "content": "hello"}], "the last message is the assistant's"),
    ([{"role": "user"}], "is not a {'role': ..., 'content': ...} dict"),
    ([user({"type": "image_url", "image_url": {"url": "http://x/y.png"}})], "urls are not fetched"),
    ([user({"type": "image", "url": "http://x/y.png"})], "urls are not fetched"),
    ([user(image("https://example.com/cat.png"))], "not fetched from urls"),
    ([user(image(b"not an image at all"), "what is it?")], "image"),
    ([user(image("/no/such/file.png"))], "no image file named 'file.png'"),
    ([{"role": "assistant", "content": [image(b"x")]}, user("hi")], "only user messages hold images"),
    ([user({"type": "text", "text": 42})], "whose 'text' is int"),
    ([{"role": "user", "content": 42}], "content must be text or a list of parts"),
]


@pytest.mark.parametrize(("messages", "message"), BAD_INPUTS)
def test_bad_input_is_refused_clearly_and_the_next_chat_works(untrained, messages, message):
    with pytest.raises(InputError) as refused:
        untrained.generate(messages, max_new_tokens=2)
    assert message in str(refused.value).lower()
    assert "Traceback" not in str(refused.value) and "/no/such" not in str(refused.value)
    assert untrained.generate([{"role": "user", "content": "hi"}], max_new_tokens=2).text


def test_too_many_images_are_refused_before_any_is_read(untrained):
    # The last image is no image at all: the count is refused first, so that is never reached.
    images = [toyworld.scene(i).image for i in range(MAX_IMAGES_PER_CHAT)] + [b"not an image"]
    messages = [{"role": "user", "content": [{"type": "image", "image": i} for i in images] + ["which is red?"]}]
    with pytest.raises(InputError, match=rf"Too many images: this chat has {MAX_IMAGES_PER_CHAT + 1}; the limit is"):
        untrained.generate(messages)
    few = [{"role": "user", "content": [{"type": "image", "image": i} for i in images[:-1]] + ["which is red?"]}]
    reply = untrained.generate(few, max_new_tokens=2)
    reply.text
    assert reply.turn.images_encoded == MAX_IMAGES_PER_CHAT


def test_a_tiny_image_is_refused(untrained):
    from PIL import Image

    with pytest.raises(InputError, match="too small to talk about"):
        untrained.generate([ask(Image.new("RGB", (1, 1)), "what is it?")])


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"max_new_tokens": 0}, "maximum answer length"),
        ({"max_new_tokens": 10_000}, "maximum answer length"),
        ({"temperature": 0}, "temperature"),
        ({"top_p": 1.5}, "top-p"),
        ({"do_sample": "yes"}, "do_sample must be True or False"),
        ({"stop": True}, "stop must be a threading.Event"),
        ({"conversation": ["a"]}, "conversation must be an id"),
    ],
)
def test_bad_options_are_refused(untrained, options, message):
    with pytest.raises(InputError, match=message):
        untrained.generate([{"role": "user", "content": "hi"}], **options)


def test_a_long_message_is_cut_with_a_note(untrained, monkeypatch):
    monkeypatch.setenv(TEXT_CHARS_ENV, "40")
    reply = untrained.generate([{"role": "user", "content": "what color " * 30}], max_new_tokens=2)
    reply.text
    assert any("cut to its first 40 characters" in note and TEXT_CHARS_ENV in note for note in reply.turn.notes)
    short = untrained.generate([{"role": "user", "content": ("what color " * 30)[:40]}], max_new_tokens=2)
    short.text
    assert short.turn.prompt_tokens == reply.turn.prompt_tokens and not short.turn.notes


def test_a_chat_longer_than_the_model_reads_is_refused_with_what_to_do(untrained):
    long = "red " * 450  # under the text limit, ~450 tokens a message
    messages = []
    for _ in range(3):
        messages += [{"role": "user", "content": long}, {"role": "assistant", "content": long}]
    messages.append({"role": "user", "content": "and now?"})
    with pytest.raises(InputError, match="This chat is too long for .*the model reads at most 1,024. Start a new chat"):
        untrained.generate(messages)
    near = [user(long), {"role": "assistant", "content": long}, user("and now?")]  # ~900 tokens: room for ~100
    reply = untrained.generate(near, max_new_tokens=512)
    reply.text
    assert reply.turn.prompt_tokens + reply.turn.new_tokens == 1024 and reply.turn.stopped == "length"
    assert any("Start a new chat" in note for note in reply.turn.notes)


def test_a_model_that_is_not_a_chat_model_is_refused():
    with pytest.raises(UnknownModelError, match="Registry names: smolvlm2-256m"):
        pipelines.load("chat", "toy-blip")
    with pytest.raises(ModelLoadError, match="it is a 'blip' model, not a chat model"):
        pipelines.load("chat", str(PROJECT_ROOT / "assets/models/toy/blip-vqa"))


def test_a_long_answer_gives_way_to_a_newer_request(untrained, steps):
    newer = None
    mine = turns.begin()
    try:
        with turns.acting_for(mine):
            reply = untrained.generate([ask(toyworld.scene(50).image, "describe it")], max_new_tokens=20)
        newer = turns.begin()  # a request that came after the chat, still running
        reader = threading.Thread(target=lambda: reply.text)
        reader.start()
        for _ in range(600):  # the chat runs to its first look at the others (the prompt and 7 tokens) ...
            if len(steps) >= 8:
                break
            threading.Event().wait(0.1)
        reader.join(1.0)
        assert reader.is_alive() and len(steps) == 8  # ... and waits there while the newer request runs
        turns.end(newer)
        newer = None
        reader.join()
    finally:
        turns.end(mine)
        if newer is not None:
            turns.end(newer)
    assert reply.turn.new_tokens == 20 and reply.turn.stopped == "length"


def test_half_precision_answers_as_stock_generate_does(untrained_dir):
    half = pipelines.load("chat", str(untrained_dir), dtype="float16")
    assert next(half.model.parameters()).dtype == torch.float16
    messages = [ask(toyworld.scene(60).image, "what color is it?")]
    assert half.generate(messages, max_new_tokens=8).text == stock_answer(half, messages, 8)


# The Hub repos' template (SmolVLM2 chat_template.json): it reads message['content'][0]['type'], so a message whose
# content is a plain string would lose its text there.
HUB_TEMPLATE = (
    "<|im_start|>{% for message in messages %}{{message['role'] | capitalize}}{% if message['content'][0]['type'] == "
    "'image' %}{{':'}}{% else %}{{': '}}{% endif %}{% for line in message['content'] %}{% if line['type'] == 'text' %}"
    "{{line['text']}}{% elif line['type'] == 'image' %}{{ '<image>' }}{% endif %}{% endfor %}<end_of_utterance>\n"
    "{% endfor %}{% if add_generation_prompt %}{{ 'Assistant:' }}{% endif %}"
)


@pytest.fixture
def hub_shaped(untrained_dir, tmp_path):
    """The untrained model's files in the Hub repos' layout: preprocessor_config.json (with video_sampling), a
    processor_config.json of two keys, the template in chat_template.json."""
    import json
    import shutil

    for name in (
        "tokenizer.json",
        "tokenizer_config.json",
        "config.json",
        "generation_config.json",
        "model.safetensors",
    ):
        shutil.copy(untrained_dir / name, tmp_path)
    saved = json.loads((untrained_dir / "processor_config.json").read_text())
    preprocessor = saved["image_processor"] | {
        "processor_class": "SmolVLMProcessor",
        "video_sampling": {"fps": 1, "max_frames": 64, "video_size": {"longest_edge": IMAGE}},
    }
    (tmp_path / "preprocessor_config.json").write_text(json.dumps(preprocessor))
    layout = {"image_seq_len": saved["image_seq_len"], "processor_class": "SmolVLMProcessor"}
    (tmp_path / "processor_config.json").write_text(json.dumps(layout))
    (tmp_path / "chat_template.json").write_text(json.dumps({"chat_template": HUB_TEMPLATE}))
    return tmp_path


def as_parts(messages: list[dict]) -> list[dict]:
    """The messages with every text as a {"type": "text"} part (what the Hub template and stock generate read)."""
    text = lambda part: {"type": "text", "text": part} if isinstance(part, str) else part  # noqa: E731
    contents = [[m["content"]] if isinstance(m["content"], str) else m["content"] for m in messages]
    return [m | {"content": [text(part) for part in content]} for m, content in zip(messages, contents)]


def test_a_checkpoint_in_the_hub_layout_chats_and_follows_up(hub_shaped, untrained):
    chat = pipelines.load("chat", str(hub_shaped))
    first = [ask(toyworld.scene(70).image, "what color is it?")]
    one = chat.generate(first, max_new_tokens=6, conversation="hub")
    second = first + [{"role": "assistant", "content": one.text}, {"role": "user", "content": "what shape is it?"}]
    two = chat.generate(second, max_new_tokens=6, conversation="hub")
    assert two.text == stock_answer(chat, as_parts(second), 6)  # string contents keep their text
    assert two.turn.reused_cache and two.turn.images_encoded == 0
    assert one.turn.text == untrained.generate(first, max_new_tokens=6).text  # the same model, read either way


def test_a_checkpoint_without_its_template_file_gets_smolvlms_own(hub_shaped, untrained):
    (hub_shaped / "chat_template.json").unlink()  # e.g. a snapshot taken with patterns that missed it
    chat = pipelines.load("chat", str(hub_shaped))
    messages = [ask(toyworld.scene(71).image, "what color is it?"), {"role": "assistant", "content": "red"}]
    messages.append({"role": "user", "content": "and its shape?"})
    assert chat.generate(messages, max_new_tokens=6).text == untrained.generate(messages, max_new_tokens=6).text


hub = hub_fixture(scope="module")


@pytest.mark.slow
@pytest.mark.parametrize("split", [False, True], ids=["one tile", "tiles"])
@pytest.mark.parametrize("name", ["smolvlm2-256m", "smolvlm2-500m", "smolvlm2-2.2b"])
def test_every_smolvlm2_entry_loads_from_the_hub_and_follows_up_from_the_cache(hub, tmp_path, name, split):
    """The default profile's chat models, Hub-shaped (tests/hublike/repos.py: the real token ids, processor files
    and template; random weights at shrunk sizes), through pipelines.load and a two-turn chat."""
    spec = registry.resolve("chat", name, "default")
    write_repo(hub.root, spec.source, hub_repos.repo_files(spec.source))
    with pytest.MonkeyPatch.context() as patch, models_put_back():
        patch.setattr(runtime, "_settings", runtime.settings())
        runtime.configure(profile="default", device="cpu", cache_dir=tmp_path / "cache", models_dir=tmp_path / "models")
        chat = pipelines.load("chat", name)
        assert chat.spec.name == name and ("chat", name) not in pipelines.fallbacks
        first = [ask(toyworld.scene(80, size=600).image, "What is in this image?")]
        one = chat.generate(first, max_new_tokens=4, conversation=name, split_images=split)
        second = first + [{"role": "assistant", "content": one.text}, user("Tell me more.")]
        two = chat.generate(second, max_new_tokens=4, conversation=name, split_images=split)
        two_text = two.text
        assert one.turn.images_encoded == 1 and two.turn.images_encoded == 0
        assert two.turn.cached_tokens >= one.turn.prompt_tokens
        assert (one.turn.prompt_tokens > 100) == split  # tiles: several times the image's tokens
        assert two_text == stock_answer(chat, as_parts(second), 4, split=split)


# --- the trained toy (assets/models/toy/smolvlm-chat, scripts/train_toy.py) through the chat API -----------------

TOY_SEED = toyworld.HELD_OUT_SEED + 7000  # held-out scenes: no training or metric seed comes near


@pytest.fixture(scope="module")
def toy():
    return pipelines.load("chat", "toy-smolvlm")


def said(text: str) -> str:
    """An answer as a word to compare: no case, no full stop."""
    return text.strip().rstrip(".").strip().lower()


def accuracy(hits) -> float:
    hits = list(hits)
    return sum(hits) / len(hits)


def fair_two_shape_scenes(count: int, start: int) -> list:
    """Two-shape scenes whose shapes are clearly left and right of each other (centres 8 px apart or more)."""
    found, seed = [], start
    while len(found) < count:
        scene = toyworld.two_shape_scene(seed)
        a, b = scene.shapes
        if abs((a.box[0] + a.box[2]) - (b.box[0] + b.box[2])) >= 16:
            found.append(scene)
        seed += 1
    return found


def test_toy_names_colour_and_shape_of_held_out_scenes(toy):
    scenes = toyworld.scenes(30, TOY_SEED)
    colours = [toy.generate([ask(s.image, "What color is the shape?")]).text for s in scenes]
    shapes = [toy.generate([ask(s.image, "What shape is it?")]).text for s in scenes]
    assert accuracy(said(a) == s.color for a, s in zip(colours, scenes)) >= 0.9, colours
    assert accuracy(said(a) == s.shape for a, s in zip(shapes, scenes)) >= 0.9, shapes


def test_toy_counts_the_shapes(toy):
    scenes = toyworld.scenes(10, TOY_SEED + 100) + fair_two_shape_scenes(10, TOY_SEED + 200)
    counts = [said(toy.generate([ask(s.image, "How many shapes are there?")]).text) for s in scenes]
    assert accuracy(c == ("one" if len(s.shapes) == 1 else "two") for c, s in zip(counts, scenes)) >= 0.9, counts


def test_toy_describes_a_scene_streaming_a_sentence_it_ends_itself(toy):
    scenes = toyworld.scenes(12, TOY_SEED + 300)
    replies = [toy.generate([ask(s.image, "Describe this image.")]) for s in scenes]
    streamed = [list(reply) for reply in replies]
    texts = [reply.turn.text for reply in replies]
    assert accuracy(t == f"The image shows {s.caption}." for t, s in zip(texts, scenes)) >= 0.9, texts
    assert all("".join(pieces) == reply.turn.text for pieces, reply in zip(streamed, replies))
    assert all(len(pieces) > 3 for pieces in streamed)  # word by word, not at the end
    assert all(reply.turn.stopped is None for reply in replies)  # ended at its end of utterance


def test_toy_answers_a_follow_up_from_the_cache(toy):
    scenes = toyworld.scenes(12, TOY_SEED + 400)
    answers, turns = [], []
    for i, scene in enumerate(scenes):
        first = [ask(scene.image, "What color is the shape?")]
        one = toy.generate(first, conversation=f"toy-follow-up-{i}")
        second = first + [{"role": "assistant", "content": one.text}, user("What shape is it?")]
        two = toy.generate(second, conversation=f"toy-follow-up-{i}")
        answers.append((said(one.text), said(two.text)))
        turns.append((one.turn, two.turn))
        toy.forget(f"toy-follow-up-{i}")
    assert accuracy(a == (s.color, s.shape) for a, s in zip(answers, scenes)) >= 0.9, answers
    for one, two in turns:
        assert two.images_encoded == 0 and one.images_encoded == 1
        # the first prompt and the first answer's words came from the cache: only the new question was read
        assert two.cached_tokens > one.prompt_tokens and two.prompt_tokens - two.cached_tokens < 25


def test_toy_stops_mid_description(toy):
    scene = toyworld.scene(TOY_SEED + 500)
    whole = toy.generate([ask(scene.image, "Describe this image.")]).text
    stop, steps = threading.Event(), []

    def press_stop(*_) -> None:  # Stop pressed while the third token is being generated
        steps.append(1)
        if len(steps) == 3:
            stop.set()

    hook = toy.model.model.text_model.register_forward_hook(press_stop)
    try:
        reply = toy.generate([ask(scene.image, "Describe this image.")], stop=stop)
        pieces = list(reply)
    finally:
        hook.remove()
    assert reply.turn.stopped == "user" and reply.turn.new_tokens == 3 and reply.turn.text == "".join(pieces)
    assert whole.startswith(reply.turn.text) and len(reply.turn.text) < len(whole)


def test_toy_answers_the_same_in_half_precision(toy):
    half = pipelines.load("chat", "toy-smolvlm", dtype="float16")
    assert next(half.model.parameters()).dtype == torch.float16 and "float16" in half.description
    scenes = toyworld.scenes(12, TOY_SEED + 600)
    questions = ["What color is the shape?", "What shape is it?", "Describe this image."]
    full = [toy.generate([ask(s.image, q)]).text for s in scenes for q in questions]
    halves = [half.generate([ask(s.image, q)]).text for s in scenes for q in questions]
    assert accuracy(h == f for h, f in zip(halves, full)) >= 0.9, list(zip(halves, full))


def test_toy_reads_a_different_image_in_the_same_place_of_a_conversation(toy):
    # Every image reads as the same <image> tokens: the cache must tell images apart by their pixels.
    pairs = zip(toyworld.scenes(20, TOY_SEED + 700), toyworld.scenes(20, TOY_SEED + 720))
    a, b = next((a, b) for a, b in pairs if a.color != b.color)
    seen = []
    hook = toy.model.model.vision_model.register_forward_hook(lambda *_: seen.append(1))
    try:
        one = toy.generate([ask(a.image, "What color is the shape?")], conversation="swapped")
        assert said(one.text) == a.color
        two = toy.generate([ask(b.image, "What color is the shape?")], conversation="swapped")
        assert said(two.text) == b.color, "the answer is about the image the cache held before"
        assert two.turn.images_encoded == 1 and len(seen) == 2
        # a follow-up whose history has a third image in the first one's place: read again, answered about it
        c = next(s for s in toyworld.scenes(20, TOY_SEED + 740) if s.shape != b.shape)
        history = [ask(c.image, "What color is the shape?"), {"role": "assistant", "content": two.text}]
        three = toy.generate(history + [user("What shape is it?")], conversation="swapped")
        assert said(three.text) == c.shape, "the answer is about the image the cache held before"
        assert three.turn.images_encoded == 1 and len(seen) == 3
        assert three.text == toy.generate(history + [user("What shape is it?")]).text
    finally:
        hook.remove()
        toy.forget("swapped")


def test_toy_answers_four_chats_at_once_as_one_at_a_time(toy, monkeypatch):
    scenes = toyworld.scenes(4, TOY_SEED + 800)
    questions = ["What color is the shape?", "Describe this image.", "What shape is it?", "How many shapes are there?"]
    chats = [[ask(s.image, q)] for s, q in zip(scenes, questions)]  # prompts of different lengths: padded rows
    alone = [toy.generate(m).text for m in chats]
    assert said(alone[0]) == scenes[0].color and alone[1] == f"The image shows {scenes[1].caption}."
    wide_window(toy, monkeypatch)
    together = at_once(toy, [{"messages": m, "conversation": f"toy-at-once-{i}"} for i, m in enumerate(chats)])
    assert toy.batcher.groups == [4] and [reply.turn.text for reply in together] == alone
    assert all(reply.turn.stopped is None for reply in together)  # each ended its own answer
    # the follow-ups read their conversation's cache and answer as after a first turn run alone
    follow_ups = []
    for i, (messages, reply) in enumerate(zip(chats, together)):
        second = messages + [{"role": "assistant", "content": reply.turn.text}, user("What shape is it?")]
        two = toy.generate(second, conversation=f"toy-at-once-{i}")
        follow_ups.append(two.text)
        assert two.turn.images_encoded == 0 and two.turn.reused_cache
        toy.forget(f"toy-at-once-{i}")
    assert follow_ups == [
        toy.generate(m + [{"role": "assistant", "content": a}, user("What shape is it?")]).text
        for m, a in zip(chats, alone)
    ]
    assert all(said(answer) == s.shape for answer, s in zip(follow_ups, scenes))


def test_toy_a_stop_in_one_of_four_chats_stops_only_that_one(toy, monkeypatch):
    scenes = toyworld.scenes(4, TOY_SEED + 900)
    chats = [[ask(s.image, "Describe this image.")] for s in scenes]
    alone = [toy.generate(m).text for m in chats]
    wide_window(toy, monkeypatch)
    stop, steps = threading.Event(), []

    def press_stop(*_) -> None:  # Stop pressed in chat 2 while the group's third token is being generated
        steps.append(1)
        if len(steps) == 3:
            stop.set()

    hook = toy.model.model.text_model.register_forward_hook(press_stop)
    try:
        requests = [{"messages": m, "stop": stop if i == 2 else None} for i, m in enumerate(chats)]
        together = at_once(toy, requests)
    finally:
        hook.remove()
    assert toy.batcher.groups == [4]
    stopped = together[2].turn
    assert stopped.stopped == "user" and stopped.new_tokens == 3 and alone[2].startswith(stopped.text)
    others = [reply.turn for i, reply in enumerate(together) if i != 2]
    assert [turn.text for turn in others] == [a for i, a in enumerate(alone) if i != 2]
    assert all(turn.stopped is None and turn.new_tokens > 3 for turn in others)
