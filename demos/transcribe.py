"""Transcribe tab: speech in (microphone, one file or many), transcript, timed segments and subtitle files out."""

from __future__ import annotations

from pathlib import Path

import gradio as gr

import pipelines
from pipelines.core import budget
from pipelines.core.io import check_audio_bounds
from pipelines.speech import LANGUAGES, TranscribeOptions, Transcript, subtitles

from . import examples
from .common import (
    GPU,
    GPU_CONCURRENCY,
    DropdownInput,
    RadioInput,
    audio_input,
    model_choice,
    option_slider,
    request_dir,
    require,
    user_errors,
)

DEFAULTS = TranscribeOptions()
AUTO = "auto"  # the language choice that means "detect it"
LANGUAGE_CHOICES = [("Detect automatically", AUTO)] + [
    (f"{name.title()} ({code})", code) for code, name in sorted(LANGUAGES.items(), key=lambda i: i[1])
]
SEGMENT_HEADERS = ["start (s)", "end (s)", "text"]
WORDS_HEADER = "words (start s)"
FORMATS_LABEL = "WAV, FLAC, OGG, MP3, M4A or WebM"


@user_errors
def transcribe(
    audio: str | None,
    model: str | None = None,
    task: str = DEFAULTS.task,
    language: str = AUTO,
    beam_size: float = DEFAULTS.beam_size,
    vad: bool = DEFAULTS.vad,
    word_timestamps: bool = DEFAULTS.word_timestamps,
    initial_prompt: str = "",
    hotwords: str = "",
    progress=gr.Progress(),
):
    """One recording -> transcript, details, segment table, [.srt, .vtt, .txt]."""
    require(audio, "Record or upload some speech to transcribe")
    check_audio_bounds([audio])  # before the model loads
    transcriber, options = _prepare(
        model, task, language, beam_size, vad, word_timestamps, initial_prompt, hotwords, progress
    )
    deadline = budget.Deadline()  # model time: from when the model is loaded
    [result] = transcriber.run(
        [audio], options, deadline=deadline, progress=lambda done: progress(done, desc="Transcribing")
    )
    if result.stopped_at is not None and result.has_speech:
        gr.Warning(_stopped(result, deadline))
    if not result.has_speech and result.stopped_at is not None:
        raise gr.Error(_stopped(result, deadline), title="Time limit")
    if not result.has_speech:
        raise gr.Error(_no_speech(result), title="No speech")
    files = subtitles.write(result, request_dir("transcribe"), _stem(audio))
    return result.text, _details(result, deadline), _table([("", result)]), [str(path) for path in files]


@user_errors
def transcribe_files(
    files: list[str] | None,
    model: str | None = None,
    task: str = DEFAULTS.task,
    language: str = AUTO,
    beam_size: float = DEFAULTS.beam_size,
    vad: bool = DEFAULTS.vad,
    word_timestamps: bool = DEFAULTS.word_timestamps,
    initial_prompt: str = "",
    hotwords: str = "",
    progress=gr.Progress(),
):
    """Many recordings -> one result each: transcripts, a table of files, segment table with a file column, files.

    A file that cannot be used gets its message in the table; the others are still transcribed. Once the
    request's time is up (limits().request_seconds), the file being transcribed keeps what was done and no further
    file starts: each says so in the table.
    """
    if not files:
        raise gr.Error(f"Upload one or more recordings ({FORMATS_LABEL}) to transcribe", title="Missing input")
    check_audio_bounds(files)  # once, before any model loads: every file counts (headers, else decoded, bounded)
    transcriber, options = _prepare(
        model, task, language, beam_size, vad, word_timestamps, initial_prompt, hotwords, progress
    )
    deadline = budget.Deadline()  # model time: from when the model is loaded
    outcomes: list[tuple[str, Transcript | str]] = []  # (file name, transcript or what went wrong)
    stopped = False  # the time limit cut a transcript short or left a file out
    for index, path in enumerate(files):
        name = Path(path).name
        if index and deadline.expired():
            outcomes.append((name, budget.stopped_notice(index, len(files), "recordings", deadline)))
            stopped = True
            continue

        def report(done: float, i: int = index, n: str = name) -> None:
            progress((i + done) / len(files), desc=f"{n} ({i + 1} of {len(files)})")

        try:  # the bounds were checked above for all the files together
            [result] = transcriber.run([path], options, deadline=deadline, progress=report)
        except pipelines.InputError as error:
            outcomes.append((name, str(error)))
            continue
        stopped = stopped or result.stopped_at is not None
        if result.has_speech:
            outcomes.append((name, result))
        else:
            outcomes.append((name, _stopped(result, deadline) if result.stopped_at is not None else _no_speech(result)))
    if stopped:
        gr.Warning(f"Not everything was transcribed: {budget.limit_phrase(deadline.seconds)}. See the table.")
    return _many_outputs(outcomes, deadline, stopped)


