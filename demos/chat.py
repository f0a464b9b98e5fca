"""Chat tab: a conversation about images with a small vision-language model (SmolVLM2). Images by upload, paste or
webcam; messages typed or spoken (transcribed by the Transcribe model, shown as the user's text); answers stream
token by token; Stop ends the generation itself, not only the page's wait for it.

A follow-up in the same chat reuses the chat's key/value cache (pipelines/chat: the images are encoded once). The
chat is ``<session>/<number>``: "New chat" (or a history that no longer matches the chat's images) starts the next
number and drops the last one's cache.
"""

from __future__ import annotations

import contextlib
import functools
import hashlib
import threading
import uuid
from pathlib import Path

import gradio as gr

import pipelines
from pipelines.chat import MAX_IMAGES_PER_CHAT, ChatOptions
from pipelines.core import budget, limits, registry, runtime
from pipelines.core.io import check_image
from pipelines.core.options import declarations

from . import examples
from .common import GPU, GPU_CONCURRENCY, ImageInput, model_choice, note_update, option_slider, user_errors
from .toy_note import toy_note

DESCRIPTION = (
    "Chat about images with a small vision-language model: add images (upload, paste or webcam), type or record "
    "a message, and follow up. Answers stream as they are written; *Stop* ends the generation at once."
)
PLACEHOLDER = "Type a message, add images (upload or paste) or record one with the microphone; Enter sends"
AUDIO_SUFFIXES = frozenset({".wav", ".flac", ".mp3", ".ogg", ".oga", ".opus", ".m4a", ".webm", ".aac"})
FILE_META = {"_type": "gradio.FileData"}  # what Gradio puts on a file it checked (an upload or a file it serves)
DIGEST_BYTES = 1 << 20  # bytes read at a time when fingerprinting an image file

# Examples per profile: (image file under assets/examples, message). The toy chat model knows toy scenes and was
# trained on these kinds of questions; the default profile's models talk about photos.
TOY_EXAMPLES = [
    ("toy/red_circle.png", "Describe this image."),
    ("toy/yellow_circle_and_blue_circle.png", "How many shapes are there?"),
    ("toy/yellow_circle_and_blue_circle.png", "Which side is the blue circle on?"),
    ("toy/blue_triangle_and_orange_triangle.png", "Describe this image."),
]
TOY_FOLLOW_UPS = ["What color is the shape?", "What shape is it?", "How many shapes are there?"]
PHOTO_EXAMPLES = [
    ("photos/cat.jpg", "Describe this image."),
    ("photos/coins.jpg", "How many coins are there?"),
    ("photos/astronaut.jpg", "What is this person wearing?"),
    ("photos/motorcycle.jpg", "What colour is the motorcycle?"),
]
PHOTO_FOLLOW_UPS = ["Describe it in one sentence.", "What colours do you see?", "What is in the background?"]

STOPPED_NOTE = "Stopped: you pressed Stop. The answer so far stays in the chat; the next message follows it."
STOPPED = {  # why an answer ended early (ChatTurn.stopped), as a note
    "user": STOPPED_NOTE,
    "length": "Stopped at the length limit: raise *Max new tokens* for a longer answer.",
    "deadline": "",  # the turn's own note says so, with the time limit
}


# ------------------------------------------------------------------------------------------------ stopping

_running: dict[str, set[threading.Event]] = {}  # session -> the stop events of its answers being generated
_running_lock = threading.Lock()


def _session(request: gr.Request | None) -> str:
    """Whose chats these are: the browser's (or gradio_client's) session; a request without one gets its own."""
    session = getattr(request, "session_hash", None)
    return str(session) if session else f"no-session-{uuid.uuid4().hex}"


@contextlib.contextmanager
def _stoppable(session: str):
    """A stop event for one answer, set by ``stop_chat`` from the same session (the Stop button)."""
    stop = threading.Event()
    with _running_lock:
        _running.setdefault(session, set()).add(stop)
    try:
        yield stop
    finally:
        with _running_lock:
            events = _running.get(session, set())
            events.discard(stop)
            if not events:
                _running.pop(session, None)


def _stop_session(session: str) -> int:
    """Set the stop events of ``session``'s answers being generated; how many there were."""
    with _running_lock:
        running = list(_running.get(session, ()))
    for stop in running:
        stop.set()
    return len(running)


