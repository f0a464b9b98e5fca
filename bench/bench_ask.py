"""How much the Ask pipeline's batching buys on CPU: batched pipeline vs a loop of single model calls, same run.

    python bench/bench_ask.py                 # 16 image-question pairs, 2 CPU threads, best of 2
    python bench/bench_ask.py --repeats 3 --only vilt

Models: full-size BLIP-VQA-base (ViT-B/16 at 384 px + BERT-base question encoder and answer decoder) and ViLT-B/32
architectures built from their configs with random weights, in memory (nothing is downloaded or saved). The toy
word-level tokenizer stands in for BERT's (it only sets the question lengths). transformers 5 has no
"visual-question-answering" pipeline task any more, so the reference is the plain model call, one pair at a time,
with the same settings as ours (BLIP: 5 beams, 5 answers returned; ViLT: logits of one pair).

Pairs: the 8 example photos, 2 questions each (16 pairs; the Ask tab's "several questions about one image"), and
16 distinct toy scenes upscaled to 384 px with one question each (16 distinct images: batching alone).
Random weights rarely emit the end token, so both sides decode ``--answer-tokens`` tokens per answer (real answers
are one to three). Contenders run in turns and each row reports its best time. Not run by CI; timings never
belong in tests.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
from bench.report import Row, ratio_row  # noqa: E402
THREADS = 2  # CPU threads for every contender
QUESTIONS = ("what is in the picture?", "what color is it?")
VQA_ANSWERS = 3129  # ViLT-B/32 VQAv2 answer set size
BLIP_VQA_VOCAB = 30524  # bert-base-uncased + BLIP's [DEC] and [ENC]


def pairs_photos() -> list:
    from demos import examples
    from pipelines.io import load_image

    photos = [load_image(path) for path in examples.photos()]
    return [(photo, question) for photo in photos for question in QUESTIONS]


def pairs_distinct(count: int = 16) -> list:
    import toyworld

    return [(toyworld.scene(toyworld.HELD_OUT_SEED + 50_000 + i, size=384).image, QUESTIONS[i % 2])
            for i in range(count)]


def toy_tokenizer(kind: str):
    import transformers

    path = ROOT / "assets/models/toy" / kind
    return getattr(transformers, "BlipProcessor" if kind == "blip-vqa" else "ViltProcessor").from_pretrained(path)


def blip_vqa_base():
    """BlipForQuestionAnswering of blip-vqa-base's size, random weights, and a 384 px processor."""
    from transformers import BlipConfig, BlipForQuestionAnswering, BlipImageProcessor, BlipProcessor

    toy = toy_tokenizer("blip-vqa").tokenizer
    text = {"vocab_size": BLIP_VQA_VOCAB, "bos_token_id": toy.bos_token_id, "sep_token_id": toy.sep_token_id,
            "eos_token_id": toy.sep_token_id, "pad_token_id": toy.pad_token_id}
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


def best_of(contenders: dict, repeats: int) -> dict[str, float]:
    best = {name: float("inf") for name in contenders}
    for _ in range(repeats):
        for name, run in contenders.items():
            start = time.perf_counter()
            run()
            best[name] = min(best[name], time.perf_counter() - start)
    return best


def main(argv=None) -> list[Row]:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeats", type=int, default=2, help="runs per contender (the best one counts)")
    parser.add_argument("--answer-tokens", type=int, default=3, help="tokens decoded per BLIP answer")
    parser.add_argument("--only", choices=("blip", "vilt"), help="time one family only")
    args = parser.parse_args(argv)

    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    import torch

    torch.set_num_threads(THREADS)
    from pipelines.registry import ModelSpec
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
        ours = pipeline_class(spec, cpu, fp32, model, processor)

        def single(image, question, model=model, processor=processor, family=family):
            inputs = processor(images=image, text=question, return_tensors="pt")
            with torch.inference_mode():
                if family.startswith("BLIP"):
                    return model.generate(**inputs, num_beams=beams, num_return_sequences=top_k, length_penalty=0.0,
                                          max_new_tokens=args.answer_tokens, min_new_tokens=args.answer_tokens)
                return model(**inputs).logits

        if family.startswith("BLIP"):  # both sides decode the same number of tokens (see the docstring)
            model.text_decoder.generation_config.min_new_tokens = args.answer_tokens
        options = {"top_k": top_k, "num_beams": beams, "max_new_tokens": args.answer_tokens}
        for workload, pairs in (("8 photos x 2 questions", pairs_photos()), ("16 distinct scenes", pairs_distinct())):
            times = best_of({
                "loop": lambda: [single(image, question) for image, question in pairs],
                "ours": lambda: ours(pairs, **options),
            }, args.repeats)
            rows.append((family, workload, len(pairs), times["loop"], times["ours"]))
            print(f"  {workload}: loop {times['loop']:.1f} s, batched {times['ours']:.1f} s", flush=True)

    print(f"\nAsk: batched pipeline vs a loop of single model calls ({THREADS} CPU threads, best of {args.repeats};"
          f" goal >= 1.5x)\n")
    print("| model | pairs | loop of single calls (s) | batched pipeline (s) | speed-up |")
    print("|---|---|---|---|---|")
    for family, workload, count, loop, ours in rows:
        print(f"| {family} | {workload} ({count}) | {loop:.1f} | {ours:.1f} | {loop / ours:.2f}x |")
    return [ratio_row(f"ask: {family}, {workload}: loop of single calls / batched", loop, ours, "s", 1.5)
            for family, workload, _, loop, ours in rows]


if __name__ == "__main__":
    main()
