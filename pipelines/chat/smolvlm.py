"""SmolVLM / SmolVLM2 chat (the Idefics3 family): a conversation about images in, the answer streamed out.

    chat = pipelines.load("chat")
    reply = chat.generate([{"role": "user", "content": [{"type": "image", "image": "photo.jpg"},
                                                          {"type": "text", "text": "What is in the picture?"}]}],
                          conversation="visitor-1/chat-1")
    for piece in reply:                  # new text as it comes
        print(piece, end="")
    reply.turn                           # ChatTurn: tokens, cache reuse, why it stopped, notes

One model serves every request: each ``generate`` runs transformers' ``generate`` in a thread of its own (the
tokenizer is taken in turns, see core.base.TakingTurns). A follow-up of the same ``conversation`` reads the earlier
turns, images included, from that conversation's key/value cache (conversations.py): only the new tokens are
encoded and the vision tower does not run again. Nor does the image processor: the tile layout of each image read
before is remembered (by a digest of its pixels), so a follow-up's prompt is rendered from the text alone, and pixels
are prepared only for the images the cache lacks.
"""

from __future__ import annotations

import contextvars
import hashlib
import logging
import os
import threading
from collections import OrderedDict
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import replace
from typing import Any

import torch
from transformers import StoppingCriteria, StoppingCriteriaList, TextIteratorStreamer
from transformers.image_utils import make_flat_list_of_images

from ..core import registry, turns
from ..core.budget import Deadline, unfinished_notice
from ..core.checkpoints import checkpoint_dir, config_model_type
from ..core.errors import InputError, ModelLoadError
from ..core.hf import TransformersPipeline
from ..core.io import image_at_least
from ..core.limits import IMAGES_ENV, TEXT_CHARS_ENV, limits
from .batching import GIVE_WAY_EVERY, TurnBatcher, lead
from .conversations import ConversationStore
from .options import (
    DEFAULT_NEW_TOKENS,
    MAX_IMAGES_PER_CHAT,
    MAX_MESSAGES,
    STOPPED_AT_DEADLINE,
    STOPPED_AT_LENGTH,
    STOPPED_BY_USER,
    ChatOptions,
    ChatTurn,
)

log = logging.getLogger(__name__)

ROLES = ("user", "assistant", "system")
MIN_IMAGE_SIDE = 8  # pixels; smaller images hold nothing to talk about
MAX_CONVERSATION_ID = 200  # characters of a conversation id
MAX_LAYOUTS = 256  # image layouts (tile rows x columns) remembered per loaded model, by pixel digest

# While a prompt is rendered: the digest of each of its images, by id() of the image object the template reads.
_PROMPT_DIGESTS: contextvars.ContextVar[dict[int, str] | None] = contextvars.ContextVar("chat_prompt", default=None)
EXAMPLE_MESSAGE = (
    "[{'role': 'user', 'content': [{'type': 'image', 'image': 'photo.jpg'}, {'type': 'text', 'text': 'What is it?'}]}]"
)