def _prepare(model, task, language, beam_size, vad, word_timestamps, initial_prompt, hotwords, progress):
    """The loaded pipeline and the options the tab's controls ask for, checked against that model."""
    progress(0, desc="Loading the model")
    transcriber = pipelines.load("transcribe", model or None)
    options = {
        "task": task or DEFAULTS.task,
        "language": None if language in (None, "", AUTO) else language,
        "beam_size": int(beam_size),
        "vad": bool(vad),
        "word_timestamps": bool(word_timestamps),
        "initial_prompt": initial_prompt or "",
        "hotwords": hotwords or "",
    }
    return transcriber, transcriber.options(**options)  # a bad choice is refused before any audio is decoded


def _many_outputs(outcomes: list[tuple[str, Transcript | str]], deadline: budget.Deadline, stopped: bool = False):
    done = [(name, result) for name, result in outcomes if isinstance(result, Transcript)]
    if not done:  # the time limit may be why: each file's line says so
        problems = "\n".join(f"- {name}: {problem}" for name, problem in outcomes)
        title = "Time limit" if stopped else "Cannot use these files"
        raise gr.Error(f"None of the files could be transcribed:\n{problems}", title=title)
    directory, paths, stems = request_dir("transcribe"), [], set()
    for name, result in done:
        paths += subtitles.write(result, directory, _stem(name, stems))
    text = "\n\n".join(result.text for _, result in done)
    return text, _files_details(outcomes, deadline), _table(done), [str(path) for path in paths]


def _details(result: Transcript, deadline: budget.Deadline) -> str:
    language = f"{LANGUAGES.get(result.language, result.language).title()} ({result.language})"
    task = " · translated to English" if result.task == "translate" else ""
    stopped = f" · {_stopped(result, deadline)}" if result.stopped_at is not None else ""
    return (
        f"{result.duration:.1f} s of audio · {_count(result.segments, 'segment')} · language {language}, "
        f"probability {result.language_probability:.0%}{task} · model {result.model}{stopped}"
    )


def _stopped(result: Transcript, deadline: budget.Deadline) -> str:
    """What a transcript cut short by the time limit says: how far it got, the limit, what to do."""
    return (
        f"Stopped after {result.stopped_at:.1f} s of this {result.duration:.1f} s recording: "
        f"{budget.limit_phrase(deadline.seconds)}. Send the rest in another request (a shorter recording)."
    )


def _files_details(outcomes: list[tuple[str, Transcript | str]], deadline: budget.Deadline) -> str:
    rows = ["| file | length | language | result |", "|---|---|---|---|"]
    for name, result in outcomes:
        if isinstance(result, Transcript):
            stopped = f" · {_stopped(result, deadline)}" if result.stopped_at is not None else ""
            rows.append(
                f"| {name} | {result.duration:.1f} s | {result.language} ({result.language_probability:.0%}) "
                f"| {_count(result.segments, 'segment')} · model {result.model}{stopped} |"
            )
        else:
            rows.append(f"| {name} | | | {result.replace('|', '/')} |")
    return "\n".join(rows)


def _table(results: list[tuple[str, Transcript]]) -> dict:
    """Segment rows: (file,) start, end, text (, words); the file column only when there are several files."""
    many = len(results) > 1 or any(name for name, _ in results)
    words = any(segment.words for _, result in results for segment in result.segments)
    headers = ["file"] * many + SEGMENT_HEADERS + [WORDS_HEADER] * words
    rows = [
        [name] * many + [s.start, s.end, s.text] + [_timed_words(s)] * words
        for name, result in results
        for s in result.segments
    ]
    return {"headers": headers, "data": rows}