@functools.partial(user_errors, gpu=False)  # runs no model
def stop_chat(request: gr.Request = None):
    """The Stop button: the answers this session is generating end within a token (the button also cancels the
    page's wait for them, and a message still waiting for its turn); the note says so."""
    if not _stop_session(_session(request)):
        return gr.skip()
    return note_update(STOPPED_NOTE)


@functools.partial(user_errors, gpu=False)  # runs no model
def new_chat(state: dict | None, request: gr.Request = None):
    """Stop any answer, empty the chat and drop its cache; the next message starts the next chat."""
    return _new_chat(state, request)


def _new_chat(state: dict | None, request: gr.Request | None):
    session = _session(request)
    _stop_session(session)
    state = state or _fresh()
    _forget(f"{session}/{state['chat']}")
    return [], {"chat": state["chat"] + 1, "images": []}, note_update("")


@functools.partial(user_errors, gpu=False)  # runs no model
def start_example(state: dict | None, image: str | None, text: str, request: gr.Request = None):
    """An example's click: a new chat, with the example's image and words in the message box."""
    return (*_new_chat(state, request), {"text": text or "", "files": [image] if image else []})


def _forget(conversation: str) -> None:
    """Drop ``conversation``'s key/value cache in every loaded chat model (none is loaded for it)."""
    for _, value in runtime.cache.items():
        spec = getattr(value, "spec", None)
        if spec is not None and spec.task == "chat" and hasattr(value, "forget"):
            value.forget(conversation)


def _fresh() -> dict:
    return {"chat": 0, "images": []}


# ------------------------------------------------------------------------------------------------ messages


def _file_path(item) -> str | None:
    """The server path of a file Gradio checked (an upload, or one it serves), or None for anything else."""
    if isinstance(item, dict) and isinstance(item.get("path"), str) and item.get("meta") == FILE_META:
        return item["path"]
    return None


def _is_audio(path: str) -> bool:
    return Path(path).suffix.lower() in AUDIO_SUFFIXES


def _parts(index: int, content) -> list[tuple[str, str]]:
    """(kind, value) parts of one history message's content: ("text", words) or ("image", path). Takes the Chatbot's
    format ({"type": "text"|"file", ...}) and the API's (a string, or parts: strings, {"type": "text", "text": ...},
    {"type": "image", "image": handle_file(...)})."""
    items = content if isinstance(content, list) else [content]
    parts = []
    for item in items:
        if item is None:
            continue
        if isinstance(item, str):
            parts.append(("text", item))
            continue
        if isinstance(item, dict) and item.get("type") == "text" and isinstance(item.get("text"), str):
            parts.append(("text", item["text"]))
            continue
        file = item.get("file", item.get("image", item)) if isinstance(item, dict) else None
        path = _file_path(file)
        if path is None:
            raise pipelines.InputError(
                f"Message {index + 1} of the history has a part the chat cannot read. Give text as a string and an "
                "image as {'type': 'image', 'image': handle_file('photo.jpg')} (gradio_client)."
            )
        if not _is_audio(path):  # a recording shown in the chat is not read again: its transcript is the text
            parts.append(("image", path))
    return parts


def _conversation(history) -> list[dict]:
    """The history as the chat pipeline reads it: {"role", "content": [image parts..., text parts...]}."""
    if history is None:
        return []
    if not isinstance(history, list):
        raise pipelines.InputError(
            f"The history must be a list of messages; got {type(history).__name__}. For example: "
            "[{'role': 'user', 'content': 'Describe this image.'}, {'role': 'assistant', 'content': 'A cat.'}]"
        )
    messages = []
    for index, message in enumerate(history):
        if not isinstance(message, dict) or message.get("role") not in ("user", "assistant", "system"):
            raise pipelines.InputError(
                f"Message {index + 1} of the history is not a {{'role': 'user' | 'assistant', 'content': ...}} dict."
            )
        parts = _parts(index, message.get("content"))
        if not parts:
            continue
        if messages and messages[-1]["role"] == message["role"]:  # the chat shows a turn's parts as messages
            messages[-1]["content"].extend(_content(parts))
        else:
            messages.append({"role": message["role"], "content": _content(parts)})
    return messages