class SmolVlmChat(TransformersPipeline):
    """Chat about images with a SmolVLM / SmolVLM2 checkpoint: ``generate`` streams one answer; calling the pipeline
    with a list of conversations answers each (no streaming, no cache) and returns their ChatTurns."""

    Options = ChatOptions
    model_class_name = "SmolVLMForConditionalGeneration"
    processor_class_name = "SmolVLMProcessor"
    max_inputs = ("conversations", "images_per_request", IMAGES_ENV)

    def __init__(self, spec, device, dtype, model, processor):
        super().__init__(spec, device, dtype, model, processor)
        ensure_chat_template(spec, processor)
        tokenizer = self.processor.tokenizer
        self.conversations = ConversationStore()
        self.batcher = TurnBatcher()  # first turns that come together are decoded together
        self.image_token_id = int(model.config.image_token_id)
        self.global_image_token_id = _token_id(tokenizer, processor.global_image_token)
        self.image_seq_len = int(processor.image_seq_len)
        self.context_tokens = int(model.config.text_config.max_position_embeddings)
        generation = model.generation_config
        eos = generation.eos_token_id
        if eos is None:
            eos = _token_id(tokenizer, processor.end_of_utterance_token)
        self.eos_token_ids = {int(i) for i in (eos if isinstance(eos, (list, tuple)) else [eos]) if i is not None}
        pad = generation.pad_token_id if generation.pad_token_id is not None else tokenizer.pad_token_id
        self.pad_token_id = pad if pad is not None else min(self.eos_token_ids)
        # (digest, split) -> (rows, columns) of tiles; the processor asks _images_for_prompt for its images' layout
        self._layouts: OrderedDict[tuple[str, bool], tuple[int, int]] = OrderedDict()
        self._layouts_lock = threading.Lock()
        self._read_images = processor._process_images  # the processor's own: pixels and layout of every image
        processor._process_images = self._images_for_prompt

    @classmethod
    def load(cls, spec, device, dtype):
        if not registry.is_registered(spec):  # a typed directory or Hub id: refuse what is no chat model before
            path = checkpoint_dir(spec, ["config.json"])  # its weights are read (or downloaded)
            model_type = config_model_type(spec, path)
            served = registry.family(spec.task, "smolvlm")["model_types"]
            if model_type not in served:
                raise ModelLoadError(
                    spec.name,
                    f"it is a '{model_type}' model, not a chat model ({', '.join(served)})",
                    f"Choose a chat model, e.g. {', '.join(registry.available_models(spec.task))}",
                )
        return super().load(spec, device, dtype)

    def options(self, **overrides: Any) -> ChatOptions:
        """The caller's options, checked, with this model's registry defaults for what they left at None."""
        options = super().options(**overrides)
        defaults = {"max_new_tokens": DEFAULT_NEW_TOKENS, "split_images": False, **registry.defaults(self.spec)}
        filled = {name: defaults[name] for name in ("max_new_tokens", "split_images") if getattr(options, name) is None}
        options = replace(options, **filled)
        options.verify()
        return options

    # --- the public call ---------------------------------------------------------------------------------------

    def generate(
        self,
        messages: Sequence[Mapping],
        *,
        max_new_tokens: int | None = None,
        do_sample: bool | None = None,
        temperature: float | None = None,
        top_p: float | None = None,
        split_images: bool | None = None,
        stop: threading.Event | None = None,
        conversation: str | None = None,
        deadline: Deadline | float | None = None,
    ) -> ChatReply:
        """The answer to the last user message of ``messages``, as a ChatReply: iterate it for the text as it comes
        (pieces to concatenate); ``reply.turn`` then says what the turn did.

        ``messages``: ``{"role": "user" | "assistant" | "system", "content": str | [part, ...]}`` dicts, the whole
        conversation so far, a part being ``{"type": "text", "text": str}`` or ``{"type": "image", "image": PIL
        image | file path | bytes | array}`` (never a URL). ``stop``: set it and the answer ends within a token.
        ``conversation``: the caller's id for this chat; its next turn then reuses this one's key/value cache.
        ``deadline``: a Deadline or seconds from now; the answer stops there and says it may be unfinished.
        ``split_images``: also read large images tile by tile (None: the registry's default, off).
        Bad input raises InputError here, before anything runs."""
        given = {
            "max_new_tokens": max_new_tokens,
            "do_sample": do_sample,
            "temperature": temperature,
            "top_p": top_p,
            "split_images": split_images,
        }
        options = self.options(**{name: value for name, value in given.items() if value is not None})
        if stop is not None and not callable(getattr(stop, "is_set", None)):
            raise InputError(f"stop must be a threading.Event; got {type(stop).__name__}")
        return self._reply(messages, options, stop=stop, conversation=conversation, deadline=Deadline.of(deadline))

    def forget(self, conversation: str | None = None) -> None:
        """Drop a conversation's cache (a "new chat" button), or every conversation's."""
        self.conversations.forget(_conversation_id(conversation) if conversation is not None else None)

    def run(self, inputs: Sequence, options: ChatOptions, deadline: Deadline | None = None, **context: Any) -> list:
        """Each conversation of ``inputs`` answered in full, without a cache (the Pipeline call)."""
        if isinstance(inputs, (str, bytes, Mapping)) or not isinstance(inputs, Sequence):
            raise InputError(
                f"A chat pipeline takes a list of conversations; got {type(inputs).__name__}. "
                f"Wrap one conversation as [messages], e.g. [{EXAMPLE_MESSAGE}]"
            )
        replies = [self._reply(messages, options, deadline=deadline) for messages in inputs]  # all checked first
        results = []
        for reply in replies:
            for _ in reply:
                pass
            results.append(reply.turn)
        return results

    # --- preparing a turn ---------------------------------------------------------------------------------------

    def _reply(
        self,
        messages,
        options: ChatOptions,
        *,
        stop: threading.Event | None = None,
        conversation: str | None = None,
        deadline: Deadline | None = None,
    ) -> ChatReply:
        conversation = _conversation_id(conversation)
        chat, notes = clean_messages(messages)
        images = [part["image"] for message in chat for part in message["content"] if part["type"] == "image"]
        digests = tuple(image_digest(image) for image in images)
        inputs = self._render(chat, images, digests, options.split_images)
        ids = inputs["input_ids"][0].tolist()
        if len(ids) >= self.context_tokens:
            raise InputError(
                f"This chat is too long for {self.spec.name}: {len(ids):,} tokens, and the model reads at most "
                f"{self.context_tokens:,}. Start a new chat."
            )
        room = self.context_tokens - len(ids)
        turn = _Turn(
            pipeline=self,
            ids=ids,
            inputs=dict(inputs),
            options=options,
            max_new_tokens=min(options.max_new_tokens, room),
            context_bound=room < options.max_new_tokens,
            stop=stop,
            conversation=conversation,
            deadline=deadline,
            notes=notes,
            ticket=turns.current(),
            images=images,
            digests=digests,
        )
        return ChatReply(turn)

    def _render(self, chat: list[dict], images: list, digests: tuple[str, ...], split: bool) -> dict:
        """The chat template's prompt for ``chat``, tokenized: input_ids and attention_mask, and the images'
        pixel_values unless every image's layout is known (then they are prepared later, only where needed)."""
        token = _PROMPT_DIGESTS.set({id(image): digest for image, digest in zip(images, digests)})
        try:
            return render(self.processor, chat, do_image_splitting=split)
        finally:
            _PROMPT_DIGESTS.reset(token)

    def _images_for_prompt(self, images, **kwargs) -> tuple[dict, list[str]]:
        """The processor's ``_process_images`` (it calls this while rendering a prompt): each image's layout, and
        its pixels only if some image's layout is not known yet (a split image read for the first time). An image
        read as one tile has no rows or columns, and a follow-up's images were read before: their prompt is
        rendered without the image processor, and ``_pixels`` prepares pixels only where the cache lacks them."""
        digests = _PROMPT_DIGESTS.get()
        flat = make_flat_list_of_images(images)
        split = kwargs.get("do_image_splitting")
        split = bool(self.processor.image_processor.do_image_splitting if split is None else split)
        keys = [(digests.get(id(image)), split) if digests is not None else None for image in flat]
        with self._layouts_lock:
            known = [self._layouts.get(key) if key is not None and key[0] is not None else None for key in keys]
            for key, layout in zip(keys, known):
                if layout is not None:
                    self._layouts.move_to_end(key)
        if digests is not None and not split:
            known = [(0, 0)] * len(flat)  # one tile each: no rows or columns of tiles
        if known and all(layout is not None for layout in known):
            layout = {"rows": [[rows for rows, _ in known]], "cols": [[cols for _, cols in known]]}
            return layout, [self.processor.replace_image_token(layout, i) for i in range(len(flat))]
        processed, replacements = self._read_images(images, **kwargs)
        rows = torch.as_tensor(processed["rows"]).flatten().tolist()
        cols = torch.as_tensor(processed["cols"]).flatten().tolist()
        with self._layouts_lock:
            for key, layout in zip(keys, zip(rows, cols)):
                if key is not None and key[0] is not None:
                    self._layouts[key] = (int(layout[0]), int(layout[1]))
                    self._layouts.move_to_end(key)
            while len(self._layouts) > MAX_LAYOUTS:
                self._layouts.popitem(last=False)
        return processed, replacements

    def _pixels(self, images: list, split: bool) -> dict[str, torch.Tensor]:
        """pixel_values (and pixel_attention_mask) of ``images``, read as one prompt's images are."""
        processed = self.processor.image_processor([list(images)], do_image_splitting=split, return_tensors="pt")
        return {name: processed[name] for name in ("pixel_values", "pixel_attention_mask") if name in processed}

    def _image_blocks(self, ids: list[int]) -> tuple[list[int], list[int]]:
        """(the position of the first token of each image tile in ``ids``, the position of each image's global
        marker): a tile is ``image_seq_len`` image tokens; an image is its tiles, the global one last."""
        tiles, run = [], 0
        for position, token in enumerate(ids):
            if token == self.image_token_id:
                if run % self.image_seq_len == 0:
                    tiles.append(position)
                run += 1
        markers = [p for p, token in enumerate(ids) if token == self.global_image_token_id]
        return tiles, markers

    def _image_starts(self, ids: list[int]) -> list[int]:
        """The position of each image's first tile in ``ids`` (an image's global tile, its last, follows its
        global marker)."""
        tiles, markers = self._image_blocks(ids)
        if not markers:
            return tiles
        starts, after = [], -1
        for marker in markers:
            starts.append(next(start for start in tiles if start > after))
            after = marker + 1
        return starts