def _count(items, noun: str) -> str:
    return f"{len(items)} {noun}{'' if len(items) == 1 else 's'}"


def _timed_words(segment) -> str:
    return " ".join(f"{word.text.strip()} ({word.start:.2f})" for word in segment.words)


def _no_speech(result: Transcript) -> str:
    return (
        f"No speech was found in this {result.duration:.1f} s recording. "
        "Check the microphone or the file, and speak a little louder or longer."
    )


def _stem(path: str, taken: set[str] | None = None) -> str:
    """The upload's name without extension, made unique among ``taken`` (two files may share a stem)."""
    stem = Path(path).stem or "recording"
    if taken is not None:
        base, number = stem, 1
        while stem in taken:
            number += 1
            stem = f"{base}-{number}"
        taken.add(stem)
    return stem


def build() -> tuple[gr.Textbox, gr.Button]:
    """Lays out the tab; returns the transcript box and the 'search with it' button for app wiring."""
    with gr.Row():
        with gr.Column():
            with gr.Tabs():
                with gr.Tab("One recording", id="transcribe-one"):
                    audio = audio_input(label="Speech: record or upload", elem_id="transcribe-audio")
                    button = gr.Button("Transcribe", variant="primary")
                with gr.Tab("Several files", id="transcribe-many"):
                    uploads = gr.File(
                        file_count="multiple", label=f"Recordings ({FORMATS_LABEL})", elem_id="transcribe-files"
                    )
                    files_button = gr.Button("Transcribe all", variant="primary")
            options = _option_controls()
        with gr.Column():
            text = gr.Textbox(label="Transcript", interactive=False, lines=4, buttons=["copy"], elem_id="transcript")
            details = gr.Markdown(label="Details", elem_id="transcript-details")
            to_search = gr.Button("Search images by what was said")
            table = gr.Dataframe(
                headers=SEGMENT_HEADERS,
                label="Segments",
                interactive=False,
                wrap=True,
                max_height=320,
                elem_id="transcript-segments",
            )
            downloads = gr.File(
                label="Subtitles and text (.srt, .vtt, .txt)",
                file_count="multiple",
                interactive=False,
                elem_id="transcript-files",
            )
    gr.Examples(examples.speech(), inputs=audio, label="Examples (spoken by espeak-ng)")
    outputs = [text, details, table, downloads]
    gr.on(
        [button.click],
        transcribe,
        inputs=[audio, *options],
        outputs=outputs,
        api_name="transcribe",
        concurrency_id=GPU,
        concurrency_limit=GPU_CONCURRENCY,
    )
    gr.on(
        [files_button.click],
        transcribe_files,
        inputs=[uploads, *options],
        outputs=outputs,
        api_name="transcribe_files",
        concurrency_id=GPU,
        concurrency_limit=GPU_CONCURRENCY,
    )
    return text, to_search


def _option_controls() -> list[gr.components.Component]:
    """Model, task, language, beam size, VAD, word timestamps, prompt, hotwords: in the handlers' order."""
    with gr.Accordion("Options", open=False):
        model = model_choice("transcribe")
        with gr.Row():
            task = RadioInput(
                ["transcribe", "translate"],
                value=DEFAULTS.task,
                label="Task",
                info="translate: speech in any language to English text (multilingual models)",
            )
            language = DropdownInput(
                LANGUAGE_CHOICES, value=AUTO, label="Language", info="English-only models (.en) take auto or English"
            )
        beam_size = option_slider(TranscribeOptions, "beam_size", label="Beam size")
        with gr.Row():
            vad = gr.Checkbox(value=DEFAULTS.vad, label="Skip silence (voice activity detection)")
            words = gr.Checkbox(value=DEFAULTS.word_timestamps, label="Word timestamps")
        prompt = gr.Textbox("", label="Initial prompt", placeholder="Text the speech follows on from: names, spelling")
        hotwords = gr.Textbox("", label="Hotwords", placeholder="Words likely to be said, e.g. CTranslate2, Gradio")
    return [model, task, language, beam_size, vad, words, prompt, hotwords]
