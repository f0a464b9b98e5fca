"""How much the Ask pipeline's batching buys on CPU: batched pipeline vs a loop of single model calls, same run.

    python bench/bench_ask.py                 # 16 image-question pairs, 2 CPU threads, best of 2
    python bench/bench_ask.py --repeats 3 --only vilt

Models: full-size BLIP-VQA-base (ViT-B/16 at 384 px + BERT-base question encoder and answer decoder) and ViLT-B/32
architectures built from their configs with random weights, in memory (nothing is downloaded or saved). The toy
word-level tokenizer stands in for BERT's (it only sets the question lengths). transformers 5 has no
"visual-question-answering" pipeline task any more, so the reference is the plain model call, one pair at a time,
with the same settings as ours (BLIP: 5 beams, 5 answers returned; ViLT: logits of one pair), on the stock model as
transformers builds it (its eager attention): that loop is the goal's reference. For BLIP a second contender is our
pipeline on the stock model (its acceleration off, ``MM_ACCELERATIONS=off``): ours over it is the BLIP
acceleration's own row, which must show >= 1.2x for it to stay. ViLT runs the stock model (no acceleration). Each
contender runs on its own copy of the weights.

Pairs: the 8 example photos, 2 questions each (16 pairs; the Ask tab's "several questions about one image"), and
16 distinct toy scenes upscaled to 384 px with one question each (16 distinct images: batching alone).
Random weights rarely emit the end token, so both sides decode ``--answer-tokens`` tokens per answer (real answers
are one to three). Contenders run in turns and each row reports its best time; the speed-up's spread is the range
of the per-round ratios.

FLOP efficiency: the FLOPs torch's FlopCounterMode counts in one run of a contender (fused CPU attention counted
like the eager one), divided by its best time and by the best fp32 matmul rate (bench_search.matmul_rate) measured
between the contenders' runs. Ceiling: the loop's best time over the time our pipeline's FLOPs would take at that
matmul rate, i.e. the speed-up of a perfect pipeline doing our work at 100 %: where it is under the 1.5x goal, no
batching can reach the goal on this machine. Not run by CI; timings never belong in tests.
"""

from __future__ import annotations

import argparse
import copy
import os
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from statistics import median

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
from bench.bench_search import matmul_rate  # noqa: E402
from bench.report import Row, ratio_row  # noqa: E402

THREADS = 2  # CPU threads for every contender
STOCK_MODEL = "ours, stock model"  # our pipeline with its acceleration off
QUESTIONS = ("what is in the picture?", "what color is it?")
VQA_ANSWERS = 3129  # ViLT-B/32 VQAv2 answer set size
BLIP_VQA_VOCAB = 30524  # bert-base-uncased + BLIP's [DEC] and [ENC]


def pairs_photos() -> list:
    from demos import examples
    from pipelines.core.io import load_image

    photos = [load_image(path) for path in examples.photos()]
    return [(photo, question) for photo in photos for question in QUESTIONS]


def pairs_distinct(count: int = 16) -> list:
    import toyworld

    return [
        (toyworld.scene(toyworld.HELD_OUT_SEED + 50_000 + i, size=384).image, QUESTIONS[i % 2]) for i in range(count)
    ]


def toy_tokenizer(kind: str):
    import transformers

    path = ROOT / "assets/models/toy" / kind
    return getattr(transformers, "BlipProcessor" if kind == "blip-vqa" else "ViltProcessor").from_pretrained(path)


def blip_vqa_base():
    """BlipForQuestionAnswering of blip-vqa-base's size, random weights, and a 384 px processor."""
    from transformers import BlipConfig, BlipForQuestionAnswering, BlipImageProcessor, BlipProcessor

    toy = toy_tokenizer("blip-vqa").tokenizer
    text = {
        "vocab_size": BLIP_VQA_VOCAB,
        "bos_token_id": toy.bos_token_id,
        "sep_token_id": toy.sep_token_id,
        "eos_token_id": toy.sep_token_id,
        "pad_token_id": toy.pad_token_id,
    }
    config = BlipConfig(text_config=text, vision_config={"image_size": 384, "patch_size": 16})
    model = BlipForQuestionAnswering(config).eval()
    processor = BlipProcessor(image_processor=BlipImageProcessor(size={"height": 384, "width": 384}), tokenizer=toy)
    return model, processor


