"""How the Chat pipeline's streaming, follow-up cache and concurrent chats compare with the plain transformers code a
user would write, on CPU, measured side by side in one run.

    python bench/bench_chat.py                  # full-size SmolVLM2-256M, 48 new tokens, 2 CPU threads, 3 repeats
    python bench/bench_chat.py --tiny --repeats 2 --tokens 16     # the Hub look-alike's shrunk repo (seconds)

The model: SmolVLM2-256M-Video-Instruct at full size (SigLIP-style vision tower 768 wide, 12 layers, 12 heads, 512 px
images in 16 px patches; a 30-layer decoder 576 wide, 9 heads, 3 key/value heads, 1536 intermediate, a 49,280-token
vocabulary; pixel shuffle 4, so 64 tokens an image; image token 49190), built from its config with random weights
and written, with the tokenizer and processor files of tests/hublike/repos.py (the real special token ids, the Hub's
chat template and generation config), into a temporary directory as a Hub snapshot holds them. Nothing is
downloaded, and the 1 GB checkpoint is deleted at the end. Ours is that directory loaded through
``pipelines.load("chat", <directory>)`` (the app's loader and ``SmolVlmChat.generate``, streamed); the reference is
what a user would write: ``AutoProcessor`` + ``SmolVLMForConditionalGeneration.from_pretrained`` on the same
directory (its own copy of the weights), ``apply_chat_template`` and ``model.generate`` with the default cache, one
request at a time, not streamed, the answer decoded. The reference runs in a worker thread, as a server's handler
does and as our pipeline's ``generate`` does: on a 2-core machine shared with other busy processes, torch's
OpenMP team on the *main* thread waits for its second thread at every small operation and decoding there was
10-20x slower (same model, same process, a worker thread: fast), which would measure the machine, not the code.

Random weights would stop anywhere and say nothing readable, so on both sides the output layer is restricted to
word tokens ("Ġ" + lower-case letters: every other row of lm_head is zeroed, the same rows on both copies): the
answers are streams of words, as real answers are, and every answer is forced to exactly ``--tokens`` new tokens
(min = max, greedy) on both sides. Images are read as one tile each on both sides (``do_image_splitting=False``,
the registry's default for this family).

Rows (medians over ``--repeats``; the contenders run in turns, the order flipped each repeat):
1. streaming overhead: our streamed answer's wall time (from the ``generate`` call to the last piece) over the
   reference's (processor + generate + decode) for the same image, question and token count; goal <= 1.05x.
2. follow-up: the time to the first streamed piece of a second turn on the same image (same conversation id:
   the KV cache and the encoded image are reused) over the first turn's; goal <= 0.5x. transformers 5's
   TextIteratorStreamer releases letters at once, so the first piece (a word) comes with the first new token.
3. 4 concurrent chats: 4 threads through our pipeline at once (4 different photos and questions, a conversation
   each), their total new tokens per second, over four sequential reference runs of the same requests; goal >=
   1.5x. Our pipeline decodes fresh turns that reach the model within a short window as one left-padded
   ``generate`` (pipelines/chat/batching.py); the groups it formed are printed. "Ours, one at a time" is also
   timed so the concurrency gain can be told apart from the pipeline's own overhead, and so is the stock model's
   batched ``generate`` of the same 4 requests in one call (left-padded): what batching gives with stock code.
Also reported: time to first piece, tokens/s, the conversation's KV cache size and the process's peak resident
memory (sampled every 20 ms) in each phase. Not run by CI; timings never belong in tests.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from statistics import median

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
from bench.report import Row, ratio_row  # noqa: E402

THREADS = 2  # CPU threads for every contender
HUB_ID = "HuggingFaceTB/SmolVLM2-256M-Video-Instruct"
CONCURRENT = 4  # chats at once
QUESTIONS = (
    "Describe this image in a few sentences.",
    "How many people can you see?",
    "What is written on the sign?",
    "What colour is the largest object?",
)
FOLLOW_UP = "And what is on the left side of it?"


# --- the checkpoint ---------------------------------------------------------------------------------------------


def full_size_files(directory: Path, seed: int = 0) -> Path:
    """SmolVLM2-256M-Video-Instruct at full size with random weights, written into ``directory`` as its Hub repo
    holds it (Hub-form config.json, model.safetensors in float32, the tokenizer / processor / template files)."""
    import torch
    from safetensors.torch import save_file
    from transformers import SmolVLMConfig, SmolVLMForConditionalGeneration

    from tests.hublike import repos

    real = repos._SMOLVLM_REAL[HUB_ID]
    image = real["vision"]["image_size"]
    config = repos._smolvlm_config(HUB_ID)  # the Hub's keys, shrunk sizes: put the real ones back
    config["text_config"].update(real["text"])
    config["vision_config"].update(real["vision"], max_image_size={"longest_edge": image})
    config["vision_config"]["size"] = {"longest_edge": real["size"]}
    files = repos._smolvlm_text_files(HUB_ID)  # tokenizer, template, generation config: the real ids
    preprocessor = json.loads(files["preprocessor_config.json"])
    preprocessor["max_image_size"] = {"longest_edge": image}
    preprocessor["size"] = {"longest_edge": real["size"]}
    preprocessor["video_sampling"]["video_size"] = {"longest_edge": image}
    files["preprocessor_config.json"] = repos._json(preprocessor)
    seq_len = (image // real["vision"]["patch_size"]) ** 2 // real["scale_factor"] ** 2
    files["processor_config.json"] = repos._json({"image_seq_len": seq_len, "processor_class": "SmolVLMProcessor"})
    files["config.json"] = repos._json(config)
    repos.write_files(directory, files)
    torch.manual_seed(seed)
    model = SmolVLMForConditionalGeneration(SmolVLMConfig.from_dict(config)).eval()
    state = {name: tensor.float().contiguous() for name, tensor in model.state_dict().items()}
    save_file(state, str(directory / "model.safetensors"), metadata={"format": "pt"})
    del model, state
    return directory


def tiny_files(directory: Path) -> Path:
    """The Hub look-alike's shrunk SmolVLM2-256M repo (4 tokens an image): for trying the script out."""
    from tests.hublike import repos

    files = {name: data for name, data in repos.repo_files(HUB_ID).items() if not name.startswith("onnx/")}
    return repos.write_files(directory, files)


