"""How fast the Transcribe pipeline is on CPU, as ratios against references measured in the same run.

    python bench/bench_transcribe.py                 # ~60 s of espeak-ng speech, 2 CPU threads, best of 3
    python bench/bench_transcribe.py --repeats 5 --ten-minutes --word-errors

Rows, all on the same recording:
- raw faster-whisper: ``faster_whisper.WhisperModel(tiny.en embedded, int8).transcribe(path, vad_filter=True)``,
  the reference; our pipeline's overhead is measured against it (target: at most 5 %).
- the levers: the same raw call with float32 instead of int8, and without VAD; and faster-whisper's
  BatchedInferencePipeline (its own VAD windows, 8 at a time), which is what our faster-whisper backend builds on.
- ours: ``pipelines.load("transcribe", "whisper-tiny.en-embedded")([path])`` with its defaults (beam 5; target:
  real-time factor <= 0.06), and the same with ``beam_size=1`` (greedy) against the batched raw call at beam 1, so
  every ratio compares the same decoding settings.
- transformers: ``transformers.pipeline("automatic-speech-recognition")`` in fp32 on an untrained Whisper of tiny.en's
  size and architecture (built into bench/cache at run time), and our transformers backend on the same checkpoint.
  Random weights never stop talking, so that checkpoint may decode as many tokens per 30 s window as the real model
  needed (measured in this run): both sides do the real model's amount of decoding.
- ``--word-errors``: what the beam size buys. Our pipeline transcribes espeak-ng reading 27 sentences in five English
  voices (~7.5 minutes in all) at beam sizes 1, 2 and 5; the table counts word errors (substitutions, insertions and
  deletions against the text read, ignoring case and punctuation).

Contenders run in turns (A B C A B C ...) and each row reports its best time: the machine may be shared, and the
best of several runs is the least disturbed one. Timings never belong in tests; this script is not run by CI.
"""

from __future__ import annotations

import argparse
import math
import os
import re
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
from bench.report import Row, ratio_row  # noqa: E402

CACHE = ROOT / "bench" / "cache"  # gitignored
OURS = "ours, faster-whisper backend (defaults: beam 5)"
THREADS = 2  # CPU threads for every contender
SENTENCES = [  # ~60 s when spoken by espeak-ng at 150 words per minute
    "The museum opens at nine in the morning and closes at six in the evening.",
    "Our train to the mountains was delayed by heavy snow.",
    "Please bring a blanket and a flashlight to the camping trip.",
    "The chef added garlic, lemon and fresh parsley to the soup.",
    "A small boat drifted slowly across the quiet harbor.",
    "My grandmother keeps three cats and a very old piano.",
    "The library will be closed on Monday for repairs.",
    "Scientists measured the temperature of the ocean near the island.",
    "He painted the kitchen yellow and the bedroom green.",
    "The football match ended in a draw after extra time.",
    "She wrote a letter to her brother who lives in Canada.",
    "Farmers harvest apples and pears at the end of summer.",
    "The airport was crowded with families going on holiday.",
    "A thunderstorm knocked out the power in the whole village.",
    "The teacher asked the students to read the first chapter.",
    "We watched the sunset from the top of the hill.",
    "The doctor told him to drink more water and sleep early.",
]


def speech_file(seconds: float) -> Path:
    """espeak-ng reading SENTENCES (repeated to reach ``seconds``), as 16 kHz WAV; cached."""
    import numpy as np
    import soundfile
    import soxr

    path = CACHE / f"speech_{seconds:g}s.wav"
    if path.exists():
        return path
    CACHE.mkdir(parents=True, exist_ok=True)
    spoken = CACHE / "sentences.wav"
    subprocess.run(["espeak-ng", "-v", "en-us", "-s", "150", "-w", str(spoken), " ".join(SENTENCES)], check=True)
    samples, rate = soundfile.read(spoken, dtype="float32")
    samples = soxr.resample(samples, rate, 16000)
    repeats = math.ceil(seconds * 16000 / len(samples))
    soundfile.write(path, np.tile(samples, repeats)[: int(seconds * 16000)], 16000)
    return path


