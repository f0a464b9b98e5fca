"""How fast the Caption pipeline is on CPU, as ratios against references measured in the same run.

    python bench/bench_caption.py                # 16 photos, 20 new tokens each, 2 CPU threads, best of 2
    python bench/bench_caption.py --images 4 --repeats 1

The model: BLIP base at full size (the architecture of Salesforce/blip-image-captioning-base: ViT-B/16 at 384 px,
577 image tokens; a 12-layer BERT-base decoder with cross-attention, 30524-token vocabulary), built from its
config with random weights in memory. Random weights never stop on their own, so every caption is forced to
exactly ``--tokens`` new tokens (min = max): every contender does the same decoding work, greedy.

Rows:
- reference: a loop of the stock ``model.generate`` one image at a time (transformers' eager BLIP attention).
- plain batched generate: the stock model, the whole batch in one ``generate`` call.
- ours: ``BlipCaptioner`` (the app's pipeline: image decoding, processor, SDPA attention, the vision tower 4 images
  at a time, each image read once per step by all its beams: for short decodings such as these the image states
  themselves, with no cross-attention keys and values projected at all (``absorbed_attention_pays``), otherwise
  keys and values projected once per image; decoder products with few rows computed weight-first, batched
  generate, candidate scores) on the same weights, greedy like the reference.
- ours on the stock model: the same pipeline with its acceleration off (``MM_ACCELERATIONS=off``: transformers'
  own attention and ``generate``). Ours over this row is the BLIP acceleration's own row: it stays only at >= 1.2x.
- with ``--beams N`` (default 3, the tab's setting): N beams and N candidates, stock batched generate, ours on the
  stock model and ours.

FLOP efficiency = model FLOPs (vision encoder + the decoder's work for ``--tokens`` tokens, counted from the
architecture; torch's FlopCounterMode counts the same for the stock and our generate) x images / seconds, divided
by the best fp32 matmul rate (bench_search.matmul_rate: square and ViT-shaped products) measured between the
contenders' runs. Contenders run in turns and each row reports its best run: the machine may be shared.
Timings never belong in tests; this script is not run by CI.
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
from bench.bench_search import matmul_rate  # noqa: E402

CACHE = ROOT / "bench" / "cache"  # gitignored
THREADS = 2  # CPU threads for every contender
REFERENCE = "reference: stock generate, one image at a time"
OURS = "ours: BlipCaptioner, batched"
OURS_STOCK = "ours on the stock model (acceleration off)"

# Salesforce/blip-image-captioning-base's published config, written out (transformers' BlipConfig defaults agree).
VISION = dict(
    image_size=384, patch_size=16, hidden_size=768, intermediate_size=3072, num_hidden_layers=12, num_attention_heads=12
)
TEXT = dict(
    vocab_size=30524,
    hidden_size=768,
    intermediate_size=3072,
    num_hidden_layers=12,
    num_attention_heads=12,
    encoder_hidden_size=768,
    bos_token_id=30522,
    sep_token_id=102,
    pad_token_id=0,
)


def blip_base(seed: int = 0):
    """BlipForConditionalGeneration at BLIP base size, random weights, fp32, eval mode."""
    import torch
    from transformers import BlipConfig, BlipForConditionalGeneration

    torch.manual_seed(seed)
    config = BlipConfig(vision_config=VISION, text_config=TEXT)
    return BlipForConditionalGeneration(config).eval()


def processor():
    """BLIP's image processor at 384 px and a WordPiece tokenizer with BLIP's vocabulary size (placeholder words)."""
    from transformers import BertTokenizerFast, BlipImageProcessor, BlipProcessor

    vocab = CACHE / "blip-vocab-30524.txt"
    if not vocab.exists():
        CACHE.mkdir(parents=True, exist_ok=True)
        special = {0: "[PAD]", 100: "[UNK]", 101: "[CLS]", 102: "[SEP]", 103: "[MASK]", 30522: "[DEC]", 30523: "[ENC]"}
        vocab.write_text("\n".join(special.get(i, f"w{i}") for i in range(TEXT["vocab_size"])) + "\n")
    tokenizer = BertTokenizerFast(vocab_file=str(vocab), bos_token="[DEC]")
    images = BlipImageProcessor(size={"height": VISION["image_size"], "width": VISION["image_size"]})
    return BlipProcessor(image_processor=images, tokenizer=tokenizer)


def flops_per_image(tokens: int, rows: int = 1) -> tuple[float, float]:
    """(vision encoder, decoding) FLOPs (2 x multiply-adds) for one image: ``tokens`` steps on ``rows`` sequences.

    ``rows`` is the number of beams decoded side by side; the image's cross-attention keys and values are
    counted once per image, as the necessary work. This is the model's work as the stock model does it: when ours
    attends to the image states unprojected (greedy, 20 tokens) it does fewer multiplications than counted here.
    """
    d, f, layers = VISION["hidden_size"], VISION["intermediate_size"], VISION["num_hidden_layers"]
    patches = (VISION["image_size"] // VISION["patch_size"]) ** 2
    n = patches + 1  # + [CLS]
    vision = 2 * patches * 3 * VISION["patch_size"] ** 2 * d  # patch embedding
    vision += layers * (2 * n * d * 3 * d + 2 * n * d * d + 2 * 2 * n * d * f + 2 * 2 * n * n * d)
    t, tf, vocab = TEXT["hidden_size"], TEXT["intermediate_size"], TEXT["vocab_size"]
    tlayers = TEXT["num_hidden_layers"]
    decoding = tlayers * 2 * 2 * n * d * t  # cross-attention keys and values of the image, once
    for step in range(1, tokens + 1):  # step s attends to s positions of its own text
        per_layer = 2 * 4 * t * t + 2 * 2 * step * t  # self-attention projections, scores and mix
        per_layer += 2 * 2 * t * t + 2 * 2 * n * t  # cross-attention query/output projections, scores and mix
        per_layer += 2 * 2 * t * tf  # feed-forward
        decoding += rows * (tlayers * per_layer + 2 * t * t + 2 * t * vocab)  # + prediction head and vocabulary
    return float(vision), float(decoding)


def main(argv=None) -> list:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--images", type=int, default=16, help="images per contender run")
    parser.add_argument("--tokens", type=int, default=20, help="new tokens per caption (forced: min = max)")
    parser.add_argument("--repeats", type=int, default=2, help="runs per contender (the best one counts)")
    parser.add_argument(
        "--beams",
        type=int,
        default=3,
        help="also time beam search with this many beams and candidates, stock vs ours (0: skip)",
    )
    args = parser.parse_args(argv)
    from pipelines.core import runtime

    runtime.tune_allocator()  # as the app does: forward passes reuse freed memory (both contenders gain alike)

    import torch

    torch.set_num_threads(THREADS)
    from pipelines.caption.blip import BlipCaptioner
    from pipelines.core.io import load_image
    from pipelines.core.registry import ModelSpec

    photos = sorted((ROOT / "assets/examples/photos").glob("*.jpg"))
    paths = [photos[i % len(photos)] for i in range(args.images)]  # files, as users upload them
    from pipelines import fast

    stock = blip_base()
    spec = ModelSpec("caption", "blip-base (random weights)", "blip", "memory")
    ours = BlipCaptioner(spec, torch.device("cpu"), torch.float32, copy.deepcopy(stock), processor())
    assert ours.accelerations[0].active, ours.accelerations
    os.environ[fast.SWITCH] = "off"
    ours_stock = BlipCaptioner(spec, torch.device("cpu"), torch.float32, copy.deepcopy(stock), ours.processor)
    del os.environ[fast.SWITCH]
    force = dict(min_new_tokens=args.tokens, max_new_tokens=args.tokens)
    blip_processor = ours.processor

    def reference():
        for path in paths:
            inputs = blip_processor(images=load_image(path), return_tensors="pt")
            with torch.inference_mode():
                stock.generate(**inputs, **force)

    def stock_batched(**decoding):
        def run():
            inputs = blip_processor(images=[load_image(p) for p in paths], return_tensors="pt")
            with torch.inference_mode():
                stock.generate(**inputs, **force, **decoding)

        return run

    def pipeline(captioner=ours, **options):
        return lambda: captioner(paths, **force, **options)

    greedy = flops_per_image(args.tokens)
    beams = flops_per_image(args.tokens, rows=args.beams)
    contenders = {  # name: (run, model FLOPs per image)
        REFERENCE: (reference, greedy),
        "plain batched generate (stock model)": (stock_batched(), greedy),
        OURS_STOCK: (pipeline(num_beams=1, captioner=ours_stock), greedy),
        OURS: (pipeline(num_beams=1), greedy),
    }
    if args.beams > 1:
        contenders |= {
            f"{args.beams} beams, {args.beams} candidates: stock batched generate": (
                stock_batched(num_beams=args.beams, num_return_sequences=args.beams),
                beams,
            ),
            f"{args.beams} beams, {args.beams} candidates: ours on the stock model": (
                pipeline(num_beams=args.beams, num_candidates=args.beams, captioner=ours_stock),
                beams,
            ),
            f"{args.beams} beams, {args.beams} candidates: ours": (
                pipeline(num_beams=args.beams, num_candidates=args.beams),
                beams,
            ),
        }
    with torch.inference_mode():  # warm up: first calls allocate and pick kernels
        for captioner in (ours, ours_stock):
            captioner(paths[:2], num_beams=1, min_new_tokens=2, max_new_tokens=2)
        stock.generate(**blip_processor(images=load_image(paths[0]), return_tensors="pt"), max_new_tokens=2)
    wall: dict[str, list[float]] = {name: [] for name in contenders}
    cpu: dict[str, list[float]] = {name: [] for name in contenders}
    rates = []
    for _ in range(args.repeats):
        for name, (run, _) in contenders.items():
            rates.append(matmul_rate(1.5) * 1e9)
            start, start_cpu = time.perf_counter(), time.process_time()
            run()
            wall[name].append(time.perf_counter() - start)
            cpu[name].append(time.process_time() - start_cpu)
    rates.append(matmul_rate(1.5) * 1e9)

    peak = max(rates)
    reference_time = min(wall[REFERENCE])
    print(
        f"\nBLIP base architecture, random weights ({sum(p.numel() for p in stock.parameters()) / 1e6:.0f}M "
        f"parameters), {args.images} photos, {args.tokens} new tokens each (forced), {THREADS} CPU threads, "
        f"best of {args.repeats}; load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores"
    )
    print(
        f"model work per image: {greedy[0] / 1e9:.1f} GFLOP vision encoder + {greedy[1] / 1e9:.1f} GFLOP greedy "
        f"decoding ({beams[1] / 1e9:.1f} with {args.beams} beams); fp32 matmul: best "
        f"{peak / 1e9:.1f} GFLOP/s, median {statistics.median(rates) / 1e9:.1f}"
    )
    print(
        "FLOP efficiency = model FLOPs / best wall time / best matmul rate. CPU s: this process's CPU time (less "
        f"than {THREADS} x wall time when other work shares the cores)\n"
    )
    print(
        f"| {'contender':<52} | {'best s':>7} | {'median s':>8} | {'CPU s':>7} | {'images/s':>8} "
        f"| {'x reference':>11} | {'FLOP eff.':>9} |"
    )
    print(f"|{'-' * 54}|{'-' * 9}|{'-' * 10}|{'-' * 9}|{'-' * 10}|{'-' * 13}|{'-' * 11}|")
    for name, (_, work) in contenders.items():
        best, total = min(wall[name]), sum(work) * args.images
        print(
            f"| {name:<52} | {best:7.2f} | {statistics.median(wall[name]):8.2f} | {min(cpu[name]):7.2f} "
            f"| {args.images / best:8.3f} | {reference_time / best:11.2f} | {total / best / peak:9.1%} |"
        )
    ours_time = min(wall[OURS])
    efficiency = sum(greedy) * args.images / ours_time / peak
    print(f"\nours vs the reference loop: {reference_time / ours_time:.2f}x throughput (goal >= 2x)")
    print(f"ours, FLOP efficiency: {efficiency:.1%} of the fp32 matmul rate (goal >= 75%)")

    from bench.report import Row, ratio_row

    setting = f"BLIP base, {args.images} images x {args.tokens} tokens, {THREADS} threads"
    stock_model_time = min(wall[OURS_STOCK])
    print(
        f"the BLIP acceleration, greedy: {stock_model_time / ours_time:.2f}x the same pipeline on the stock model "
        "(goal >= 1.2x)"
    )
    rows = [
        ratio_row(
            f"caption: batched pipeline vs a loop of model.generate ({setting})",
            args.images / ours_time,
            args.images / reference_time,
            "images/s",
            2.0,
        ),
        ratio_row(
            f"caption: BLIP acceleration, greedy: ours vs ours on the stock model ({setting})",
            args.images / ours_time,
            args.images / stock_model_time,
            "images/s",
            1.2,
        ),
        Row(f"caption: FLOP efficiency vs the fp32 matmul rate ({setting})", 100 * efficiency, None, "%", 75.0),
    ]
    if args.beams > 1:
        names = [name for name in contenders if name.startswith(f"{args.beams} beams")]
        stock_time, stock_model_time, our_time = (min(wall[name]) for name in names)
        print(
            f"the BLIP acceleration, {args.beams} beams: {stock_model_time / our_time:.2f}x the same pipeline on the "
            "stock model (goal >= 1.2x)"
        )
        rows += [
            ratio_row(
                f"caption: {args.beams} beams + candidates, ours vs stock batched generate",
                args.images / our_time,
                args.images / stock_time,
                "images/s",
                None,
            ),
            ratio_row(
                f"caption: BLIP acceleration, {args.beams} beams + candidates: ours vs ours on the stock model",
                args.images / our_time,
                args.images / stock_model_time,
                "images/s",
                1.2,
            ),
        ]
    return rows


if __name__ == "__main__":
    main()