def _content(parts: list[tuple[str, str]]) -> list[dict]:
    return [{"type": "image", "image": v} if k == "image" else {"type": "text", "text": v} for k, v in parts]


def _images(messages: list[dict]) -> list[str]:
    return [part["image"] for message in messages for part in message["content"] if part["type"] == "image"]


def _digest(path: str) -> str:
    """A fingerprint of an image file's bytes: the chat's cache holds its images' keys and values by position."""
    sha = hashlib.sha256()
    with open(path, "rb") as fp:
        while chunk := fp.read(DIGEST_BYTES):
            sha.update(chunk)
    return sha.hexdigest()[:32]


def _words(text: str | None) -> str:
    text = text or ""
    most = limits.limits().text_chars
    if len(text) > most:
        raise pipelines.InputError(
            f"The message is too long: {len(text):,} characters; a message holds at most {most:,} "
            f"({limits.TEXT_CHARS_ENV}). Shorten it and send it again."
        )
    return text.strip()


# ------------------------------------------------------------------------------------------------ handlers


def _prepare(text, files, history, state, model, request):
    """Everything a turn needs, checked before anything is shown: (the chat model, the conversation for the
    pipeline, the new message's text and image paths, the conversation id, the state after this turn, the
    deadline). Refuses a message without words or images, too many images, an unreadable image, and a model that
    is no chat model."""
    text = _words(text)
    files = [f for f in files or [] if f]
    audio = [f for f in files if _is_audio(f)]
    images = [f for f in files if not _is_audio(f)]
    if not text and not images and not audio:
        raise gr.Error(
            "The message is empty. Type a message, record one, or add an image (or pick an example).",
            title="Missing input",
            print_exception=False,
        )
    if len(audio) > 1:
        raise pipelines.InputError(f"{len(audio)} recordings were sent; send one spoken message at a time.")
    earlier = _conversation(history)
    shown = _images(earlier)
    if len(shown) + len(images) > MAX_IMAGES_PER_CHAT:  # before any file is read or model loaded
        raise pipelines.InputError(
            f"Too many images: this chat would hold {len(shown) + len(images)}; the limit is {MAX_IMAGES_PER_CHAT} "
            "images in one chat. Start a new chat for more images."
        )
    for image in images:
        check_image(image)  # a file that is no image is refused before the model loads
    chat = pipelines.load("chat", model or None)
    deadline = None
    if audio:
        transcriber = pipelines.load("transcribe")
        deadline = budget.Deadline()  # one time budget for the transcription and the answer, from when both loaded
        [transcript] = transcriber(audio, deadline=deadline)
        if not transcript.has_speech:
            raise gr.Error(
                f"No speech was found in this {transcript.duration:.1f} s recording. Say it again a little louder "
                "or longer, or type the message instead.",
                title="No speech",
                print_exception=False,
            )
        text = " ".join(part for part in (text, transcript.text.strip()) if part)
    session, state = _session(request), state or _fresh()
    digests = [_digest(path) for path in shown]
    number = state["chat"]
    if not earlier or digests != state["images"]:  # a new chat, or a history this chat's cache does not hold
        _forget(f"{session}/{number}")
        number += 1
    user = _content([("image", path) for path in images] + ([("text", text)] if text else []))
    state = {"chat": number, "images": digests + [_digest(path) for path in images]}
    return chat, [*earlier, {"role": "user", "content": user}], text, images, f"{session}/{number}", state, deadline


@contextlib.contextmanager
def _replying(chat, messages, conversation, options: dict, deadline, request):
    """The reply to ``messages``, generated while the block runs (bad input raises on entering). This session's
    Stop ends it, and so does leaving the block early (the page went away, Stop cancelled the event, the client
    cancelled its job): the generate thread stops within a token."""
    length = options["max_new_tokens"]  # a slider's number; None (over the API): the model's default
    with _stoppable(_session(request)) as stop:
        reply = chat.generate(
            messages,
            max_new_tokens=None if length is None else int(round(length)),
            do_sample=options["do_sample"],
            temperature=options["temperature"],
            top_p=options["top_p"],
            stop=stop,
            conversation=conversation,
            deadline=deadline if deadline is not None else limits.limits().request_seconds,
        )
        try:
            yield reply
        finally:
            reply.close()