class ChatReply:
    """One answer: iterate it for its text as it comes (new pieces, to concatenate); once the iteration ends,
    ``turn`` (a ChatTurn) says what happened. Closing it early (``close()``, or dropping it mid-way) stops the
    generation within a token. Nothing runs until the first piece is asked for."""

    def __init__(self, turn: _Turn):
        self._turn = turn
        self._pieces = turn.stream()
        self.turn: ChatTurn | None = None

    def __iter__(self) -> Iterator[str]:
        return self

    def __next__(self) -> str:
        try:
            return next(self._pieces)
        except StopIteration:
            self.turn = self._turn.result
            raise

    def close(self) -> None:
        self._pieces.close()
        self.turn = self._turn.result

    @property
    def text(self) -> str:
        """The whole answer (iterates what is left)."""
        for _ in self:
            pass
        return self.turn.text if self.turn is not None else ""  # None: closed before it started


class _Turn:
    """One answer being generated: the cache taken from the store, the generate thread, and what it did."""

    def __init__(
        self,
        *,
        pipeline: SmolVlmChat,
        ids: list[int],
        inputs: dict,
        options: ChatOptions,
        max_new_tokens: int,
        context_bound: bool,
        stop: threading.Event | None,
        conversation: str | None,
        deadline: Deadline | None,
        notes: list[str],
        ticket: int | None,
        images: list = (),
        digests: tuple[str, ...] = (),
    ):
        self.pipeline, self.ids, self.inputs, self.options = pipeline, ids, inputs, options
        self.max_new_tokens, self.context_bound = max_new_tokens, context_bound
        self.stop, self.halt = stop, threading.Event()  # halt: the reader went away
        self.conversation, self.deadline, self.notes, self.ticket = conversation, deadline, list(notes), ticket
        self.images, self.digests = list(images), digests  # the prompt's images and their pixels' digests, in order
        self.result: ChatTurn | None = None
        # set by stream(): the generate inputs, the text stream, and the generation's output or error once finished
        self.kwargs: dict[str, Any] = {}
        self.streamer: TextIteratorStreamer | None = None
        self.outcome: dict[str, Any] = {}
        self.prepared, self.finished = threading.Event(), threading.Event()  # kwargs set (or failed); output set

    def stream(self) -> Iterator[str]:
        pipeline = self.pipeline
        self.ticket = self.ticket if self.ticket is not None else turns.current()
        cache, cached = self._cache()
        self.streamer = TextIteratorStreamer(pipeline.processor.tokenizer, skip_prompt=True, skip_special_tokens=True)
        # A turn with no cache to read decodes together with the other fresh turns that come now (batching.py):
        # they meet before preparing their pixels (done by each in its own thread meanwhile); the turn that leads
        # a group starts its generation, the others read their own rows of it.
        group = [self] if cache is not None else pipeline.batcher.gather(self)
        try:
            self.kwargs = self._generate_kwargs(cache, cached)
        finally:
            self.prepared.set()
            if group:
                threading.Thread(target=lead, args=(pipeline, group), name="chat-generate", daemon=True).start()
        pieces: list[str] = []
        try:
            for piece in self.streamer:
                if not pieces:  # the template ends on "Assistant:": the answer's first token starts with a space
                    piece = piece.lstrip()
                if piece:
                    pieces.append(piece)
                    yield piece
        except GeneratorExit:  # the reader left early (closed, or dropped the reply): stop within a token
            self.halt.set()
            raise
        finally:
            self.finished.wait()
            if "error" in self.outcome:
                raise self.outcome["error"]
            self._finish(self.outcome["output"], cached, "".join(pieces))

    def generate_alone(self) -> None:
        """This turn alone: transformers' generate, streamed (run in a thread of its own)."""
        with turns.acting_for(self.ticket):
            try:
                with torch.inference_mode():
                    self.outcome["output"] = self.pipeline.model.generate(**self.kwargs, streamer=self.streamer)
            except BaseException as error:  # noqa: BLE001 - handed to the reader, which raises it
                self.outcome["error"] = error
                self.streamer.end()  # generate ends the stream only when it succeeds
            finally:
                self.finished.set()

    def _cache(self) -> tuple[Any, int]:
        """(the conversation's cache cropped to what this prompt shares with it, or None; how many prompt tokens
        it holds)."""
        entry = self.pipeline.conversations.take(self.conversation)
        if entry is None:
            return None, 0
        common = 0
        for a, b in zip(entry.ids, self.ids):
            if a != b:
                break
            common += 1
        common = min(common, len(self.ids) - 1)  # generate needs at least one new token to read
        # Every image reads as the same tokens: the cache holds an image's keys and values only if its pixels match.
        changed = next((k for k, digest in enumerate(self.digests) if entry.images[k : k + 1] != (digest,)), None)
        starts = self.pipeline._image_starts(self.ids)
        if changed is not None and changed < len(starts):
            common = min(common, starts[changed])
        tiles, _ = self.pipeline._image_blocks(self.ids)
        cut_tile = next((start for start in tiles if start < common < start + self.pipeline.image_seq_len), None)
        if cut_tile is not None:  # the cache ends inside an image tile: that tile is encoded again, whole
            common = cut_tile
        if common == 0:
            return None, 0
        with torch.inference_mode():
            if common < entry.cache.get_seq_length():
                entry.cache.crop(common - entry.cache.get_seq_length())  # transformers 5: a negative count
        return entry.cache, common

    def _generate_kwargs(self, cache, cached: int) -> dict[str, Any]:
        pipeline, options = self.pipeline, self.options
        inputs = {name: value.to(pipeline.device) for name, value in self.inputs.items()}
        kwargs: dict[str, Any] = {"input_ids": inputs["input_ids"], "attention_mask": inputs["attention_mask"]}
        tiles, _ = pipeline._image_blocks(self.ids)
        first = sum(1 for start in tiles if start < cached)  # tiles already in the cache
        if first < len(tiles):  # only the tiles the cache lacks go to the vision tower
            if "pixel_values" not in inputs:  # the prompt was rendered without pixels: read the images needed now
                starts = pipeline._image_starts(self.ids)
                image = max(k for k, start in enumerate(starts) if start <= tiles[first])
                before = sum(1 for start in tiles if start < starts[image])  # tiles of the images before it
                pixels = pipeline._pixels(self.images[image:], self.options.split_images)
                inputs |= {name: value[:, first - before :].to(pipeline.device) for name, value in pixels.items()}
                first = 0
            kwargs["pixel_values"] = inputs["pixel_values"][:, first:].to(pipeline.dtype)
            if "pixel_attention_mask" in inputs:
                kwargs["pixel_attention_mask"] = inputs["pixel_attention_mask"][:, first:]
        if cache is not None:
            kwargs["cache"] = cache
        if options.do_sample:
            kwargs.update(do_sample=True, temperature=options.temperature, top_p=options.top_p, top_k=0)
        else:
            kwargs.update(do_sample=False, temperature=None, top_p=None, top_k=None)
        if self.deadline is not None:
            kwargs["max_time"] = self.deadline.generation_seconds()
        return kwargs | {
            "max_new_tokens": self.max_new_tokens,
            "eos_token_id": sorted(pipeline.eos_token_ids),
            "pad_token_id": pipeline.pad_token_id,
            "stopping_criteria": StoppingCriteriaList([_Stop(self)]),
            "use_cache": True,
            "return_dict_in_generate": True,
        }

    def _finish(self, output, cached: int, text: str) -> None:
        pipeline = self.pipeline
        sequence = output.sequences[0]
        new = sequence[len(self.ids) :].tolist()
        ended = bool(new) and new[-1] in pipeline.eos_token_ids
        stopped = None
        if not ended:
            if len(new) >= self.max_new_tokens:
                stopped = STOPPED_AT_LENGTH
                if self.context_bound:
                    self.notes.append(
                        f"The answer stopped where the chat fills what {pipeline.spec.name} can read "
                        f"({pipeline.context_tokens:,} tokens). Start a new chat to go on."
                    )
            elif (self.stop is not None and self.stop.is_set()) or self.halt.is_set():
                stopped = STOPPED_BY_USER
            elif self.deadline is not None and self.deadline.expired():
                stopped = STOPPED_AT_DEADLINE
                self.notes.append(unfinished_notice("The answer", self.deadline.seconds))
        cache = getattr(output, "cache", None)
        if cache is not None:
            ids = sequence[: cache.get_seq_length()].tolist()
            pipeline.conversations.put(self.conversation, cache, ids, self.digests)
        tiles, markers = pipeline._image_blocks(self.ids)
        if markers:  # an image's last tile follows its global marker: cached if that tile ends inside the cache
            encoded = sum(1 for marker in markers if marker + pipeline.image_seq_len >= cached)
        else:
            encoded = sum(1 for start in tiles if start >= cached)
        self.result = ChatTurn(
            text=text,
            new_tokens=len(new),
            prompt_tokens=len(self.ids),
            cached_tokens=cached,
            images_encoded=encoded,
            stopped=stopped,
            notes=tuple(self.notes),
            conversation=self.conversation,
        )


