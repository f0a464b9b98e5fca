"""The BLIP acceleration on a CUDA GPU in fp16: does its guard let it on, does it agree with the stock model, and
does it earn its keep? One short run for a machine with a GPU (not CI, not a test):

    python bench/gpu_check.py                  # prints a report; --repeats N timed rounds (median counts)

1. The toy BLIP captioner and VQA model in fp16 on the GPU: the guard's verdict (its check batch compares every
   decoding step's logits with the stock model), then captions and answers for 24 toy scenes, accelerated vs the
   same pipeline on the stock model (``MM_ACCELERATIONS=off``): how many agree, and how many name the scene.
2. Full-size architectures with random weights in fp16 (BLIP base captioner: 16 images, 3 beams and 3 candidates,
   20 tokens forced; BLIP-VQA base: 8 images x 2 questions, 5 beams, 3 tokens forced): the accelerated pipeline
   vs the same pipeline on the stock model, timed in alternation after a warm-up, medians and the same-run ratio.
"""

from __future__ import annotations

import argparse
import copy
import os
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))


def both(build):
    """(accelerated, stock-model) pipelines from ``build()``, the second built with accelerations switched off."""
    from pipelines import fast

    accelerated = build()
    os.environ[fast.SWITCH] = "off"
    try:
        stock = build()
    finally:
        del os.environ[fast.SWITCH]
    return accelerated, stock


def timed(runs: dict, repeats: int) -> dict[str, list[float]]:
    import torch

    times = {name: [] for name in runs}
    for name, run in runs.items():  # warm-up: kernels chosen, memory allocated
        run()
    for _ in range(repeats):
        for name, run in runs.items():
            torch.cuda.synchronize()
            start = time.perf_counter()
            run()
            torch.cuda.synchronize()
            times[name].append(time.perf_counter() - start)
    return times


def toy_agreement(device, dtype) -> None:
    from transformers import BlipForConditionalGeneration, BlipForQuestionAnswering, BlipProcessor

    import toyworld
    from pipelines.caption.blip import BlipCaptioner
    from pipelines.core.registry import ModelSpec
    from pipelines.vqa.blip import BlipVqa

    scenes = toyworld.scenes(24, start_seed=toyworld.HELD_OUT_SEED + 5000)
    images = [s.image for s in scenes]
    for task, name, model_class, pipeline_class in (
        ("caption", "blip-caption", BlipForConditionalGeneration, BlipCaptioner),
        ("ask", "blip-vqa", BlipForQuestionAnswering, BlipVqa),
    ):
        path = ROOT / "assets/models/toy" / name
        processor = BlipProcessor.from_pretrained(path)

        def build():
            model = model_class.from_pretrained(path, dtype=dtype).to(device).eval()
            return pipeline_class(
                ModelSpec(task, f"toy {name}", "blip", str(path)), device, dtype, model, copy.deepcopy(processor)
            )

        ours, stock = both(build)
        print(f"toy {name}, {device.type} {str(dtype).removeprefix('torch.')}: {ours.accelerations[0]}")
        if task == "caption":
            a = [c.text for c in ours(images, num_beams=3, num_candidates=3)]
            b = [c.text for c in stock(images, num_beams=3, num_candidates=3)]
            right = sum(s.color in t and s.shape in t for s, t in zip(scenes, a))
        else:
            pairs = [(s.image, q) for s in scenes for q in ("what color is the shape?", "what shape is it?")]
            a = [x.text for x in ours(pairs)]
            b = [x.text for x in stock(pairs)]
            truth = [getattr(s, part) for s in scenes for part in ("color", "shape")]
            right = sum(t == x for t, x in zip(truth, a))
        same = sum(x == y for x, y in zip(a, b))
        print(f"  accelerated and stock agree on {same}/{len(a)}; accelerated right on {right}/{len(a)}")


def full_size(device, dtype, repeats: int) -> None:
    import toyworld
    from bench.bench_ask import blip_vqa_base, pairs_distinct
    from bench.bench_caption import blip_base, processor
    from pipelines.caption.blip import BlipCaptioner
    from pipelines.core.registry import ModelSpec
    from pipelines.vqa.blip import BlipVqa

    images = [toyworld.scene(toyworld.HELD_OUT_SEED + 60_000 + i, size=384).image for i in range(16)]
    weights, blip_processor = blip_base().to(dtype), processor()
    spec = ModelSpec("caption", "blip-base (random)", "blip", "memory")
    ours, stock = both(lambda: BlipCaptioner(spec, device, dtype, copy.deepcopy(weights).to(device), blip_processor))
    print(f"\nBLIP base captioner, {len(images)} images, 3 beams + 3 candidates, 20 tokens: {ours.accelerations[0]}")
    options = dict(num_beams=3, num_candidates=3, min_new_tokens=20, max_new_tokens=20)
    report(
        timed(
            {"accelerated": lambda: ours(images, **options), "stock model": lambda: stock(images, **options)}, repeats
        )
    )

    weights, vqa_processor = blip_vqa_base()
    weights = weights.to(dtype)
    spec = ModelSpec("ask", "blip-vqa-base (random)", "blip-vqa", "memory")
    ours, stock = both(lambda: BlipVqa(spec, device, dtype, copy.deepcopy(weights).to(device), vqa_processor))
    for pipeline in (ours, stock):
        pipeline.model.text_decoder.generation_config.min_new_tokens = 3
    pairs = [(image, q) for image in images[:8] for q in ("what is in the picture?", "what color is it?")]
    pairs += pairs_distinct(8)
    print(
        f"\nBLIP-VQA base, {len(pairs)} pairs (8 images x 2 questions + 8 distinct), 5 beams: {ours.accelerations[0]}"
    )
    options = dict(num_beams=5, top_k=5, max_new_tokens=3)
    report(
        timed({"accelerated": lambda: ours(pairs, **options), "stock model": lambda: stock(pairs, **options)}, repeats)
    )


def report(times: dict[str, list[float]]) -> None:
    for name, runs in times.items():
        print(f"  {name:<12} median {statistics.median(runs):.3f} s  (runs: {', '.join(f'{t:.3f}' for t in runs)})")
    ratios = [s / a for a, s in zip(times["accelerated"], times["stock model"])]
    print(
        f"  acceleration: {statistics.median(times['stock model']) / statistics.median(times['accelerated']):.2f}x "
        f"(per-round {min(ratios):.2f}-{max(ratios):.2f}; goal >= 1.2x)"
    )


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args(argv)
    from pipelines.core import runtime

    runtime.tune_allocator()  # as the app does: forward passes reuse freed memory (both contenders gain alike)
    import torch
    import transformers

    device, dtype = torch.device("cuda"), torch.float16
    print(f"{torch.cuda.get_device_name()}, torch {torch.__version__}, transformers {transformers.__version__}")
    toy_agreement(device, dtype)
    full_size(device, dtype, args.repeats)


if __name__ == "__main__":
    main()