MORE_SENTENCES = [  # with SENTENCES, what each voice reads for --word-errors
    "The red bus stopped outside the old bakery on the corner.",
    "Twelve students passed the final exam with excellent marks.",
    "Please turn off the lights when you leave the office.",
    "The river flooded the fields after a week of rain.",
    "My neighbour plays the violin every Sunday afternoon.",
    "They bought fresh bread, cheese and olives at the market.",
    "The pilot announced that we would land in twenty minutes.",
    "Our dog chased a squirrel up the tall oak tree.",
    "The hospital opened a new wing for children last year.",
    "I forgot my umbrella on the train this morning.",
]
VOICES = [("en-us", 150), ("en-gb", 160), ("en-gb-scotland", 140), ("en-029", 170), ("en-gb-x-rp", 180)]  # wpm


def voice_file(voice: str, speed: int) -> Path:
    """espeak-ng reading SENTENCES and MORE_SENTENCES once in ``voice``, as 16 kHz WAV; cached."""
    import soundfile
    import soxr

    path = CACHE / f"voice_{voice}_{speed}.wav"
    if not path.exists():
        CACHE.mkdir(parents=True, exist_ok=True)
        spoken = CACHE / "voice.wav"
        subprocess.run(
            ["espeak-ng", "-v", voice, "-s", str(speed), "-w", str(spoken), " ".join(SENTENCES + MORE_SENTENCES)],
            check=True,
        )
        samples, rate = soundfile.read(spoken, dtype="float32")
        soundfile.write(path, soxr.resample(samples, rate, 16000), 16000)
    return path


def words(text: str) -> list[str]:
    return re.sub(r"[^a-z0-9' ]", " ", text.lower().replace("-", " ")).split()


def edit_distance(said: list[str], read: list[str]) -> int:
    """Word substitutions, insertions and deletions turning ``read`` into ``said``."""
    previous = list(range(len(read) + 1))
    for i, word in enumerate(said, 1):
        current = [i]
        for j, truth in enumerate(read, 1):
            current.append(min(previous[j] + 1, current[j - 1] + 1, previous[j - 1] + (word != truth)))
        previous = current
    return previous[-1]


def word_errors(transcriber) -> list[Row]:
    """Word errors of ``transcriber`` over every VOICES recording at beam sizes 1, 2 and 5."""
    read = words(" ".join(SENTENCES + MORE_SENTENCES))
    files = [voice_file(voice, speed) for voice, speed in VOICES]
    print(f"\nword errors over {len(files)} voices x {len(read)} words (espeak-ng, {', '.join(v for v, _ in VOICES)})")
    print("| beam size | word errors | word error rate |\n|---:|---:|---:|")
    rows = []
    for beams in (1, 2, 5):
        errors = sum(edit_distance(words(t.text), read) for t in transcriber(files, beam_size=beams))
        rate = errors / (len(read) * len(files))
        print(f"| {beams} | {errors} | {rate:.1%} |")
        rows.append(
            Row(
                f"transcribe: word error rate at beam {beams} (espeak-ng, {len(files)} voices)",
                rate * 100,
                None,
                "%",
                None,
                higher_is_better=False,
                note=f"{errors} of {len(read) * len(files)} words",
            )
        )
    return rows


def untrained_whisper(max_length: int) -> Path:
    from pipelines.speech import untrained

    path = CACHE / f"whisper-tiny.en-untrained-{max_length}"
    if not (path / "model.safetensors").exists():
        untrained.build(path, untrained.TINY_EN, max_length=max_length)
    return path


def best_of(contenders: dict, repeats: int) -> tuple[dict[str, list[float]], dict[str, list[float]]]:
    """Wall-clock and CPU seconds per run for each contender, running them in turns."""
    wall: dict[str, list[float]] = {name: [] for name in contenders}
    cpu: dict[str, list[float]] = {name: [] for name in contenders}
    for _ in range(repeats):
        for name, run in contenders.items():
            start, start_cpu = time.perf_counter(), time.process_time()
            run()
            wall[name].append(time.perf_counter() - start)
            cpu[name].append(time.process_time() - start_cpu)
    return wall, cpu