class _Stop(StoppingCriteria):
    """Ends the generation once the caller's stop event is set or the reader went away (checked after every
    token); every GIVE_WAY_EVERY tokens, first lets newer requests pass (turns.give_way)."""

    def __init__(self, turn: _Turn):
        self.turn, self.steps = turn, 0

    def _stopped(self) -> bool:
        return self.turn.halt.is_set() or (self.turn.stop is not None and self.turn.stop.is_set())

    def __call__(self, input_ids: torch.LongTensor, scores, **kwargs) -> torch.BoolTensor:
        self.steps += 1
        if self.steps % GIVE_WAY_EVERY == 0 and not self._stopped():
            turns.give_way(self.turn.deadline)
        return torch.full((input_ids.shape[0],), self._stopped(), dtype=torch.bool, device=input_ids.device)


def ensure_chat_template(spec, processor) -> None:
    """Give ``processor`` SmolVLM's default chat template where its snapshot lacks the template file (also used by
    the Caption and Ask families that run SmolVLM: caption.smolvlm, vqa.smolvlm)."""
    if getattr(processor, "chat_template", None) is None:
        from transformers.models.smolvlm.processing_smolvlm import DEFAULT_CHAT_TEMPLATE

        log.warning("%s has no chat template; using SmolVLM's default one", spec.name)
        processor.chat_template = DEFAULT_CHAT_TEMPLATE