def turn_note(turn, chat, images: list[str]) -> str:
    """What the turn did, under the chat: tokens, what came from the cache, why it stopped, the pipeline's notes,
    and the toy note when a toy model answered about a photo."""
    if turn is None:
        return ""
    cache = f"{turn.cached_tokens:,} read from this chat's cache" if turn.reused_cache else "none from a cache"
    encoded = {0: "no image encoded (all from the cache)", 1: "1 image encoded"}.get(
        turn.images_encoded, f"{turn.images_encoded} images encoded"
    )
    facts = f"{turn.new_tokens} new tokens · prompt {turn.prompt_tokens:,} tokens, {cache} · {encoded}"
    lines = [facts, STOPPED.get(turn.stopped, "") if turn.stopped else "", *turn.notes]
    notes = {toy_note(image, "chat", chat) for image in images}
    lines += sorted(note for note in notes if note)
    return "\n\n".join(line for line in lines if line)


def _options(max_new_tokens, do_sample, temperature, top_p) -> dict:
    return {"max_new_tokens": max_new_tokens, "do_sample": do_sample, "temperature": temperature, "top_p": top_p}


@user_errors
def send(
    message: dict | None,
    history: list | None,
    photo: str | None = None,
    state: dict | None = None,
    model: str | None = None,
    max_new_tokens: float = 32,
    do_sample: bool = False,
    temperature: float = ChatOptions().temperature,
    top_p: float = ChatOptions().top_p,
    request: gr.Request = None,
):
    """The tab's send: the message box (text, images, a recording) and the webcam photo -> the chat with the user's
    message and the answer streaming into it; the box emptied; the note on the turn at the end."""
    message = message or {}
    files = list(message.get("files") or []) + ([photo] if photo else [])
    chat, messages, text, images, conversation, state, deadline = _prepare(
        message.get("text"), files, history, state, model, request
    )
    shown = [*(history or []), {"role": "user", "content": [{"path": p} for p in images] + ([text] if text else [])}]
    options = _options(max_new_tokens, do_sample, temperature, top_p)
    with _replying(chat, messages, conversation, options, deadline, request) as reply:
        answer = ""
        emptied = {"text": "", "files": []}  # the box and the webcam photo: sent
        yield [*shown, {"role": "assistant", "content": ""}], emptied, None, state, note_update("")
        for piece in reply:
            answer += piece
            yield [*shown, {"role": "assistant", "content": answer}], gr.skip(), gr.skip(), gr.skip(), gr.skip()
    note = turn_note(reply.turn, chat, _images(messages))
    yield [*shown, {"role": "assistant", "content": answer}], gr.skip(), gr.skip(), gr.skip(), note_update(note)


@user_errors
def chat_api(
    message: str | None = "",
    images: list[str] | None = None,
    history: list | None = None,
    model: str | None = None,
    max_new_tokens: float = 32,
    do_sample: bool = False,
    temperature: float = ChatOptions().temperature,
    top_p: float = ChatOptions().top_p,
    state: dict | None = None,
    request: gr.Request = None,
):
    """/chat: the answer to ``message`` (with ``images``, files) after ``history`` (earlier messages, images as
    handle_file), streamed: each update is the answer so far. A follow-up whose history holds the earlier turns
    as they were reuses their cache."""
    chat, messages, _, _, conversation, state, deadline = _prepare(
        message, list(images or []), history, state, model, request
    )
    options = _options(max_new_tokens, do_sample, temperature, top_p)
    with _replying(chat, messages, conversation, options, deadline, request) as reply:
        answer = ""
        yield answer, state
        for piece in reply:
            answer += piece
            yield answer, gr.skip()


# ------------------------------------------------------------------------------------------------ layout


def _examples(name: str | None = None) -> tuple[list[list[str]], list[str]]:
    """([[image path, message], ...] that start a chat, follow-up messages) for the profile."""
    toy = examples.profile(name) == examples.TOY
    starts = [(examples.EXAMPLES / path, text) for path, text in (TOY_EXAMPLES if toy else PHOTO_EXAMPLES)]
    follow_ups = TOY_FOLLOW_UPS if toy else PHOTO_FOLLOW_UPS
    return [[str(path), text] for path, text in starts if path.is_file()], list(follow_ups)