def vilt_b32():
    """ViltForQuestionAnswering of vilt-b32-finetuned-vqa's size, random weights, its default 384 px processor."""
    from transformers import ViltConfig, ViltForQuestionAnswering, ViltImageProcessor, ViltProcessor

    toy = toy_tokenizer("vilt").tokenizer
    labels = {i: f"answer {i}" for i in range(VQA_ANSWERS)}
    model = ViltForQuestionAnswering(ViltConfig(id2label=labels, label2id={v: k for k, v in labels.items()})).eval()
    return model, ViltProcessor(image_processor=ViltImageProcessor(), tokenizer=toy)


def timed(contenders: dict, repeats: int, rates: list[float]) -> dict[str, list[float]]:
    """Seconds of each run of each contender, in turns; the matmul rate (GFLOP/s) measured before each run."""
    times = {name: [] for name in contenders}
    for _ in range(repeats):
        for name, run in contenders.items():
            rates.append(matmul_rate(1.5))
            start = time.perf_counter()
            run()
            times[name].append(time.perf_counter() - start)
    return times


def counted_flops(run) -> float:
    """FLOPs (2 x multiply-adds) that torch's FlopCounterMode counts in ``run()``.

    FlopCounterMode has no formula for the fused CPU attention kernel; it gets the eager attention's count.
    """
    import torch
    from torch.utils.flop_counter import FlopCounterMode, sdpa_flop_count

    def fused_attention(query, key, value, *args, **kwargs):
        return sdpa_flop_count(query, key, value)

    mapping = {torch.ops.aten._scaled_dot_product_flash_attention_for_cpu: fused_attention}
    with FlopCounterMode(display=False, custom_mapping=mapping) as counter:
        run()
    return float(counter.get_total_flops())