# --- checking messages -------------------------------------------------------------------------------------------


def clean_messages(messages) -> tuple[list[dict], list[str]]:
    """``messages`` as the processor's chat template reads them (list content; images decoded, under "image"), and
    the notes to show (a message cut at the text limit). Refuses what cannot be a conversation, with what to do."""
    if isinstance(messages, (str, bytes, Mapping)) or not isinstance(messages, Sequence):
        raise InputError(
            f"A chat takes a list of messages; got {type(messages).__name__}. For example: {EXAMPLE_MESSAGE}"
        )
    if not messages:
        raise InputError("The chat is empty. Type a message or add an image.")
    if len(messages) > MAX_MESSAGES:
        raise InputError(
            f"This chat has {len(messages)} messages; the limit is {MAX_MESSAGES} messages in one chat. "
            "Start a new chat."
        )
    parsed = [_parts(index, message) for index, message in enumerate(messages)]
    images = sum(1 for _, parts in parsed for part in parts if part["type"] == "image")
    if images > MAX_IMAGES_PER_CHAT:
        raise InputError(
            f"Too many images: this chat has {images}; the limit is {MAX_IMAGES_PER_CHAT} images in one chat. "
            "Start a new chat for more images."
        )
    role, last = parsed[-1]
    if role != "user":
        raise InputError(f"The last message is the {role}'s; a chat answers the user's last message. Add one.")
    if not any(part["type"] == "image" or part["text"].strip() for part in last):
        raise InputError("The message is empty. Type a message or add an image.")
    limit, notes, chat = limits().text_chars, [], []
    for role, parts in parsed:
        content = []
        for part in parts:
            if part["type"] == "image":
                content.append({"type": "image", "image": _usable_image(part["image"])})
                continue
            text = part["text"]
            if len(text) > limit:  # cut, not refused (as Ask's questions): the note says so
                text = text[:limit]
                if role == "user" and not notes:
                    notes.append(
                        f"A message was cut to its first {limit:,} characters ({TEXT_CHARS_ENV}); "
                        "the answer reads only that part."
                    )
            content.append({"type": "text", "text": text})
        chat.append({"role": role, "content": content or [{"type": "text", "text": ""}]})
    return chat, notes


