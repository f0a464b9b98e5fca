"""Transcribe tab: speech in (microphone, one file or many), transcript, timed segments and subtitle files out."""

from __future__ import annotations

import time
from pathlib import Path

import gradio as gr

import pipelines
from pipelines.core import budget, registry, runtime
from pipelines.core.io import check_audio_bounds, header_seconds
from pipelines.speech import LANGUAGES, TranscribeOptions, Transcript, subtitles
from pipelines.speech.results import ENGLISH_ONLY, GIVEN

from . import examples
from .common import (
    GPU,
    GPU_CONCURRENCY,
    DropdownInput,
    RadioInput,
    audio_input,
    model_choice,
    option_slider,
    percent,
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
# Segment table columns, in % of its width: times narrow (their headers on one line), text the rest, wrapped
WIDTHS = {"file": "18%", "start (s)": "18%", "end (s)": "15%", WORDS_HEADER: "26%"}
FORMATS_LABEL = "WAV, FLAC, OGG, MP3, M4A or WebM"
ABOUT = (
    "Speech to text with Whisper: record or upload speech (or several files) and get the transcript, "
    "its timed segments, and subtitle files (.srt, .vtt) to download."
)
MULTILINGUAL_HINT = "For other languages, use a multilingual model such as whisper-small."


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
    report = _Progress(progress, header_seconds(audio))
    [result] = transcriber.run([audio], options, deadline=deadline, progress=report)
    if result.stopped_at is not None and result.has_speech:
        gr.Warning(_stopped(result, deadline))
    if not result.has_speech and result.stopped_at is not None:
        raise gr.Error(_stopped(result, deadline), title="Time limit")
    if not result.has_speech:
        raise gr.Error(_no_speech(result), title="No speech")
    files = subtitles.write(result, request_dir("transcribe"), _stem(audio))
    details = _noted(_note(model, transcriber, [result]), _details(result, deadline))
    return result.text, details, _table([("", result)]), [str(path) for path in files]


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
        if index and deadline.stop_before_next_step():
            outcomes.append((name, budget.stopped_notice(index, len(files), "recordings", deadline)))
            stopped = True
            continue

        report = _Progress(progress, header_seconds(path), f"{name} ({index + 1} of {len(files)})", index, len(files))
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
    text, details, table, paths = _many_outputs(outcomes, deadline, stopped)
    return text, _noted(_note(model, transcriber, _done(outcomes)), details), table, paths


class _Progress:
    """The progress bar while recordings are transcribed: how far into the recording, of how long, and about how
    long is left at the pace so far, e.g. "Transcribing: 1:20 of 3:40, about 40 s left". ``index`` of ``count``
    recordings: the bar covers them all, one share each."""

    def __init__(self, progress, seconds: float | None, what: str = "Transcribing", index: int = 0, count: int = 1):
        self.progress, self.seconds, self.what, self.index, self.count = progress, seconds, what, index, count
        self.started = time.monotonic()
        progress(index / count, desc=f"{what}: {_clock(seconds)} of speech" if seconds else what)

    def __call__(self, done: float) -> None:
        where = f"{self.what}: {_clock(done * self.seconds)} of {_clock(self.seconds)}" if self.seconds else self.what
        if 0 < done < 1:  # the pace so far: seconds of work per share of the recording
            where += f", about {_duration((time.monotonic() - self.started) * (1 - done) / done)} left"
        self.progress((self.index + done) / self.count, desc=where)


def _clock(seconds: float) -> str:
    """1:05:03, 3:40 or 0:07."""
    minutes, secs = divmod(int(round(seconds)), 60)
    hours, minutes = divmod(minutes, 60)
    return f"{hours}:{minutes:02d}:{secs:02d}" if hours else f"{minutes}:{secs:02d}"


def _duration(seconds: float) -> str:
    """How long is left, as a person would say it: '5 s', '40 s', '2 min'."""
    if seconds < 60:
        return f"{max(1, round(seconds / 5) * 5 if seconds > 10 else round(seconds))} s"
    return f"{round(seconds / 60)} min"


def _loaded(model: str | None) -> bool:
    """Whether the model the box names (or what stands in for it) is loaded already: loading is then no stage."""
    settings = runtime.settings()
    try:
        spec = registry.resolve("transcribe", model or None, settings.profile, public=settings.public)
        where = registry.checkpoint_key(spec)
    except pipelines.PipelineError:
        return False  # loading will say what is wrong
    return any(key[:2] == ("transcribe", where) for key, _ in runtime.cache.items())


def _requested(model: str | None) -> str:
    return (model or "").strip() or pipelines.default_model("transcribe")


def _fallback(model: str | None, transcriber) -> str | None:
    """The name of the model the box asked for when another runs in its place (None: it runs itself)."""
    wanted = _requested(model)
    return wanted if transcriber.spec.name != wanted and ("transcribe", wanted) in pipelines.fallbacks else None


def _note(model: str | None, transcriber, results: list[Transcript]) -> str:
    """What the tab says next to the result when it is not what it seems: another model ran in place of the one
    asked for (and what that one cannot do), or the model doubted its own text. Empty when there is nothing."""
    lines = []
    if wanted := _fallback(model, transcriber):
        cannot = (
            " It knows only English: speech in other languages comes out wrong, and it cannot translate."
            if not transcriber.multilingual
            else ""
        )
        lines.append(
            f"⚠️ **{transcriber.spec.name} ran instead of {wanted}**, which could not be loaded on this server "
            f"(the System tab says why).{cannot}"
        )
    doubts = sorted({result.doubt for result in results if result.doubt})
    for doubt in doubts:
        hint = f" {MULTILINGUAL_HINT}" if not transcriber.multilingual else ""
        lines.append(f"⚠️ {doubt}.{hint}")
    return "\n\n".join(lines)


def _noted(note: str, details: str) -> str:
    """The details with the note on top: the first thing read next to the result (and what an API caller gets)."""
    return f"{note}\n\n{details}" if note else details


def _done(outcomes: list[tuple[str, Transcript | str]]) -> list[Transcript]:
    return [result for _, result in outcomes if isinstance(result, Transcript)]


def _prepare(model, task, language, beam_size, vad, word_timestamps, initial_prompt, hotwords, progress):
    """The loaded pipeline and the options the tab's controls ask for, checked against that model."""
    if not _loaded(model):
        progress(0, desc=f"Loading {_requested(model)} (its first use on this server)")
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
    try:  # a bad choice is refused before any audio is decoded
        return transcriber, transcriber.options(**options)
    except pipelines.InputError as error:
        if wanted := _fallback(model, transcriber):  # the visitor chose another model: say why this one refuses
            raise pipelines.InputError(
                f"{wanted} could not be loaded on this server, so {transcriber.spec.name} stands in for it. {error}"
            ) from None
        raise


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
    task = " · translated to English" if result.task == "translate" else ""
    stopped = f" · {_stopped(result, deadline)}" if result.stopped_at is not None else ""
    return (
        f"{result.duration:.1f} s of audio · {_count(result.segments, 'segment')} · {_language(result)}{task} "
        f"· model {result.model}{stopped}"
    )


def _language(result: Transcript, short: bool = False) -> str:
    """The language, and how it is known: detected (with the model's probability), chosen, or the only one the model
    knows (nothing measured: no probability is claimed)."""
    name = f"{LANGUAGES.get(result.language, result.language).title()}"
    if result.language_source == ENGLISH_ONLY:
        return "English (this model knows only English)" if not short else "English (only one known)"
    if result.language_source == GIVEN:
        return f"language {name} ({result.language}), as chosen" if not short else f"{result.language} (chosen)"
    chance = percent(result.language_probability)
    return (
        f"language {name} ({result.language}), detected with probability {chance}"
        if not short
        else (f"{result.language} ({chance})")
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
            stopped += " · ⚠️ doubtful: see the note above" if result.doubt else ""
            rows.append(
                f"| {name} | {result.duration:.1f} s | {_language(result, short=True)} "
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


def _fit_columns(table) -> gr.Dataframe:
    """Column widths for the segment table's columns (they vary: file, words): times narrow, text wide, so text
    wraps instead of running off to the right and no header wraps letter by letter. Widths go by position, and the
    columns are only known once a result is shown: a separate event, so the API's table stays plain data."""
    headers = [str(header) for header in getattr(table, "columns", SEGMENT_HEADERS)]
    return gr.Dataframe(column_widths=_widths(headers))


def _widths(headers: list[str]) -> list[str]:
    """Percentages of the table's width: the time columns a fixed share, file and words columns theirs, text the
    rest."""
    fixed = {header: WIDTHS[header] for header in headers if header in WIDTHS}
    rest = 100 - sum(int(width.rstrip("%")) for width in fixed.values())
    return [fixed.get(header, f"{rest}%") for header in headers]


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
    gr.Markdown(ABOUT, elem_classes="tab-about")
    with gr.Row():
        with gr.Column():
            with gr.Tabs():
                with gr.Tab("One recording", id="transcribe-one"):
                    audio = audio_input(label="Speech: record or upload", elem_id="transcribe-audio")
                    # within the first screen: right under the recording they fill, above the button and options
                    chips = gr.Examples(
                        examples.speech(),
                        inputs=audio,
                        label="Examples (spoken by espeak-ng): click one to transcribe it",
                        elem_id="transcribe-examples",
                    )
                    button = gr.Button("Transcribe", variant="primary")
                with gr.Tab("Several files", id="transcribe-many"):
                    uploads = gr.File(
                        file_count="multiple", label=f"Recordings ({FORMATS_LABEL})", elem_id="transcribe-files"
                    )
                    files_button = gr.Button("Transcribe all", variant="primary")
            options = _option_controls()
        with gr.Column():
            # right above the transcript: a note when the result is not what it seems, then what it is
            details = gr.Markdown(label="Details", elem_id="transcript-details")
            text = gr.Textbox(label="Transcript", interactive=False, lines=4, buttons=["copy"], elem_id="transcript")
            to_search = gr.Button("Search images by what was said")
            table = gr.Dataframe(
                headers=SEGMENT_HEADERS,
                label="Segments",
                interactive=False,
                wrap=True,
                column_widths=_widths(SEGMENT_HEADERS),
                max_height=320,
                elem_id="transcript-segments",
            )
            downloads = gr.File(
                label="Subtitles and text (.srt, .vtt, .txt)",
                file_count="multiple",
                interactive=False,
                elem_id="transcript-files",
            )
    outputs = [text, details, table, downloads]
    transcribing = {
        "fn": transcribe,
        "inputs": [audio, *options],
        "outputs": outputs,
        "concurrency_id": GPU,
        "concurrency_limit": GPU_CONCURRENCY,
    }
    gr.on([button.click], **transcribing, api_name="transcribe")
    examples.run_on_click(chips, transcribing)
    gr.on(
        [files_button.click],
        transcribe_files,
        inputs=[uploads, *options],
        outputs=outputs,
        api_name="transcribe_files",
        concurrency_id=GPU,
        concurrency_limit=GPU_CONCURRENCY,
    )
    table.change(_fit_columns, inputs=table, outputs=table, api_visibility="private", queue=False)
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