def words_only(model, tokenizer) -> int:
    """Zero every lm_head row but those of word tokens ("Ġ" + lower-case letters), so greedy answers are words;
    returns how many rows are left."""
    import torch

    vocab = tokenizer.get_vocab()
    keep = torch.zeros(model.lm_head.weight.shape[0], dtype=torch.bool)
    ids = [i for token, i in vocab.items() if re.fullmatch(r"Ġ[a-z]{2,}", token) and i < keep.numel()]
    keep[ids] = True
    with torch.no_grad():
        model.lm_head.weight[~keep] = 0
    return len(ids)


# --- measuring ----------------------------------------------------------------------------------------------------


def rss() -> int:
    """The process's resident memory, bytes."""
    with open("/proc/self/statm") as statm:
        return int(statm.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


@dataclass
class Peak:
    """Peak resident memory per phase, sampled every 20 ms."""

    bytes: dict[str, int] = field(default_factory=dict)
    added: dict[str, int] = field(default_factory=dict)  # over the resident memory when the phase started

    @contextmanager
    def phase(self, name: str):
        done, start = threading.Event(), rss()
        top = [start]

        def sample():
            while not done.wait(0.02):
                top[0] = max(top[0], rss())

        sampler = threading.Thread(target=sample, daemon=True)
        sampler.start()
        try:
            yield
        finally:
            done.set()
            sampler.join()
            top[0] = max(top[0], rss())
            self.bytes[name] = max(self.bytes.get(name, 0), top[0])
            self.added[name] = max(self.added.get(name, 0), top[0] - start)


def user_message(image, question: str) -> list[dict]:
    return [{"role": "user", "content": [{"type": "image", "image": image}, {"type": "text", "text": question}]}]


class Reference:
    """What a user would write: the processor, ``model.generate`` with the default cache, the answer decoded."""

    def __init__(self, directory: Path, tokens: int):
        import torch
        from transformers import AutoProcessor, SmolVLMForConditionalGeneration

        self.torch, self.tokens = torch, tokens
        self.processor = AutoProcessor.from_pretrained(directory)
        self.model = SmolVLMForConditionalGeneration.from_pretrained(directory, dtype=torch.float32).eval()

    def answer(self, messages) -> tuple[str, int]:
        """(the answer, its new tokens), computed in a worker thread (see the module's docstring)."""
        return in_worker(self._answer, messages)

    def answers(self, requests) -> int:
        """New tokens of ``requests`` answered one after another, in one worker thread."""
        return in_worker(lambda: sum(self._answer(messages)[1] for messages in requests))

    def batched(self, requests) -> int:
        """New tokens of ``requests`` answered by one batched ``generate`` (left-padded), in a worker thread: what
        batching the decoding steps of concurrent requests could give, with stock transformers."""

        def run():
            self.processor.tokenizer.padding_side = "left"
            inputs = self.processor.apply_chat_template(
                list(requests),
                add_generation_prompt=True,
                tokenize=True,
                return_dict=True,
                return_tensors="pt",
                processor_kwargs={"do_image_splitting": False, "padding": True},
            )
            with self.torch.inference_mode():
                out = self.model.generate(
                    **inputs, max_new_tokens=self.tokens, min_new_tokens=self.tokens, do_sample=False
                )
            new = out[:, inputs["input_ids"].shape[1] :]
            self.processor.batch_decode(new, skip_special_tokens=True)
            return int(new.numel())

        return in_worker(run)

    def _answer(self, messages) -> tuple[str, int]:
        inputs = self.processor.apply_chat_template(
            messages,
            add_generation_prompt=True,
            tokenize=True,
            return_dict=True,
            return_tensors="pt",
            processor_kwargs={"do_image_splitting": False},
        )
        with self.torch.inference_mode():
            out = self.model.generate(**inputs, max_new_tokens=self.tokens, min_new_tokens=self.tokens, do_sample=False)
        new = out[0, inputs["input_ids"].shape[1] :]
        return self.processor.decode(new, skip_special_tokens=True), int(new.numel())


def in_worker(function, *args):
    """``function(*args)`` run in a thread of its own, as a server's worker (and our pipeline's generate) runs."""
    outcome = {}

    def run():
        try:
            outcome["value"] = function(*args)
        except BaseException as error:  # noqa: BLE001 - raised below
            outcome["error"] = error

    thread = threading.Thread(target=run)
    thread.start()
    thread.join()
    if "error" in outcome:
        raise outcome["error"]
    return outcome["value"]


@dataclass
class Streamed:
    wall: float  # seconds from the generate call to the last piece
    first: float  # seconds from the generate call to the first piece
    turn: object  # ChatTurn


def stream(chat, messages, tokens: int, conversation: str) -> Streamed:
    start = time.perf_counter()
    reply = chat.generate(messages, max_new_tokens=tokens, conversation=conversation)
    first = None
    for _ in reply:
        if first is None:
            first = time.perf_counter() - start
    wall = time.perf_counter() - start
    return Streamed(wall, first if first is not None else wall, reply.turn)


def check_tokens(name: str, got: int, tokens: int) -> None:
    if got != tokens:
        raise SystemExit(f"{name} generated {got} tokens, not {tokens}: the comparison would not be fair")


def main(argv=None) -> list[Row]:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeats", type=int, default=3, help="runs of each contender (medians reported)")
    parser.add_argument("--tokens", type=int, default=48, help="new tokens every answer is forced to")
    parser.add_argument("--tiny", action="store_true", help="the shrunk Hub look-alike repo instead of full size")
    parser.add_argument("--write", type=Path, help=argparse.SUPPRESS)  # the child that writes the checkpoint
    args = parser.parse_args(argv)
    if args.write:
        (tiny_files if args.tiny else full_size_files)(args.write)
        return []

    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    from pipelines.core import runtime

    runtime.tune_allocator()  # as the app does
    import torch

    torch.set_num_threads(THREADS)
    import pipelines
    from demos import examples
    from pipelines.core.io import load_image

    photos = [load_image(path) for path in examples.photos()[:CONCURRENT]]
    size = "shrunk (Hub look-alike)" if args.tiny else "full size"
    tmp = Path(tempfile.mkdtemp(prefix="bench-chat-"))
    peak = Peak()
    try:
        started = time.perf_counter()
        load = os.getloadavg()
        print(f"load average at the start: {load[0]:.1f} / {load[1]:.1f} / {load[2]:.1f} (1 / 5 / 15 min)", flush=True)
        print(f"building SmolVLM2-256M-Video-Instruct, {size}, random weights, in {tmp} ...", flush=True)
        # in a child process, so the memory of building the model is not counted below
        subprocess.run(
            [sys.executable, __file__, "--write", str(tmp), *(["--tiny"] if args.tiny else [])], cwd=ROOT, check=True
        )
        print(f"  written in {time.perf_counter() - started:.0f} s", flush=True)
        base = rss()
        with peak.phase("loading ours"):
            chat = pipelines.load("chat", str(tmp))
        loaded_ours = rss()
        with peak.phase("loading the reference"):
            reference = Reference(tmp, args.tokens)
        kept = words_only(chat.model, chat.processor.tokenizer)
        words_only(reference.model, reference.processor.tokenizer)
        chat.model.generation_config.min_new_tokens = args.tokens  # forced length on our side too
        parameters = sum(p.numel() for p in chat.model.parameters())
        print(
            f"  {parameters / 1e6:.0f}M parameters, {chat.image_seq_len} tokens an image, {kept:,} word tokens kept; "
            f"resident memory: {base / 2**20:.0f} MB before, +{(loaded_ours - base) / 2**20:.0f} MB ours, "
            f"+{(rss() - loaded_ours) / 2**20:.0f} MB the reference",
            flush=True,
        )
        warm = user_message(photos[0], "Hello")
        reference.answer(warm)  # first calls pay one-time costs (allocator, kernels): not timed
        stream(chat, warm, args.tokens, "warm-up")
        chat.forget()

        # 1 and 2: one chat, streamed vs the reference; then its follow-up
        messages = user_message(photos[0], QUESTIONS[0])
        ref_wall, ours, follow = [], [], []
        for repeat in range(args.repeats):

            def run_reference():
                with peak.phase("one reference answer"):
                    start = time.perf_counter()
                    text, new = reference.answer(messages)
                    ref_wall.append(time.perf_counter() - start)
                check_tokens("the reference", new, args.tokens)

            def run_ours(repeat=repeat):
                with peak.phase("one streamed answer (ours)"):
                    first = stream(chat, messages, args.tokens, f"chat-{repeat}")
                check_tokens("ours", first.turn.new_tokens, args.tokens)
                ours.append(first)
                second_messages = messages + [
                    {"role": "assistant", "content": first.turn.text},
                    {"role": "user", "content": FOLLOW_UP},
                ]
                with peak.phase("a follow-up (ours)"):
                    second = stream(chat, second_messages, args.tokens, f"chat-{repeat}")
                if not second.turn.reused_cache or second.turn.images_encoded:
                    raise SystemExit(f"the follow-up did not reuse the first turn's cache: {second.turn}")
                follow.append(second)

            for run in (run_reference, run_ours) if repeat % 2 == 0 else (run_ours, run_reference):
                run()
            print(
                f"  repeat {repeat + 1}: reference {ref_wall[-1]:.2f} s, ours {ours[-1].wall:.2f} s "
                f"(first piece {ours[-1].first:.2f} s), follow-up first piece {follow[-1].first:.3f} s "
                f"({follow[-1].turn.cached_tokens} of {follow[-1].turn.prompt_tokens} prompt tokens cached)",
                flush=True,
            )
        kv_bytes = max(entry.nbytes for entry in chat.conversations._entries.values())
        turn_one = ours[-1].turn
        chat.forget()

        # 3: four chats at once through ours vs four reference runs one after another (and ours one at a time)
        requests = [user_message(photos[i], QUESTIONS[i]) for i in range(CONCURRENT)]
        sequential, concurrent, ours_sequential, batched = [], [], [], []
        for repeat in range(args.repeats):

            def run_sequential():
                with peak.phase("4 reference answers, one at a time"):
                    start = time.perf_counter()
                    total = reference.answers(requests)
                    sequential.append((total, time.perf_counter() - start))

            def run_concurrent(repeat=repeat):
                results: list = [None] * CONCURRENT
                errors: list = []

                def one(i):
                    try:
                        results[i] = stream(chat, requests[i], args.tokens, f"at-once-{repeat}-{i}")
                    except BaseException as error:  # noqa: BLE001 - reported below
                        errors.append(error)

                threads = [threading.Thread(target=one, args=(i,)) for i in range(CONCURRENT)]
                chat.batcher.groups = []
                with peak.phase("4 chats at once (ours)"):
                    start = time.perf_counter()
                    for thread in threads:
                        thread.start()
                    for thread in threads:
                        thread.join()
                    wall = time.perf_counter() - start
                if errors:
                    raise errors[0]
                concurrent.append(
                    (sum(r.turn.new_tokens for r in results), wall, [r.first for r in results], chat.batcher.groups)
                )
                chat.forget()

            def run_ours_sequential(repeat=repeat):
                start = time.perf_counter()
                total = sum(
                    stream(chat, request, args.tokens, f"in-turn-{repeat}-{i}").turn.new_tokens
                    for i, request in enumerate(requests)
                )
                ours_sequential.append((total, time.perf_counter() - start))
                chat.forget()

            def run_batched():
                start = time.perf_counter()
                batched.append((reference.batched(requests), time.perf_counter() - start))

            order = (run_sequential, run_concurrent, run_ours_sequential, run_batched)
            for run in order if repeat % 2 == 0 else order[::-1]:
                run()
            print(
                f"  repeat {repeat + 1}: 4 reference runs {sequential[-1][1]:.2f} s, ours one at a time "
                f"{ours_sequential[-1][1]:.2f} s, 4 at once {concurrent[-1][1]:.2f} s, stock batched generate "
                f"{batched[-1][1]:.2f} s "
                f"(first pieces {', '.join(f'{t:.2f}' for t in concurrent[-1][2])} s; "
                f"ours decoded the 4 chats in groups of {concurrent[-1][3]})",
                flush=True,
            )
        for total, _ in sequential:
            check_tokens("4 reference runs", total, CONCURRENT * args.tokens)
        for total, *_ in concurrent + ours_sequential + batched:
            check_tokens("4 chats", total, CONCURRENT * args.tokens)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)

    tokens = args.tokens
    ref_s, ours_s = median(ref_wall), median(s.wall for s in ours)
    first_one, first_two = median(s.first for s in ours), median(s.first for s in follow)
    ref_rate = median(total / wall for total, wall in sequential)
    at_once_rate = median(total / wall for total, wall, *_ in concurrent)
    in_turn_rate = median(total / wall for total, wall in ours_sequential)
    batched_rate = median(total / wall for total, wall in batched)
    load = os.getloadavg()
    print(
        f"\nChat: SmolVLM2-256M {size}, random weights, {tokens} new tokens an answer (greedy, forced), "
        f"{THREADS} CPU threads, medians of {args.repeats}; {os.cpu_count()} cores, load average "
        f"{load[0]:.1f} / {load[1]:.1f} / {load[2]:.1f} (1 / 5 / 15 min) at the end\n"
    )
    print("| measure | ours | reference | ratio | goal |")
    print("|---|---:|---:|---:|---:|")
    paired = [s.wall / r for s, r in zip(ours, ref_wall)]  # each repeat's two runs were timed back to back
    print(
        f"| one answer, wall s (streamed vs not; per-repeat ratios {min(paired):.3f}-{max(paired):.3f}) "
        f"| {ours_s:.2f} | {ref_s:.2f} | {ours_s / ref_s:.3f}x | <= 1.05x |"
    )
    print(
        f"| time to first piece s, follow-up vs first turn | {first_two:.3f} | {first_one:.3f} "
        f"| {first_two / first_one:.3f}x | <= 0.5x |"
    )
    print(
        f"| tokens/s, 4 chats at once vs 4 reference runs one at a time | {at_once_rate:.1f} | {ref_rate:.1f} "
        f"| {at_once_rate / ref_rate:.2f}x | >= 1.5x |"
    )
    print(
        f"| tokens/s, 4 chats at once vs ours one at a time (what batching adds) | {at_once_rate:.1f} "
        f"| {in_turn_rate:.1f} | {at_once_rate / in_turn_rate:.2f}x | – |"
    )
    print(
        f"| tokens/s, stock batched generate of the 4 requests vs 4 reference runs (what batching could give) "
        f"| {batched_rate:.1f} | {ref_rate:.1f} | {batched_rate / ref_rate:.2f}x | – |"
    )
    print(f"| tokens/s of one answer (end to end) | {tokens / ours_s:.1f} | {tokens / ref_s:.1f} | | |")
    print(
        f"\nturn 1: {turn_one.prompt_tokens} prompt tokens; follow-up: {follow[-1].turn.prompt_tokens} prompt "
        f"tokens, {follow[-1].turn.cached_tokens} from the cache; a conversation's KV cache: {kv_bytes / 2**20:.1f} MB"
    )
    print("peak resident memory by phase (the process, both copies of the weights included):")
    for name, value in peak.bytes.items():
        print(f"  {name}: {value / 2**20:.0f} MB (+{peak.added[name] / 2**20:.0f} MB over its start)")
    what = f"SmolVLM2-256M {size}, random weights, {tokens} tokens"
    return [
        ratio_row(
            "chat: streamed answer / reference generate, wall time",
            ours_s,
            ref_s,
            "s",
            1.05,
            higher_is_better=False,
            note=f"{what}; per-repeat ratios {min(paired):.3f}-{max(paired):.3f}",
        ),
        ratio_row(
            "chat: follow-up on the same image / first turn, time to first piece",
            first_two,
            first_one,
            "s",
            0.5,
            higher_is_better=False,
            note=f"{follow[-1].turn.cached_tokens} of {follow[-1].turn.prompt_tokens} prompt tokens from the KV cache",
        ),
        ratio_row(
            f"chat: {CONCURRENT} chats at once / {CONCURRENT} reference runs one at a time, tokens/s",
            at_once_rate,
            ref_rate,
            "tokens/s",
            1.5,
            note="fresh turns that come together decoded as one batched generate (pipelines/chat/batching.py)",
        ),
        ratio_row(
            f"chat: {CONCURRENT} chats at once / ours one at a time, tokens/s",
            at_once_rate,
            in_turn_rate,
            "tokens/s",
            None,
            note="what batching (and threads) add on this CPU",
        ),
        ratio_row(
            f"chat: stock batched generate of the {CONCURRENT} requests / {CONCURRENT} reference runs, tokens/s",
            batched_rate,
            ref_rate,
            "tokens/s",
            None,
            note="what batching the decoding steps could give on this CPU",
        ),
        Row("chat: time to first piece, first turn", first_one, None, "s", None),
        Row("chat: time to first piece, follow-up", first_two, None, "s", None),
        Row("chat: tokens/s of one streamed answer, end to end", tokens / ours_s, None, "tokens/s", None),
        Row("chat: KV cache of one conversation", kv_bytes / 2**20, None, "MB", None),
        Row(
            "chat: peak resident memory, 4 chats at once",
            peak.bytes["4 chats at once (ours)"] / 2**20,
            None,
            "MB",
            None,
            note="the process, the reference's copy of the weights included",
        ),
    ]


if __name__ == "__main__":
    main()