def _parts(index: int, message) -> tuple[str, list[dict]]:
    """(role, parts) of one message, each part {"type": "text", "text": str} or {"type": "image", "image": source}."""
    where = f"Message {index + 1}"
    if not isinstance(message, Mapping) or "role" not in message or "content" not in message:
        raise InputError(f"{where} is not a {{'role': ..., 'content': ...}} dict. For example: {EXAMPLE_MESSAGE}")
    role = message["role"]
    if role not in ROLES:
        raise InputError(f"{where} has the role {role!r}; expected one of: {', '.join(ROLES)}")
    content = message["content"]
    content = [] if content is None else [content] if isinstance(content, str) else content
    if isinstance(content, (bytes, Mapping)) or not isinstance(content, Sequence):
        raise InputError(f"{where}'s content must be text or a list of parts; got {type(content).__name__}")
    parts = []
    for part in content:
        if isinstance(part, str):
            part = {"type": "text", "text": part}
        if not isinstance(part, Mapping):
            raise InputError(f"{where} has a part of type {type(part).__name__}; expected a dict with a 'type'")
        kind = part.get("type")
        if kind == "text":
            text = part.get("text")
            if not isinstance(text, str):
                raise InputError(f"{where} has a text part whose 'text' is {type(text).__name__}, not text")
            if text:
                parts.append({"type": "text", "text": text})
        elif kind == "image":
            if role != "user":
                raise InputError(f"{where} is the {role}'s and holds an image; only user messages hold images")
            if part.get("image") is None:
                raise InputError(
                    f"{where} has an image part without an image. Give it as {{'type': 'image', 'image': <a PIL "
                    "image, a file path or the file's bytes>}; URLs are not fetched."
                )
            parts.append({"type": "image", "image": part["image"]})
        else:
            raise InputError(
                f"{where} has a part of type {kind!r}; a chat takes 'text' and 'image' parts (images as "
                "{'type': 'image', 'image': <a PIL image, a file path or the file's bytes>}; URLs are not fetched)"
            )
    return role, parts