def main(argv=None) -> list[Row]:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeats", type=int, default=2, help="runs per contender (the best one counts)")
    parser.add_argument("--answer-tokens", type=int, default=3, help="tokens decoded per BLIP answer")
    parser.add_argument("--only", choices=("blip", "vilt"), help="time one family only")
    args = parser.parse_args(argv)
    from pipelines.core import runtime

    runtime.tune_allocator()  # as the app does: forward passes reuse freed memory (both contenders gain alike)

    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    import torch

    torch.set_num_threads(THREADS)
    from pipelines import fast
    from pipelines.core.registry import ModelSpec
    from pipelines.vqa.blip import BlipVqa
    from pipelines.vqa.vilt import ViltVqa

    cpu, fp32 = torch.device("cpu"), torch.float32
    beams = top_k = 5
    rows = []
    families = (("BLIP-VQA-base", blip_vqa_base, BlipVqa), ("ViLT-B/32", vilt_b32, ViltVqa))
    for family, build, pipeline_class in families:
        if args.only and not family.lower().startswith(args.only):
            continue
        print(f"building {family} (random weights) ...", flush=True)
        model, processor = build()
        spec = ModelSpec("ask", f"{family} (random)", "bench", "memory")
        ours = pipeline_class(spec, cpu, fp32, copy.deepcopy(model), processor)
        accelerated = bool(ours.accelerations)
        os.environ[fast.SWITCH] = "off"
        ours_stock = pipeline_class(spec, cpu, fp32, copy.deepcopy(model), processor) if accelerated else None
        del os.environ[fast.SWITCH]

        def single(image, question, model, processor=processor, family=family):
            inputs = processor(images=image, text=question, return_tensors="pt")
            with torch.inference_mode():
                if family.startswith("BLIP"):
                    return model.generate(
                        **inputs,
                        num_beams=beams,
                        num_return_sequences=top_k,
                        length_penalty=0.0,
                        max_new_tokens=args.answer_tokens,
                        min_new_tokens=args.answer_tokens,
                    )
                return model(**inputs).logits

        if family.startswith("BLIP"):  # both sides decode the same number of tokens (see the docstring)
            for decoder in (model.text_decoder, ours_stock.model.text_decoder, ours.model.text_decoder):
                decoder.generation_config.min_new_tokens = args.answer_tokens
        options = {"top_k": top_k, "num_beams": beams, "max_new_tokens": args.answer_tokens}
        for workload, pairs in (("8 photos x 2 questions", pairs_photos()), ("16 distinct scenes", pairs_distinct())):
            contenders = {
                "loop": lambda: [single(image, question, model) for image, question in pairs],
                "ours": lambda: ours(pairs, **options),
            }
            if accelerated:
                contenders[STOCK_MODEL] = lambda: ours_stock(pairs, **options)
            rates: list[float] = []
            times = timed(contenders, args.repeats, rates)
            rates.append(matmul_rate(1.5))
            with torch.inference_mode():
                flops = {name: counted_flops(run) for name, run in contenders.items()}
            rows.append(Measured(family, workload, len(pairs), times, flops, max(rates) * 1e9))
            stock_model = f"ours on the stock model {min(times[STOCK_MODEL]):.1f} s, " if accelerated else ""
            print(
                f"  {workload}: loop {min(times['loop']):.1f} s, {stock_model}batched {min(times['ours']):.1f} s, "
                f"matmul {max(rates):.0f} GFLOP/s",
                flush=True,
            )

    print(
        f"\nAsk: batched pipeline vs a loop of single model calls ({THREADS} CPU threads, best of {args.repeats};"
        f" load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores; goal >= 1.5x)"
    )
    print(
        "FLOP eff.: counted FLOPs / best time / best fp32 matmul rate of the run; ceiling: loop time / time of "
        "our FLOPs at that rate\n"
    )
    print(
        "| model | pairs | loop s (best, median) | ours on the stock model s | batched s (best, median) "
        "| speed-up (per-round range) | acceleration: vs ours on the stock model | GFLOP loop / ours "
        "| FLOP eff. loop / ours | ceiling |"
    )
    print("|---|---|---|---|---|---|---|---|---|---|")
    for m in rows:
        spread = [a / b for a, b in zip(m.times["loop"], m.times["ours"])]
        accelerated = STOCK_MODEL in m.times
        stock_time = f"{m.best(STOCK_MODEL):.1f}" if accelerated else "–"
        acceleration = f"{m.speedup(STOCK_MODEL):.2f}x" if accelerated else "– (stock model)"
        print(
            f"| {m.family} | {m.workload} ({m.count}) | {m.best('loop'):.1f}, {median(m.times['loop']):.1f} "
            f"| {stock_time} | {m.best('ours'):.1f}, {median(m.times['ours']):.1f} "
            f"| {m.speedup():.2f}x ({min(spread):.2f}-{max(spread):.2f}) | {acceleration} "
            f"| {m.flops['loop'] / 1e9:.0f} / {m.flops['ours'] / 1e9:.0f} | {m.efficiency('loop'):.0%} / "
            f"{m.efficiency('ours'):.0%} | {m.ceiling:.2f}x |"
        )
    result = []
    for m in rows:
        name = f"ask: {m.family}, {m.workload}"
        result += [
            ratio_row(
                f"{name}: loop of single calls / batched",
                m.best("loop"),
                m.best("ours"),
                "s",
                1.5,
                note="the stock model, transformers' attention",
            ),
            *(
                [
                    ratio_row(
                        f"{name}: BLIP acceleration, ours on the stock model / ours",
                        m.best(STOCK_MODEL),
                        m.best("ours"),
                        "s",
                        1.2,
                        note="the same pipeline with the acceleration off",
                    )
                ]
                if STOCK_MODEL in m.times
                else []
            ),
            Row(
                f"{name}: FLOP efficiency of the batched pipeline vs the fp32 matmul rate (loop: "
                f"{m.efficiency('loop'):.0%})",
                100 * m.efficiency("ours"),
                None,
                "%",
                None,
            ),
            Row(
                f"{name}: ceiling, loop time / our FLOPs at the matmul rate",
                m.ceiling,
                None,
                "x",
                None,
                note="the speed-up a perfect pipeline doing our work at 100 % of the matmul rate would reach",
            ),
        ]
    return result


@dataclass
class Measured:
    family: str
    workload: str
    count: int  # image-question pairs
    times: dict[str, list[float]]  # seconds per run, by contender
    flops: dict[str, float]  # counted in one run, by contender
    rate: float  # best fp32 matmul FLOP/s of the run

    def best(self, name: str) -> float:
        return min(self.times[name])

    def efficiency(self, name: str) -> float:
        return self.flops[name] / self.best(name) / self.rate

    def speedup(self, reference: str = "loop") -> float:
        return self.best(reference) / self.best("ours")

    @property
    def ceiling(self) -> float:
        return self.best("loop") / (self.flops["ours"] / self.rate)


if __name__ == "__main__":
    main()