def main(argv=None) -> list[Row]:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=float, default=60.0, help="length of the speech recording")
    parser.add_argument("--repeats", type=int, default=3, help="runs per contender (the best one counts)")
    parser.add_argument("--ten-minutes", action="store_true", help="also time our pipeline on a 10-minute recording")
    parser.add_argument("--word-errors", action="store_true", help="also count word errors at beam sizes 1, 2, 5")
    args = parser.parse_args(argv)
    from pipelines.core import runtime

    runtime.tune_allocator()  # as the app does: forward passes reuse freed memory (both contenders gain alike)

    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    import torch

    torch.set_num_threads(THREADS)
    import soundfile
    import transformers
    from faster_whisper import BatchedInferencePipeline, WhisperModel

    import pipelines
    from pipelines.core.io import load_audio
    from pipelines.core.registry import local_path, resolve

    runtime.configure(profile="toy", device="cpu")
    path = speech_file(args.seconds)
    duration = soundfile.info(path).duration
    embedded = str(local_path(resolve("transcribe", "whisper-tiny.en-embedded", "toy")))
    int8 = WhisperModel(embedded, device="cpu", compute_type="int8", cpu_threads=THREADS)
    fp32 = WhisperModel(embedded, device="cpu", compute_type="float32", cpu_threads=THREADS)
    ours = pipelines.load("transcribe", "whisper-tiny.en-embedded")

    def raw(model, **kwargs):
        return lambda: list(model.transcribe(str(path), **kwargs)[0])

    # How much decoding the real model does per 30 s window: the untrained one may do as much.
    segments = raw(int8, vad_filter=True)()
    tokens_per_window = math.ceil(sum(len(s.tokens) for s in segments) / math.ceil(duration / 30)) + 4  # + prompt
    checkpoint = untrained_whisper(max_length=tokens_per_window)
    audio = load_audio(path)
    hf = transformers.pipeline(
        "automatic-speech-recognition", model=str(checkpoint), dtype=torch.float32, device="cpu", chunk_length_s=30
    )
    ours_hf = pipelines.load("transcribe", str(checkpoint))
    batched = BatchedInferencePipeline(int8)
    contenders = {
        "raw faster-whisper, int8 + VAD (reference)": raw(int8, vad_filter=True),
        "raw faster-whisper batched (8 windows), int8 + VAD": raw(batched, batch_size=8, without_timestamps=False),
        "raw faster-whisper batched, int8 + VAD, beam 1": raw(
            batched, batch_size=8, without_timestamps=False, beam_size=1
        ),
        "raw faster-whisper, float32 + VAD": raw(fp32, vad_filter=True),
        "raw faster-whisper, int8, no VAD": raw(int8, vad_filter=False),
        "ours, faster-whisper backend (defaults: beam 5)": lambda: ours([path]),
        "ours, faster-whisper backend, beam 1": lambda: ours([path], beam_size=1),
        "transformers.pipeline ASR, fp32, untrained tiny.en-size": lambda: hf(
            {"raw": audio, "sampling_rate": 16000}, return_timestamps=True
        ),
        "ours, transformers backend, same checkpoint": lambda: ours_hf([path]),
    }
    for run in contenders.values():  # warm up: first calls load kernels and the VAD model
        run()
    times, cpu = best_of(contenders, args.repeats)
    reference = min(times["raw faster-whisper, int8 + VAD (reference)"])
    load = os.getloadavg()[0]

    print(
        f"\n{duration:.1f} s of espeak-ng speech, {THREADS} CPU threads, best of {args.repeats}, load average "
        f"{load:.1f} on {os.cpu_count()} cores (untrained checkpoint decodes {tokens_per_window} tokens per window)"
    )
    print(
        "CPU s: this process's CPU time; on a shared machine, CPU s / threads / length estimates the RTF it "
        "would have alone.\n"
    )
    print(f"| {'contender':<58} | {'best s':>7} | {'median s':>8} | {'RTF':>6} | {'CPU s':>6} | {'x reference':>11} |")
    print(f"|{'-' * 60}|{'-' * 9}|{'-' * 10}|{'-' * 8}|{'-' * 8}|{'-' * 13}|")
    for name, runs in times.items():
        best = min(runs)
        print(
            f"| {name:<58} | {best:7.2f} | {statistics.median(runs):8.2f} | {best / duration:6.3f} "
            f"| {min(cpu[name]):6.2f} | {best / reference:11.2f} |"
        )
    greedy = min(times["ours, faster-whisper backend, beam 1"])
    greedy_raw = min(times["raw faster-whisper batched, int8 + VAD, beam 1"])
    overhead = min(times[OURS]) / reference - 1
    rtf = min(times[OURS]) / duration
    hf_ratio = min(times["transformers.pipeline ASR, fp32, untrained tiny.en-size"]) / min(times[OURS])
    ours_hf_ratio = min(times["ours, transformers backend, same checkpoint"]) / min(
        times["transformers.pipeline ASR, fp32, untrained tiny.en-size"]
    )
    print(f"\nour overhead over raw faster-whisper: {overhead:+.1%} (target <= +5%)")
    alone = min(cpu[OURS]) / THREADS / duration
    print(
        f"our real-time factor: {rtf:.3f} (target <= 0.06); from CPU time, if both threads had a core and scaled "
        f"perfectly: {alone:.3f}"
    )
    print(
        f"with beam 1 (greedy): real-time factor {greedy / duration:.3f}, {greedy / greedy_raw:.2f}x raw batched "
        "faster-whisper at beam 1"
    )
    print(f"transformers.pipeline fp32 / ours (faster-whisper): {hf_ratio:.2f}x")
    print(f"our transformers backend / transformers.pipeline, same checkpoint: {ours_hf_ratio:.2f}x")

    ours_s = min(times[OURS])
    hf_s = min(times["transformers.pipeline ASR, fp32, untrained tiny.en-size"])
    rows = [
        ratio_row(
            "transcribe: ours / raw faster-whisper (overhead)",
            ours_s,
            reference,
            "s",
            1.05,
            higher_is_better=False,
            note=f"{duration:.0f} s espeak-ng speech",
        ),
        ratio_row(
            "transcribe: ours / raw batched faster-whisper (beam 5)",
            ours_s,
            min(times["raw faster-whisper batched (8 windows), int8 + VAD"]),
            "s",
            1.05,
            higher_is_better=False,
        ),
        ratio_row(
            "transcribe: ours / raw batched faster-whisper (beam 1)",
            greedy,
            greedy_raw,
            "s",
            1.05,
            higher_is_better=False,
        ),
        Row(
            "transcribe: real-time factor, faster-whisper tiny.en int8 + VAD, default beam 5",
            rtf,
            None,
            "x",
            0.06,
            higher_is_better=False,
            note=f"raw faster-whisper alone: {reference / duration:.3f}",
        ),
        Row(
            "transcribe: real-time factor with beam 1 (greedy, the user's choice)",
            greedy / duration,
            None,
            "x",
            None,
            higher_is_better=False,
            note=f"raw batched at beam 1: {greedy_raw / duration:.3f}",
        ),
        ratio_row("transcribe: transformers.pipeline fp32 / ours", hf_s, ours_s, "s", None),
        ratio_row(
            "transcribe: our transformers backend / transformers.pipeline",
            min(times["ours, transformers backend, same checkpoint"]),
            hf_s,
            "s",
            None,
            higher_is_better=False,
        ),
    ]

    if args.ten_minutes:
        long_path = speech_file(600)
        start = time.perf_counter()
        [result] = ours([long_path])
        seconds = time.perf_counter() - start
        print(
            f"\n10-minute recording: {seconds:.1f} s (RTF {seconds / 600:.3f}), {len(result.segments)} segments, "
            f"last ends at {result.segments[-1].end:.1f} s"
        )
    if args.word_errors:
        rows += word_errors(ours)
    return rows


if __name__ == "__main__":
    main()