def render(processor, conversations, **processor_kwargs) -> dict[str, Any]:
    """The model's inputs for ``conversations`` (one, or a list), each ending in the assistant's turn to speak.
    Control tokens a message's text holds ("<image>", "<end_of_utterance>") are read as plain text: a user can
    neither end a turn nor claim an image slot with them."""
    return dict(
        processor.apply_chat_template(
            conversations,
            add_generation_prompt=True,
            tokenize=True,
            return_dict=True,
            return_tensors="pt",
            sanitize_control_tokens=True,
            processor_kwargs=processor_kwargs,
        )
    )


def _usable_image(source):
    if isinstance(source, str) and source.strip().lower().startswith(("http://", "https://", "data:")):
        raise InputError("Images are not fetched from URLs. Upload the image file instead.")
    return image_at_least(source, MIN_IMAGE_SIDE, "talk about")


def _conversation_id(conversation) -> str | None:
    if conversation is None:
        return None
    if isinstance(conversation, os.PathLike) or not isinstance(conversation, (str, int)):
        raise InputError(f"conversation must be an id (text); got {type(conversation).__name__}")
    conversation = str(conversation)
    if len(conversation) > MAX_CONVERSATION_ID:
        raise InputError(f"conversation ids are at most {MAX_CONVERSATION_ID} characters; got {len(conversation):,}")
    return conversation


def image_digest(image) -> str:
    """A digest of a PIL image's pixels (its mode and size included): two images read alike only if these match."""
    digest = hashlib.blake2b(f"{image.mode} {image.width}x{image.height}".encode(), digest_size=16)
    digest.update(image.tobytes())
    return digest.hexdigest()


def _token_id(tokenizer, token: str) -> int | None:
    found = tokenizer.convert_tokens_to_ids(token)
    return found if isinstance(found, int) and found != tokenizer.unk_token_id else None