def initial_max_new_tokens() -> int:
    """The profile's chat model's answer length (its registry default)."""
    spec = registry.resolve("chat", None, runtime.settings().profile)
    return int(registry.defaults(spec).get("max_new_tokens") or declarations(ChatOptions)["max_new_tokens"].high)


def build() -> None:
    gr.Markdown(DESCRIPTION, elem_id="chat-about")
    state = gr.State(_fresh())
    starts, follow_ups = _examples()
    with gr.Row():
        with gr.Column(scale=3):
            chatbot = gr.Chatbot(label="Chat", elem_id="chat-chatbot", height=340, feedback_options=None)
            box = gr.MultimodalTextbox(
                placeholder=PLACEHOLDER,
                sources=["upload", "microphone"],
                file_count="multiple",
                show_label=False,
                elem_id="chat-message",
            )
            note = gr.Markdown(visible=False, elem_id="chat-note")
            with gr.Row():
                stop = gr.Button("Stop", variant="stop", size="sm", elem_id="chat-stop")
                new = gr.Button("New chat", size="sm", elem_id="chat-new")
            follow_chips = gr.Examples(
                [[text] for text in follow_ups],
                inputs=box,
                label="Follow-ups: ask more about the chat's image",
                elem_id="chat-follow-ups",
            )
        with gr.Column(scale=2):
            example_image = ImageInput(type="filepath", label="Image", visible=False)
            example_text = gr.Textbox(label="Message", visible=False)
            start_chips = gr.Examples(
                starts,
                inputs=[example_image, example_text],
                label="Examples: click one to start a new chat with it",
                elem_id="chat-examples",
            )
            with gr.Accordion("Add a photo from the webcam", open=False):
                photo = ImageInput(type="filepath", sources=["webcam"], label="Photo", elem_id="chat-photo", height=180)
                gr.Markdown("The photo goes with your next message.")
            with gr.Accordion("Options", open=False, elem_id="chat-options"):
                model = model_choice("chat")
                max_new_tokens = option_slider(
                    ChatOptions, "max_new_tokens", label="Max new tokens", value=initial_max_new_tokens()
                )
                sampling = declarations(ChatOptions)
                do_sample = gr.Checkbox(False, label="Sample", info=sampling["do_sample"].help)
                temperature = option_slider(ChatOptions, "temperature", label="Temperature")
                top_p = option_slider(ChatOptions, "top_p", label="Top-p")
    # The API's own inputs and output (/chat): a text, files and a history instead of the page's chat.
    with gr.Group(visible=False):
        api_message = gr.Textbox(label="message")
        api_images = gr.File(file_count="multiple", label="images")
        api_history = gr.JSON(label="history")
        api_answer = gr.Textbox(label="answer")

    controls = [model, max_new_tokens, do_sample, temperature, top_p]
    page_only = {"api_visibility": "private", "queue": False}
    sending = {
        "fn": send,
        "inputs": [box, chatbot, photo, state, *controls],
        "outputs": [chatbot, box, photo, state, note],
        "concurrency_id": GPU,
        "concurrency_limit": GPU_CONCURRENCY,
        "show_progress": "minimal",
    }
    sent = box.submit(**sending, api_visibility="private")
    started = start_chips.load_input_event.success(
        start_example, inputs=[state, example_image, example_text], outputs=[chatbot, state, note, box], **page_only
    ).success(**sending, api_visibility="private")
    followed = examples.run_on_click(follow_chips, sending)
    for event in (sent, started, followed):  # a refusal leaves the chat and the message as they were, unmarked
        event.failure(lambda: (gr.skip(), gr.skip()), outputs=[chatbot, box], show_progress="hidden", **page_only)
    api = gr.on(
        [],
        chat_api,
        inputs=[api_message, api_images, api_history, *controls, state],
        outputs=[api_answer, state],
        api_name="chat",
        concurrency_id=GPU,
        concurrency_limit=GPU_CONCURRENCY,
    )
    running = [sent, started, followed, api]
    stop.click(stop_chat, outputs=note, api_name="chat_stop", queue=False, cancels=running)
    new.click(new_chat, inputs=state, outputs=[chatbot, state, note], cancels=running, **page_only)
    chatbot.clear(new_chat, inputs=state, outputs=[chatbot, state, note], cancels=running, **page_only)
