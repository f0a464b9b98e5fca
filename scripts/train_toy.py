"""Train the tiny toy checkpoints in ``assets/models/toy`` on the shapes world (``toyworld``).

Each checkpoint is saved in the same on-disk format as the hub model it stands in for, so the app's
ordinary loaders read it with no special casing:

  clip/          open_clip "local-dir:" checkpoint + word-level BERT tokenizer  (an open_clip ViT)
  blip-caption/  BlipForConditionalGeneration + BlipProcessor  (Salesforce/blip-image-captioning-*)
  blip-vqa/      BlipForQuestionAnswering + BlipProcessor      (Salesforce/blip-vqa-*)
  vit-gpt2/      VisionEncoderDecoderModel (ViT + GPT-2) + ViTImageProcessor + GPT-2 byte-level BPE
                 tokenizer  (nlpconnect/vit-gpt2-image-captioning)
  vilt/          ViltForQuestionAnswering + ViltProcessor, answers = colours and shapes
                 (dandelin/vilt-b32-finetuned-vqa)
  smolvlm-chat/  SmolVLMForConditionalGeneration + SmolVLMProcessor with a chat template: describes a scene,
                 answers colour, shape, count and which-side questions, follows up  (HuggingFaceTB/SmolVLM2-*)

The models are built from configs (no hub access), trained from scratch on CPU on scenes with seeds
below ``toyworld.HELD_OUT_SEED``, reloaded from disk with the normal loaders and scored on held-out
scenes in fp32 and fp16. Scores go to ``<out>/metrics.json`` and ``<out>/README.md``.

Usage:  python scripts/train_toy.py [--only clip,blip-caption,blip-vqa,vit-gpt2,vilt,smolvlm] [--out DIR]
"""

from __future__ import annotations

import argparse
import json
import math
import random
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # run from anywhere: find toyworld
import toyworld  # noqa: E402

SEED = 0
TRAIN_SCENES = 4000  # seeds 0..3999, rendered once and shared by all four models
EVAL_SCENES = 360  # held-out seeds HELD_OUT_SEED.. (about 20 per colour+shape class)
FP16_EVAL_SCENES = 120
SIZE = toyworld.IMAGE_SIZE
CLASSES = [(color, shape) for color in toyworld.COLORS for shape in toyworld.SHAPES]
MODELS = ("clip", "blip-caption", "blip-vqa", "vit-gpt2", "vilt", "smolvlm")
DIRS = {"smolvlm": "smolvlm-chat"}  # a model's folder under --out, where it is not the model's name

# Words a user's prompt or question may use beyond the captions and questions themselves, so they
# get a real token rather than [UNK] (the models are only trained on some of them).
EXTRA_WORDS = (
    "an",
    "of",
    "photo",
    "photography",
    "picture",
    "image",
    "drawing",
    "thing",
    "something",
    "colored",
    "colour",
    "with",
    "on",
    "background",
    "one",
    "single",
    "there",
    "are",
    "small",
    "big",
    "?",
    ".",
    ",",
)
BERT_SPECIALS = ("[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]")  # ids 0..4, as BERT orders them

# Prompts for CLIP training. A text says the colour, the shape or both; it matches every image in the
# batch that has what it says (see clip_loss). {caption} is toyworld's caption ("an orange circle").
CLIP_BOTH = (
    "{caption}",
    "a photo of {caption}",
    "{c} {s}",
    "a picture of {caption}",
    "an image of {caption}",
    "a drawing of {caption}",
    "a photo of the {c} {s}",
    "a {c} {s}",
)
CLIP_COLOR = (
    "{c}",
    "something {c}",
    "{a} {c} shape",
    "{a} {c} object",
    "a photo of something {c}",
    "a picture of something {c}",
)
CLIP_SHAPE = ("{s}", "a {s}", "a photo of a {s}", "a {s} shape", "a picture of a {s}", "an image of a {s}")

# Caption prompts for BLIP conditional captioning (``processor(images, text=prompt)``), as the
# hub BLIP captioner is used with "a photography of". Kept rare so unconditional captions stay plain.
CAPTION_PROMPTS = ("a photography of", "a picture of")
PROMPTED_FRACTION = 0.1


# --- shared helpers ----------------------------------------------------------------------------


def seed_everything(seed: int = SEED) -> None:
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def word_vocab(extra_specials: tuple[str, ...] = ()) -> dict[str, int]:
    words = sorted(set(toyworld.vocabulary()) | set(EXTRA_WORDS))
    return {token: i for i, token in enumerate([*BERT_SPECIALS, *extra_specials, *words])}


def bert_tokenizer(extra_specials: tuple[str, ...] = (), **kwargs):
    """A real BertTokenizerFast whose word pieces are whole toy words (everything else is [UNK])."""
    from transformers import BertTokenizerFast

    return BertTokenizerFast(vocab=word_vocab(extra_specials), do_lower_case=True, **kwargs)


def random_batches(count: int, batch: int, steps: int, seed: int = SEED) -> Iterator[torch.Tensor]:
    generator = torch.Generator().manual_seed(seed)
    for _ in range(steps):
        yield torch.randint(count, (batch,), generator=generator)


def hflip(pixels: torch.Tensor) -> torch.Tensor:
    """Flip about half the images left-right: every toy shape is mirror symmetric, so labels hold."""
    flip = torch.rand(pixels.shape[0]) < 0.5
    return torch.where(flip[:, None, None, None], pixels.flip(-1), pixels)


def train(
    name: str,
    model: torch.nn.Module,
    loss_fn: Callable[[torch.Tensor], torch.Tensor],
    count: int,
    steps: int,
    batch: int,
    lr: float,
) -> None:
    """AdamW with linear warm-up and cosine decay; ``loss_fn`` maps a batch of scene indices to a loss."""
    model.train()
    optimizer = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=0.01)
    warmup = max(1, steps // 20)
    schedule = torch.optim.lr_scheduler.LambdaLR(
        optimizer, lambda s: min(1.0, (s + 1) / warmup) * 0.5 * (1 + math.cos(math.pi * min(s, steps) / steps))
    )
    start, running = time.time(), None
    for step, indices in enumerate(random_batches(count, batch, steps), start=1):
        loss = loss_fn(indices)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        optimizer.step()
        schedule.step()
        running = loss.item() if running is None else 0.95 * running + 0.05 * loss.item()
        if step % 100 == 0 or step == steps:
            print(f"  [{name}] step {step}/{steps}  loss {running:.4f}  {time.time() - start:.0f}s", flush=True)
    model.eval()


def accuracy(predicted: list[str], expected: list[str]) -> float:
    return sum(p.strip() == e for p, e in zip(predicted, expected)) / len(expected)


def in_chunks(items: list, size: int = 64) -> Iterator[list]:
    for start in range(0, len(items), size):
        yield items[start : start + size]


# --- CLIP (open_clip) --------------------------------------------------------------------------

CLIP_CONTEXT = 24


def clip_files(out: Path) -> dict:
    """Write tokenizer files and open_clip_config.json; returns the config."""
    from open_clip.constants import OPENAI_DATASET_MEAN, OPENAI_DATASET_STD

    tokenizer = bert_tokenizer()
    tokenizer.save_pretrained(out)
    text_cfg = {
        "context_length": CLIP_CONTEXT,
        "vocab_size": len(tokenizer),
        # Any non-empty name makes get_tokenizer use HFTokenizer; for "local-dir:" it loads from the
        # directory itself, where the tokenizer files are.
        "hf_tokenizer_name": "toy-word-level-bert",
        "width": 64,
        "heads": 2,
        "layers": 2,
        "mlp_ratio": 2.0,
        # BERT ids are [CLS] words [SEP] [PAD]...: with the causal mask only [SEP] has seen every word,
        # so pool there ('eos'); 'argmax' would need [SEP] to be the largest id, 'last' would hit [PAD].
        "pool_type": "eos",
        "eos_id": tokenizer.sep_token_id,
        "pad_id": tokenizer.pad_token_id,
    }
    vision_cfg = {"image_size": SIZE, "patch_size": 8, "width": 64, "head_width": 32, "layers": 2, "mlp_ratio": 2.0}
    config = {
        "model_cfg": {"embed_dim": 64, "vision_cfg": vision_cfg, "text_cfg": text_cfg},
        "preprocess_cfg": {
            "size": SIZE,
            "mean": list(OPENAI_DATASET_MEAN),
            "std": list(OPENAI_DATASET_STD),
            "interpolation": "bicubic",
            "resize_mode": "shortest",
        },
    }
    (out / "open_clip_config.json").write_text(json.dumps(config, indent=2) + "\n")
    return config


def clip_text(color: str, shape: str, rng: random.Random) -> tuple[str, str | None, str | None]:
    """A training text for one image and the (colour, shape) it asserts; None = says nothing about it."""
    caption = toyworld.caption_for(color, shape)
    fill = {"c": color, "s": shape, "a": caption.split()[0], "caption": caption}
    kind = rng.random()
    if kind < 0.6:
        return rng.choice(CLIP_BOTH).format(**fill), color, shape
    if kind < 0.8:
        return rng.choice(CLIP_COLOR).format(**fill), color, None
    return rng.choice(CLIP_SHAPE).format(**fill), None, shape


def clip_loss(model, image_features, text_features, text_claims, image_labels) -> torch.Tensor:
    """Contrastive loss where a text is a positive for every image that fits it ("red" fits all red
    images in the batch), so colour-only and shape-only texts do not push matching images apart."""
    logits = model.logit_scale.exp() * F.normalize(text_features, dim=-1) @ F.normalize(image_features, dim=-1).T
    fits = torch.tensor(
        [[(c is None or c == ic) and (s is None or s == is_) for ic, is_ in image_labels] for c, s in text_claims],
        dtype=torch.float32,
    )
    text_to_image = -(fits / fits.sum(1, keepdim=True) * logits.log_softmax(1)).sum(1).mean()
    image_to_text = -(fits.T / fits.T.sum(1, keepdim=True) * logits.T.log_softmax(1)).sum(1).mean()
    return (text_to_image + image_to_text) / 2


def train_clip(scenes: list, out: Path) -> None:
    import open_clip
    from open_clip.transform import PreprocessCfg, image_transform_v2
    from safetensors.torch import save_file

    config = clip_files(out)
    model = open_clip.CLIP(**config["model_cfg"])
    preprocess = image_transform_v2(PreprocessCfg(**config["preprocess_cfg"]), is_train=False)
    tokenizer = open_clip.get_tokenizer(f"local-dir:{out}")
    pixels = torch.stack([preprocess(s.image) for s in scenes])
    labels = [(s.color, s.shape) for s in scenes]
    rng = random.Random(SEED)

    def loss_fn(indices: torch.Tensor) -> torch.Tensor:
        texts = [clip_text(*labels[i], rng) for i in indices.tolist()]
        image_features = model.encode_image(hflip(pixels[indices]))
        text_features = model.encode_text(tokenizer([t for t, _, _ in texts]))
        return clip_loss(
            model, image_features, text_features, [(c, s) for _, c, s in texts], [labels[i] for i in indices.tolist()]
        )

    train("clip", model, loss_fn, len(scenes), steps=600, batch=64, lr=2e-3)
    save_file({k: v.contiguous() for k, v in model.state_dict().items()}, out / "open_clip_model.safetensors")


@torch.no_grad()
def eval_clip(out: Path, scenes: list, fp16: bool = False) -> dict[str, float]:
    import open_clip

    model, preprocess = open_clip.create_model_from_pretrained(f"local-dir:{out}")
    tokenizer = open_clip.get_tokenizer(f"local-dir:{out}")
    dtype = torch.float16 if fp16 else torch.float32
    model = model.to(dtype).eval()

    def embed_texts(texts: list[str]) -> torch.Tensor:
        return F.normalize(model.encode_text(tokenizer(texts)).float(), dim=-1)

    pixels = torch.stack([preprocess(s.image) for s in scenes]).to(dtype)
    images = F.normalize(model.encode_image(pixels).float(), dim=-1)

    def zero_shot(template: str, names: list, truth: list) -> float:
        predicted = (images @ embed_texts([template.format(*n) for n in names]).T).argmax(1)
        return sum(names[p] == t for p, t in zip(predicted.tolist(), truth)) / len(truth)

    scores = {
        "zero_shot_color_shape": zero_shot(
            "a photo of {}", [(toyworld.caption_for(*c),) for c in CLASSES], [(s.caption,) for s in scenes]
        ),
        "zero_shot_color_word": zero_shot("{}", [(c,) for c in toyworld.COLORS], [(s.color,) for s in scenes]),
        "zero_shot_shape_word": zero_shot("{}", [(s,) for s in toyworld.SHAPES], [(s.shape,) for s in scenes]),
    }
    # Text -> image: groups of 18 held-out images, one per class; each class text must pick its own.
    by_class = {c: [i for i, s in enumerate(scenes) if (s.color, s.shape) == c] for c in CLASSES}
    groups = min(len(v) for v in by_class.values())
    for template in ("{}", "a photo of {}") if groups else ():
        text = embed_texts([template.format(toyworld.caption_for(*c)) for c in CLASSES])
        hits = 0
        for g in range(groups):
            group = torch.tensor([by_class[c][g] for c in CLASSES])
            hits += ((text @ images[group].T).argmax(1) == torch.arange(len(CLASSES))).sum().item()
        scores[f"text_to_image_18way[{template.format('{caption}')}]"] = hits / (groups * len(CLASSES))
    return scores


# --- BLIP (captioning and VQA) ----------------------------------------------------------------


def blip_processor():
    from transformers import BlipImageProcessor, BlipProcessor

    # [DEC] is BLIP's decoder start (bos) token; as a special token it is dropped by skip_special_tokens.
    tokenizer = bert_tokenizer(("[DEC]",), bos_token="[DEC]")
    image_processor = BlipImageProcessor(size={"height": SIZE, "width": SIZE})
    return BlipProcessor(image_processor=image_processor, tokenizer=tokenizer)


def blip_config(tokenizer):
    from transformers import BlipConfig

    text = {
        "vocab_size": len(tokenizer),
        "hidden_size": 64,
        "encoder_hidden_size": 64,
        "intermediate_size": 128,
        "projection_dim": 64,
        "num_hidden_layers": 2,
        "num_attention_heads": 2,
        # As long as the hub BLIP's: a caption prompt plus new tokens must fit, and the app cuts questions here.
        "max_position_embeddings": 512,
        # generate() starts the decoder at bos ([DEC]) and stops at sep ([SEP]); eos is set to [SEP] as well
        # so the decoder's own generation config agrees.
        "bos_token_id": tokenizer.bos_token_id,
        "sep_token_id": tokenizer.sep_token_id,
        "eos_token_id": tokenizer.sep_token_id,
        "pad_token_id": tokenizer.pad_token_id,
    }
    vision = {
        "hidden_size": 64,
        "intermediate_size": 128,
        "projection_dim": 64,
        "num_hidden_layers": 2,
        "num_attention_heads": 2,
        "image_size": SIZE,
        "patch_size": 8,
        "initializer_range": 0.02,
    }
    return BlipConfig(text_config=text, vision_config=vision, projection_dim=64, image_text_hidden_size=64)


def decoder_targets(tokenizer, texts: list[str]) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """[DEC] words [SEP] ids as BLIP's generate() feeds them, their mask, and labels (-100 on padding)."""
    encoded = tokenizer(texts, padding=True, return_tensors="pt")
    ids, mask = encoded.input_ids, encoded.attention_mask
    ids[:, 0] = tokenizer.bos_token_id  # generate() overwrites [CLS] with [DEC] the same way
    return ids, mask, ids.masked_fill(mask == 0, -100)


class ClassProbe(torch.nn.Module):
    """A training-only head on the vision tower's [CLS] output that names the scene's colour+shape class.
    From captions alone the tiny captioners learn shape slowly (colour comes first, then a long plateau);
    this direct signal to the vision tower gets them there in the time budget. It is not saved."""

    def __init__(self, width: int = 64):
        super().__init__()
        self.head = torch.nn.Linear(width, len(CLASSES))

    def forward(self, image_embeds: torch.Tensor, classes: torch.Tensor) -> torch.Tensor:
        return F.cross_entropy(self.head(image_embeds[:, 0]), classes)


def class_ids(scenes: list) -> torch.Tensor:
    return torch.tensor([CLASSES.index((s.color, s.shape)) for s in scenes])


def train_blip_caption(scenes: list, out: Path) -> None:
    from transformers import BlipForConditionalGeneration

    processor = blip_processor()
    model = BlipForConditionalGeneration(blip_config(processor.tokenizer))
    probe = ClassProbe()
    pixels = processor.image_processor(images=[s.image for s in scenes], return_tensors="pt").pixel_values
    classes = class_ids(scenes)
    rng = random.Random(SEED)

    def caption(scene) -> str:
        if rng.random() < PROMPTED_FRACTION:
            return f"{rng.choice(CAPTION_PROMPTS)} {scene.caption}"
        return scene.caption

    def loss_fn(indices: torch.Tensor) -> torch.Tensor:
        ids, mask, labels = decoder_targets(processor.tokenizer, [caption(scenes[i]) for i in indices.tolist()])
        # What forward() computes, with the vision output kept for the probe.
        image = model.vision_model(pixel_values=hflip(pixels[indices])).last_hidden_state
        loss = model.text_decoder(input_ids=ids, attention_mask=mask, encoder_hidden_states=image, labels=labels).loss
        return loss + probe(image, classes[indices])

    train("blip-caption", torch.nn.ModuleList([model, probe]), loss_fn, len(scenes), steps=1500, batch=64, lr=1e-3)
    model.save_pretrained(out)
    processor.save_pretrained(out)


@torch.no_grad()
def eval_blip_caption(out: Path, scenes: list, fp16: bool = False) -> dict[str, float]:
    from transformers import BlipForConditionalGeneration, BlipProcessor

    processor = BlipProcessor.from_pretrained(out)
    model = BlipForConditionalGeneration.from_pretrained(out).eval()
    dtype = torch.float16 if fp16 else torch.float32
    model = model.to(dtype)
    captions = []
    for chunk in in_chunks(scenes):
        inputs = processor(images=[s.image for s in chunk], return_tensors="pt").to(dtype)
        captions += processor.batch_decode(model.generate(**inputs), skip_special_tokens=True)
    prompted = []
    for s in scenes[:60]:  # one prompt per call: generate() drops the prompt's last token ([SEP])
        inputs = processor(images=s.image, text="a photography of", return_tensors="pt").to(dtype)
        prompted += processor.batch_decode(model.generate(**inputs), skip_special_tokens=True)
    return {
        "caption_exact": accuracy(captions, [s.caption for s in scenes]),
        "prompted_caption_exact[a photography of]": accuracy(
            prompted, [f"a photography of {s.caption}" for s in scenes[:60]]
        ),
    }


def vqa_loss(model, probe, pixels, classes, question_ids, question_mask, answer_ids, answer_mask, labels):
    """BlipForQuestionAnswering's loss, computed the way its generate() runs: unlike forward(), generate()
    lets the answer decoder attend to every question position, padding included, so training does too."""
    image = model.vision_model(pixel_values=pixels).last_hidden_state
    question = model.text_encoder(
        input_ids=question_ids, attention_mask=question_mask, encoder_hidden_states=image
    ).last_hidden_state
    answer = model.text_decoder(
        input_ids=answer_ids, attention_mask=answer_mask, encoder_hidden_states=question, labels=labels
    )
    return answer.loss + probe(image, classes)


def warm_start_from_captioner(model, caption_dir: Path) -> None:
    """Start the VQA model from the trained captioner, as BLIP VQA starts from pretrained BLIP: the same
    vision tower, and its text decoder for both the question encoder and the answer decoder."""
    from transformers import BlipForConditionalGeneration

    if not (caption_dir / "config.json").exists():
        raise SystemExit(
            f"blip-vqa starts from the blip-caption checkpoint, which is not in {caption_dir}; "
            "train it first: --only blip-caption,blip-vqa"
        )
    captioner = BlipForConditionalGeneration.from_pretrained(caption_dir)
    model.vision_model.load_state_dict(captioner.vision_model.state_dict())
    model.text_encoder.load_state_dict(captioner.text_decoder.bert.state_dict())
    model.text_decoder.load_state_dict(captioner.text_decoder.state_dict())


def train_blip_vqa(scenes: list, out: Path) -> None:
    from transformers import BlipForQuestionAnswering

    processor = blip_processor()
    model = BlipForQuestionAnswering(blip_config(processor.tokenizer))
    warm_start_from_captioner(model, out.parent / "blip-caption")
    probe = ClassProbe()
    pixels = processor.image_processor(images=[s.image for s in scenes], return_tensors="pt").pixel_values
    classes = class_ids(scenes)
    rng = random.Random(SEED)

    def loss_fn(indices: torch.Tensor) -> torch.Tensor:
        pairs = [rng.choice(scenes[i].qa) for i in indices.tolist()]
        # Extra padding now and then, as a batch of mixed questions gets in the app.
        width = max(len(processor.tokenizer(q).input_ids) for q, _ in pairs) + rng.choice((0, 0, 2, 6))
        questions = processor.tokenizer(
            [q for q, _ in pairs], padding="max_length", max_length=width, return_tensors="pt"
        )
        answers = decoder_targets(processor.tokenizer, [a for _, a in pairs])
        return vqa_loss(
            model,
            probe,
            hflip(pixels[indices]),
            classes[indices],
            questions.input_ids,
            questions.attention_mask,
            *answers,
        )

    train("blip-vqa", torch.nn.ModuleList([model, probe]), loss_fn, len(scenes), steps=500, batch=64, lr=5e-4)
    model.save_pretrained(out)
    processor.save_pretrained(out)


@torch.no_grad()
def eval_blip_vqa(out: Path, scenes: list, fp16: bool = False) -> dict[str, float]:
    from transformers import BlipForQuestionAnswering, BlipProcessor

    processor = BlipProcessor.from_pretrained(out)
    model = BlipForQuestionAnswering.from_pretrained(out).eval()
    dtype = torch.float16 if fp16 else torch.float32
    model = model.to(dtype)
    return vqa_accuracy(
        processor,
        scenes,
        lambda inputs: processor.batch_decode(model.generate(**inputs.to(dtype)), skip_special_tokens=True),
    )


def vqa_accuracy(processor, scenes: list, answer: Callable) -> dict[str, float]:
    """Every question about every scene, batched mixed (so padded) as the app batches them; ``answer`` maps a
    processed batch to answer strings."""
    asked = [(s.image, question, expected) for s in scenes for question, expected in s.qa]
    answers = []
    for chunk in in_chunks(asked):
        answers += answer(
            processor(images=[i for i, _, _ in chunk], text=[q for _, q, _ in chunk], padding=True, return_tensors="pt")
        )
    return {"vqa_exact": accuracy(answers, [a for _, _, a in asked])}


# --- ViT-GPT2 (VisionEncoderDecoderModel) ------------------------------------------------------


def gpt2_tokenizer():
    """A byte-level BPE trained on the toy texts, wrapped as a real GPT2TokenizerFast."""
    from tokenizers import Tokenizer, models, pre_tokenizers, trainers
    from transformers import GPT2TokenizerFast

    words = sorted(set(toyworld.vocabulary()) | set(EXTRA_WORDS))
    corpus = [toyworld.caption_for(c, s) for c, s in CLASSES] + [" ".join(words), *words]
    bpe = Tokenizer(models.BPE())
    bpe.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    trainer = trainers.BpeTrainer(
        vocab_size=1000, min_frequency=1, show_progress=False, initial_alphabet=pre_tokenizers.ByteLevel.alphabet()
    )
    bpe.train_from_iterator(corpus, trainer)
    merges = json.loads(bpe.to_str())["model"]["merges"]
    merges = [tuple(m.split(" ")) if isinstance(m, str) else tuple(m) for m in merges]
    vocab = bpe.get_vocab()
    vocab["<|endoftext|>"] = len(vocab)  # GPT-2's only special token, last id as in GPT-2
    return GPT2TokenizerFast(vocab=vocab, merges=merges)


def vit_gpt2_model(tokenizer):
    from transformers import (
        GenerationConfig,
        GPT2Config,
        VisionEncoderDecoderConfig,
        VisionEncoderDecoderModel,
        ViTConfig,
    )

    eot = tokenizer.eos_token_id
    encoder = ViTConfig(
        hidden_size=64,
        num_hidden_layers=2,
        num_attention_heads=2,
        intermediate_size=128,
        image_size=SIZE,
        patch_size=8,
        encoder_stride=8,
    )
    # n_positions covers the longest caption the app can ask for (100 new tokens).
    decoder = GPT2Config(
        vocab_size=len(tokenizer),
        n_positions=128,
        n_embd=64,
        n_layer=2,
        n_head=2,
        n_inner=128,
        add_cross_attention=True,
        is_decoder=True,
        bos_token_id=eot,
        eos_token_id=eot,
        resid_pdrop=0.0,
        embd_pdrop=0.0,
        attn_pdrop=0.0,
    )
    config = VisionEncoderDecoderConfig.from_encoder_decoder_configs(encoder, decoder)
    # As nlpconnect/vit-gpt2-image-captioning: <|endoftext|> starts, ends and pads every caption.
    config.decoder_start_token_id = config.pad_token_id = config.eos_token_id = eot
    model = VisionEncoderDecoderModel(config=config)
    model.generation_config = GenerationConfig(
        num_beams=4, max_length=16, decoder_start_token_id=eot, bos_token_id=eot, eos_token_id=eot, pad_token_id=eot
    )
    return model


def train_vit_gpt2(scenes: list, out: Path) -> None:
    from transformers import ViTImageProcessor

    tokenizer = gpt2_tokenizer()
    image_processor = ViTImageProcessor(size={"height": SIZE, "width": SIZE})
    model = vit_gpt2_model(tokenizer)
    probe = ClassProbe()
    pixels = image_processor(images=[s.image for s in scenes], return_tensors="pt").pixel_values
    classes = class_ids(scenes)
    # Labels are the caption then <|endoftext|>; the model shifts them right behind decoder_start itself.
    caption_ids = {c: tokenizer(c).input_ids + [tokenizer.eos_token_id] for c in {s.caption for s in scenes}}

    def loss_fn(indices: torch.Tensor) -> torch.Tensor:
        rows = [caption_ids[scenes[i].caption] for i in indices.tolist()]
        width = max(map(len, rows))
        labels = torch.tensor([r + [-100] * (width - len(r)) for r in rows])
        output = model(pixel_values=hflip(pixels[indices]), labels=labels)
        return output.loss + probe(output.encoder_last_hidden_state, classes[indices])

    train("vit-gpt2", torch.nn.ModuleList([model, probe]), loss_fn, len(scenes), steps=800, batch=64, lr=1e-3)
    model.save_pretrained(out)
    image_processor.save_pretrained(out)
    tokenizer.save_pretrained(out)


@torch.no_grad()
def eval_vit_gpt2(out: Path, scenes: list, fp16: bool = False) -> dict[str, float]:
    from transformers import AutoTokenizer, VisionEncoderDecoderModel, ViTImageProcessor

    image_processor = ViTImageProcessor.from_pretrained(out)
    tokenizer = AutoTokenizer.from_pretrained(out)
    dtype = torch.float16 if fp16 else torch.float32
    model = VisionEncoderDecoderModel.from_pretrained(out).eval().to(dtype)
    captions = []
    for chunk in in_chunks(scenes):
        pixels = image_processor(images=[s.image for s in chunk], return_tensors="pt").pixel_values.to(dtype)
        captions += tokenizer.batch_decode(model.generate(pixels), skip_special_tokens=True)
    return {"caption_exact": accuracy(captions, [s.caption for s in scenes])}


# --- driver ------------------------------------------------------------------------------------

# --- ViLT (VQA as classification over a fixed answer set) -------------------------------------

VILT_ANSWERS = (*toyworld.COLORS, *toyworld.SHAPES)
VILT_MAX_TOKENS = 40  # as the hub ViLT: questions are cut here
VILT_STEPS = 900


def vilt_processor():
    from transformers import ViltImageProcessor, ViltProcessor

    tokenizer = bert_tokenizer(model_max_length=VILT_MAX_TOKENS)
    image_processor = ViltImageProcessor(size={"shortest_edge": SIZE}, size_divisor=16)
    return ViltProcessor(image_processor=image_processor, tokenizer=tokenizer)


def vilt_config(tokenizer):
    from transformers import ViltConfig

    return ViltConfig(
        vocab_size=len(tokenizer),
        hidden_size=64,
        num_hidden_layers=3,
        num_attention_heads=2,
        intermediate_size=128,
        image_size=SIZE,
        patch_size=16,
        max_position_embeddings=VILT_MAX_TOKENS,
        pad_token_id=tokenizer.pad_token_id,
        id2label=dict(enumerate(VILT_ANSWERS)),
        label2id={a: i for i, a in enumerate(VILT_ANSWERS)},
    )


def train_vilt(scenes: list, out: Path) -> None:
    from transformers import ViltForQuestionAnswering

    processor = vilt_processor()
    model = ViltForQuestionAnswering(vilt_config(processor.tokenizer))
    probe = ClassProbe()
    encoded = processor.image_processor(images=[s.image for s in scenes], return_tensors="pt")
    pixels, pixel_mask = encoded.pixel_values, encoded.pixel_mask
    classes = class_ids(scenes)
    rng = random.Random(SEED)

    def loss_fn(indices: torch.Tensor) -> torch.Tensor:
        pairs = [rng.choice(scenes[i].qa) for i in indices.tolist()]
        questions = processor.tokenizer([q for q, _ in pairs], padding=True, return_tensors="pt")
        answers = torch.tensor([VILT_ANSWERS.index(a) for _, a in pairs])
        # One-hot targets under ViLT's own loss (per-answer binary cross-entropy), as VQAv2 soft scores are used,
        # so sigmoid(logit) stays each answer's probability; plus softmax cross-entropy, which ranks them sooner.
        outputs = model(
            **questions,
            pixel_values=hflip(pixels[indices]),
            pixel_mask=pixel_mask[indices],
            labels=F.one_hot(answers, len(VILT_ANSWERS)).float(),
            output_hidden_states=True,
        )
        # The image [CLS] token follows the question tokens; the training-only probe names the scene's class there.
        image_cls = outputs.hidden_states[-1][:, questions.input_ids.shape[1] :]
        return outputs.loss + F.cross_entropy(outputs.logits, answers) + probe(image_cls, classes[indices])

    train("vilt", torch.nn.ModuleList([model, probe]), loss_fn, len(scenes), steps=VILT_STEPS, batch=32, lr=2e-3)
    model.save_pretrained(out)
    processor.save_pretrained(out)


@torch.no_grad()
def eval_vilt(out: Path, scenes: list, fp16: bool = False) -> dict[str, float]:
    from transformers import ViltForQuestionAnswering, ViltProcessor

    processor = ViltProcessor.from_pretrained(out)
    model = ViltForQuestionAnswering.from_pretrained(out).eval()
    dtype = torch.float16 if fp16 else torch.float32
    model = model.to(dtype)

    def answer(inputs):
        inputs["pixel_values"] = inputs["pixel_values"].to(dtype)
        return [model.config.id2label[i] for i in model(**inputs).logits.argmax(-1).tolist()]

    return vqa_accuracy(processor, scenes, answer)


# --- SmolVLM (chat: describe, colour, shape, count, side; one or two turns) --------------------

# SmolVLM's special tokens, in the order the Hub tokenizer numbers its own (<|endoftext|> 0, <|im_start|> 1,
# <|im_end|> 2) and then the image tokens it adds; <video> lets the processor's video path find a token.
SMOLVLM_SPECIALS = (
    "<|endoftext|>",
    "<|im_start|>",
    "<|im_end|>",
    "<end_of_utterance>",
    "<fake_token_around_image>",
    "<global-img>",
    "<image>",
    "<video>",
)
SMOLVLM_PATCH = 8
SMOLVLM_SCALE = 2
SMOLVLM_IMAGE_TOKENS = (SIZE // SMOLVLM_PATCH) ** 2 // SMOLVLM_SCALE**2  # 16, a 4x4 grid after the pixel shuffle
SMOLVLM_STEPS = 2000
SMOLVLM_BINDING_LAYER = 1  # the decoder layer one of whose heads is taught to look at the shape a question names
SMOLVLM_MIN_GAP = 12  # pixels between two shapes' centres, left to right, for a "which side" question to be fair
DESCRIBE_PROMPTS = (
    "Describe this image.",
    "Describe this image in one sentence.",
    "What is in this image?",
    "What do you see?",
)
COUNT_QUESTIONS = ("How many shapes are there?", "How many shapes are in the picture?", "How many objects are there?")
SIDE_QUESTIONS = ("Which side is the {c} {s} on?", "Is the {c} {s} on the left or the right?")
COUNT_WORDS = ("zero", "one", "two")


def sentence_for(scene) -> str:
    """What the toy says when asked to describe a scene: its shapes, left to right for two."""
    if len(scene.shapes) == 1:
        return f"The image shows {scene.caption}."
    left, right = sorted(scene.shapes, key=lambda s: s.box[0] + s.box[2])
    return (
        f"The image shows {toyworld.caption_for(left.color, left.shape)} on the left and "
        f"{toyworld.caption_for(right.color, right.shape)} on the right."
    )


def side_of(scene, shape) -> str:
    other = next(s for s in scene.shapes if s is not shape)
    return "left" if shape.box[0] + shape.box[2] < other.box[0] + other.box[2] else "right"


def fair_two_shape_scenes(count: int, start_seed: int) -> list:
    """Two-shape scenes whose shapes are clearly left and right of each other (centres SMOLVLM_MIN_GAP apart)."""
    found, seed = [], start_seed
    while len(found) < count:
        scene = toyworld.two_shape_scene(seed)
        a, b = scene.shapes
        if abs((a.box[0] + a.box[2]) - (b.box[0] + b.box[2])) >= 2 * SMOLVLM_MIN_GAP:
            found.append(scene)
        seed += 1
    return found


def smolvlm_questions(scene, rng: random.Random) -> list[tuple[str, str, str]]:
    """Every kind of (kind, question, answer) that fits ``scene``, one wording each, drawn with ``rng``."""
    asked = [("describe", rng.choice(DESCRIBE_PROMPTS), sentence_for(scene))]
    asked.append(("count", rng.choice(COUNT_QUESTIONS), COUNT_WORDS[len(scene.shapes)]))
    if len(scene.shapes) == 1:
        asked.append(("color", rng.choice(toyworld.COLOR_QUESTIONS), scene.color))
        asked.append(("shape", rng.choice(toyworld.SHAPE_QUESTIONS), scene.shape))
    else:
        for shape in scene.shapes:
            question = rng.choice(SIDE_QUESTIONS).format(c=shape.color, s=shape.shape)
            asked.append(("side", question, side_of(scene, shape)))
    return asked


def user_says(text: str, rng: random.Random) -> str:
    """As a user might type it: capitalised or not."""
    return text[0].upper() + text[1:] if rng.random() < 0.5 else text[0].lower() + text[1:]


def chat_messages(image, turns: list[tuple[str, str | None]]) -> list[dict]:
    """A chat: the image with the first question, then question/answer turns (an answer of None ends on the
    user). Contents are lists of parts, as the Hub template needs."""
    messages = []
    for i, (question, answer) in enumerate(turns):
        parts = [{"type": "text", "text": question}]
        if i == 0:
            parts.insert(0, {"type": "image", "image": image})
        messages.append({"role": "user", "content": parts})
        if answer is not None:
            messages.append({"role": "assistant", "content": [{"type": "text", "text": answer}]})
    return messages


def smolvlm_tokenizer():
    """A byte-level BPE trained on the toy chat texts with SmolVLM's special tokens, as a fast tokenizer."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    words = sorted(set(toyworld.vocabulary()) | set(EXTRA_WORDS))
    sentences = [*DESCRIBE_PROMPTS, *COUNT_QUESTIONS, *toyworld.COLOR_QUESTIONS, *toyworld.SHAPE_QUESTIONS]
    sentences += [q.format(c=c, s=s) for q in SIDE_QUESTIONS for c, s in CLASSES]
    sentences += [f"The image shows {toyworld.caption_for(c, s)} on the left and on the right." for c, s in CLASSES]
    sentences += ["User: Assistant:", *COUNT_WORDS, "left", "right", *words]
    corpus = [user_says(t, random.Random(i)) for i, t in enumerate(sentences * 2)]
    bpe = Tokenizer(models.BPE())
    bpe.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    bpe.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=600,
        min_frequency=1,
        special_tokens=list(SMOLVLM_SPECIALS),
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    bpe.train_from_iterator(corpus, trainer)
    return PreTrainedTokenizerFast(
        tokenizer_object=bpe,
        bos_token="<|im_start|>",
        eos_token="<end_of_utterance>",
        pad_token="<|im_end|>",
        unk_token=None,
        extra_special_tokens=list(SMOLVLM_SPECIALS[4:]),
    )


def smolvlm_processor():
    from transformers import SmolVLMImageProcessor, SmolVLMProcessor, SmolVLMVideoProcessor
    from transformers.models.smolvlm.processing_smolvlm import DEFAULT_CHAT_TEMPLATE

    size = {"longest_edge": SIZE}
    return SmolVLMProcessor(
        image_processor=SmolVLMImageProcessor(do_image_splitting=False, size=size, max_image_size=size),
        tokenizer=smolvlm_tokenizer(),
        video_processor=SmolVLMVideoProcessor(size=size, max_image_size=size),
        image_seq_len=SMOLVLM_IMAGE_TOKENS,
        chat_template=DEFAULT_CHAT_TEMPLATE,  # the Hub template, plus string contents and video
    )


def smolvlm_model(tokenizer):
    from transformers import LlamaConfig, SmolVLMConfig, SmolVLMForConditionalGeneration, SmolVLMVisionConfig

    vision = SmolVLMVisionConfig(
        hidden_size=64,
        intermediate_size=128,
        num_hidden_layers=2,
        num_attention_heads=2,
        image_size=SIZE,
        patch_size=SMOLVLM_PATCH,
    )
    text = LlamaConfig(
        vocab_size=len(tokenizer),
        hidden_size=96,
        intermediate_size=192,
        num_hidden_layers=4,
        num_attention_heads=4,
        num_key_value_heads=2,
        max_position_embeddings=1024,
        rms_norm_eps=1e-5,
        tie_word_embeddings=False,
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
    )
    config = SmolVLMConfig(
        vision_config=vision.to_dict(),
        text_config=text.to_dict(),
        scale_factor=SMOLVLM_SCALE,
        image_token_id=tokenizer.convert_tokens_to_ids("<image>"),
        pad_token_id=tokenizer.pad_token_id,
        tie_word_embeddings=False,
    )
    model = SmolVLMForConditionalGeneration(config)
    generation = model.generation_config  # as the Hub's: eos is <end_of_utterance>
    generation.bos_token_id = tokenizer.bos_token_id
    generation.eos_token_id = tokenizer.eos_token_id
    generation.pad_token_id = tokenizer.pad_token_id
    return model


class ChatExamples:
    """Token ids and loss labels of chats about scenes, laid out exactly as ``apply_chat_template`` renders them
    (the same ids a user's chat is tokenized to), with the loss on the assistant's answers only."""

    def __init__(self, processor):
        from PIL import Image

        self.processor = processor
        self.blank = Image.new("RGB", (SIZE, SIZE), "white")
        self.eos = processor.tokenizer.eos_token_id
        self._ids: dict[str, list[int]] = {}

    def ids(self, messages: list[dict], generation_prompt: bool = False) -> list[int]:
        text = self.processor.apply_chat_template(messages, add_generation_prompt=generation_prompt)
        if text not in self._ids:
            self._ids[text] = self.processor(text=text, images=[self.blank]).input_ids[0]
        return self._ids[text]

    def example(self, turns: list[tuple[str, str]]) -> tuple[list[int], list[int], list[int]]:
        """The chat's ids, its labels, and per turn the position whose next token is the answer's first."""
        messages = chat_messages(self.blank, turns)
        ids = self.ids(messages)
        labels = [-100] * len(ids)
        asks = []
        for turn in range(len(turns)):
            prompt = self.ids(messages[: 2 * turn + 1], generation_prompt=True)
            assert ids[: len(prompt)] == prompt, "a chat's prompt must tokenize as a prefix of the whole chat"
            end = ids.index(self.eos, len(prompt)) + 1  # the answer and its <end_of_utterance>, not the "\n"
            labels[len(prompt) : end] = ids[len(prompt) : end]
            asks.append(len(prompt) - 1)
        return ids, labels, asks


class GridProbe(torch.nn.Module):
    """Training-only heads on the image tokens the decoder reads (the connector's output, a row-major grid): each
    token names the colour+shape whose box covers the middle of its cell, or background, and in two-shape scenes
    whether that shape is the left or the right one (the tower sees the whole image, so it can put that in the
    shape's own tokens, where the decoder finds it as it finds the colour); for one-shape scenes the mean token
    names the scene's class. Without them the tiny model learns colour only (shape and side stay at chance in the
    time budget). Not saved."""

    def __init__(self, width: int, grid: int):
        super().__init__()
        self.grid = grid
        self.cells = torch.nn.Linear(width, len(CLASSES) + 1)
        self.scene = torch.nn.Linear(width, len(CLASSES))
        self.sides = torch.nn.Linear(width, 3)  # background, the left shape, the right shape

    def labels(self, scenes: list) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Per scene: the class of each grid cell (len(CLASSES) = background), its side (0 background, 1 the left
        shape, 2 the right one; -100 in one-shape scenes), and the scene's class (-100 for two shapes)."""
        step = SIZE / self.grid
        cells = torch.full((len(scenes), self.grid * self.grid), len(CLASSES))
        sides = torch.zeros((len(scenes), self.grid * self.grid), dtype=torch.long)
        for i, scene in enumerate(scenes):
            for k in range(self.grid * self.grid):
                x, y = (k % self.grid + 0.5) * step, (k // self.grid + 0.5) * step
                for shape in reversed(scene.shapes):  # the later shape is drawn on top
                    left, top, right, bottom = shape.box
                    if left <= x <= right and top <= y <= bottom:
                        cells[i, k] = CLASSES.index((shape.color, shape.shape))
                        if len(scene.shapes) == 2:
                            sides[i, k] = 1 if side_of(scene, shape) == "left" else 2
                        break
            if len(scene.shapes) == 1:
                sides[i] = -100
        classes = torch.tensor([CLASSES.index((s.color, s.shape)) if len(s.shapes) == 1 else -100 for s in scenes])
        return cells, sides, classes

    def shape_cells(self, scene, shape) -> list[int]:
        """The grid cells (row-major) that show ``shape``: those whose middle it covers, and the cell of its
        own middle (a small shape may cover no cell's middle)."""
        step = SIZE / self.grid
        left, top, right, bottom = shape.box
        found = set()
        for k in range(self.grid * self.grid):
            x, y = (k % self.grid + 0.5) * step, (k // self.grid + 0.5) * step
            if left <= x <= right and top <= y <= bottom:
                top_shape = next(
                    s for s in reversed(scene.shapes) if s.box[0] <= x <= s.box[2] and s.box[1] <= y <= s.box[3]
                )
                if top_shape is shape:
                    found.add(k)
        column = min(self.grid - 1, int((left + right) / 2 // step))
        row = min(self.grid - 1, int((top + bottom) / 2 // step))
        found.add(row * self.grid + column)
        return sorted(found)

    def forward(self, tokens: torch.Tensor, cells: torch.Tensor, sides: torch.Tensor, classes: torch.Tensor):
        loss = F.cross_entropy(self.cells(tokens).flatten(0, 1), cells.flatten())
        if (sides >= 0).any():
            loss = loss + F.cross_entropy(self.sides(tokens).flatten(0, 1), sides.flatten(), ignore_index=-100)
        if (classes >= 0).any():
            loss = loss + F.cross_entropy(self.scene(tokens.mean(1)), classes, ignore_index=-100)
        return loss


def train_smolvlm(scenes: list, out: Path) -> None:
    processor = smolvlm_processor()
    tokenizer = processor.tokenizer
    model = smolvlm_model(tokenizer)
    pairs = fair_two_shape_scenes(len(scenes), start_seed=0)
    pool = [*scenes, *pairs]
    encoded = processor.image_processor(images=[[s.image] for s in pool], return_tensors="pt")  # one image a chat
    pixels, pixel_mask = encoded.pixel_values, encoded.pixel_attention_mask
    probe = GridProbe(model.config.text_config.hidden_size, int(SMOLVLM_IMAGE_TOKENS**0.5))
    cells, sides, classes = probe.labels(pool)
    image_tokens = {}
    hook = model.model.connector.register_forward_hook(lambda module, args, output: image_tokens.update(x=output))
    model.set_attn_implementation("eager")  # so the binding head's attention weights can be read (and taught)
    binding = model.model.text_model.layers[SMOLVLM_BINDING_LAYER].self_attn
    attention_weights = {}
    hook2 = binding.register_forward_hook(lambda module, args, output: attention_weights.update(x=output[1]))
    reading = model.model.text_model.layers[SMOLVLM_BINDING_LAYER - 1].self_attn
    hook3 = reading.register_forward_hook(lambda module, args, output: attention_weights.update(read=output[1]))
    color_ids = {}  # a colour -> its token id, where the question spells it as one token
    for color in toyworld.COLORS:
        ids = tokenizer(f" {color}", add_special_tokens=False).input_ids
        if len(ids) == 1:
            color_ids[color] = ids[0]
    image_token = model.config.image_token_id
    examples = ChatExamples(processor)
    rng = random.Random(SEED)

    def conversation(scene) -> tuple[list[tuple[str, str]], list]:
        """The chat's turns, and per turn the shape a which-side question asks about (else None)."""
        asked = smolvlm_questions(scene, rng)
        rng.shuffle(asked)
        turns = 2 if rng.random() < 0.35 else 1  # some chats go on: a follow-up after an answer
        about = [
            next((s for s in scene.shapes if f"{s.color} {s.shape}" in q), None) if kind == "side" else None
            for kind, q, _ in asked[:turns]
        ]
        return [(user_says(q, rng), a) for _, q, a in asked[:turns]], about

    def loss_fn(indices: torch.Tensor) -> torch.Tensor:
        rows, targets = [], []  # targets: (row, position of the side answer's prompt, the asked shape's cells)
        for r, i in enumerate(indices.tolist()):
            turns, about = conversation(pool[i])
            ids, labels_, asks = examples.example(turns)
            rows.append((ids, labels_))
            targets += [(r, at, s, probe.shape_cells(pool[i], s)) for at, s in zip(asks, about) if s is not None]
        width = max(len(ids) for ids, _ in rows)
        pad = tokenizer.pad_token_id
        input_ids = torch.tensor([ids + [pad] * (width - len(ids)) for ids, _ in rows])
        labels = torch.tensor([lab + [-100] * (width - len(lab)) for _, lab in rows])
        attention = torch.tensor([[1] * len(ids) + [0] * (width - len(ids)) for ids, _ in rows])
        loss = model(
            input_ids=input_ids,
            attention_mask=attention,
            pixel_values=pixels[indices],
            pixel_attention_mask=pixel_mask[indices],
            labels=labels,
        ).loss
        loss = loss + probe(image_tokens["x"], cells[indices], sides[indices], classes[indices])
        if targets:
            # Which side: one head of the binding layer, at the position that answers, attends to the asked
            # shape's image tokens (found by the colour and shape the question names); later layers read its side.
            # The layer before it, one head, looks from there at the colour the question names (the colours of
            # two shapes differ), so that the binding head's query carries it.
            weights = attention_weights["x"][:, 0]  # (batch, query, key), head 0
            read = attention_weights["read"][:, 0]
            mass = []
            for r, at, shape, wanted in targets:
                image_positions = (input_ids[r] == image_token).nonzero().flatten()
                mass.append(weights[r, at, image_positions[wanted]].sum())
                named = (input_ids[r, :at] == color_ids.get(shape.color, -1)).nonzero().flatten()
                if len(named):
                    mass.append(read[r, at, named[-1]])  # its last mention: in this question
            loss = loss - torch.log(torch.stack(mass) + 1e-6).mean()
        return loss

    train("smolvlm", torch.nn.ModuleList([model, probe]), loss_fn, len(pool), steps=SMOLVLM_STEPS, batch=32, lr=3e-3)
    hook.remove()
    hook2.remove()
    hook3.remove()
    model.set_attn_implementation("sdpa")
    model.save_pretrained(out)
    processor.save_pretrained(out)


def smolvlm_answers(processor, model, chats: list[tuple], dtype) -> list[str]:
    """Greedy answers to chats (image, turns ending in a question), batched with left padding as a server would."""
    answers = []
    for chunk in in_chunks(chats, 48):
        texts = [
            processor.apply_chat_template(chat_messages(image, turns), add_generation_prompt=True)
            for image, turns in chunk
        ]
        inputs = processor(text=texts, images=[[image] for image, _ in chunk], padding=True, return_tensors="pt")
        inputs["pixel_values"] = inputs["pixel_values"].to(dtype)
        new = model.generate(**inputs, max_new_tokens=24, do_sample=False)[:, inputs["input_ids"].shape[1] :]
        answers += [a.strip() for a in processor.batch_decode(new, skip_special_tokens=True)]
    return answers


@torch.no_grad()
def eval_smolvlm(out: Path, scenes: list, fp16: bool = False) -> dict[str, float]:
    """Held-out chats through AutoProcessor + AutoModelForImageTextToText: each kind of question on its own, and
    a follow-up asked after the model's own first answer."""
    from transformers import AutoModelForImageTextToText, AutoProcessor

    processor = AutoProcessor.from_pretrained(out)
    processor.tokenizer.padding_side = "left"
    dtype = torch.float16 if fp16 else torch.float32
    model = AutoModelForImageTextToText.from_pretrained(out, dtype=dtype).eval()
    pairs = fair_two_shape_scenes(len(scenes), start_seed=toyworld.HELD_OUT_SEED)
    rng = random.Random(SEED + 1)
    asked = []  # (kind, image, question, answer, follow-up question, follow-up answer)
    for scene in [*scenes, *pairs]:
        questions = smolvlm_questions(scene, rng)
        for i, (kind, question, answer) in enumerate(questions):
            _, question2, answer2 = questions[(i + 1 + rng.randrange(len(questions) - 1)) % len(questions)]
            asked.append((kind, scene.image, question, answer, question2, answer2))
    first = smolvlm_answers(processor, model, [(img, [(q, None)]) for _, img, q, _, _, _ in asked], dtype)
    followed = [(img, [(q, a1), (q2, None)]) for (_, img, q, _, q2, _), a1 in zip(asked, first)]
    second = smolvlm_answers(processor, model, followed[::3], dtype)  # a third of them go on to a second turn
    scores = {}
    for kind in ("color", "shape", "count", "side"):
        rows = [(got, row[3]) for got, row in zip(first, asked) if row[0] == kind]
        scores[kind] = accuracy([g for g, _ in rows], [e for _, e in rows])
    rows = [(got, row[3]) for got, row in zip(first, asked) if row[0] == "describe"]
    scores["describe_exact"] = accuracy([g for g, _ in rows], [e for _, e in rows])
    scores["second_turn"] = accuracy(second, [row[5] for row in asked[::3]])
    return scores


TRAINERS = {
    "clip": train_clip,
    "blip-caption": train_blip_caption,
    "blip-vqa": train_blip_vqa,
    "vit-gpt2": train_vit_gpt2,
    "vilt": train_vilt,
    "smolvlm": train_smolvlm,
}
EVALUATORS = {
    "clip": eval_clip,
    "blip-caption": eval_blip_caption,
    "blip-vqa": eval_blip_vqa,
    "vit-gpt2": eval_vit_gpt2,
    "vilt": eval_vilt,
    "smolvlm": eval_smolvlm,
}


def dir_size(path: Path) -> int:
    return sum(f.stat().st_size for f in path.iterdir() if f.is_file())


def fmt(score: float | None) -> str:
    return "n/a" if score is None else f"{score:.3f}"


def write_readme(out: Path, metrics: dict) -> None:
    lines = [
        "# Toy checkpoints",
        "",
        "Tiny models trained from scratch on the synthetic shapes world (`toyworld`), saved in the same",
        "formats as the hub checkpoints they stand in for, so the app's normal loaders read them offline.",
        "",
        f"Made by `python scripts/train_toy.py` (seed {SEED}; {TRAIN_SCENES} training scenes, "
        f"seeds 0-{TRAIN_SCENES - 1};",
        f"scored on {EVAL_SCENES} held-out scenes, seeds {toyworld.HELD_OUT_SEED}+, "
        f"fp16 on the first {FP16_EVAL_SCENES}).",
        "Rerun it to rebuild them; `--only NAME[,NAME]` retrains some, `--out DIR` writes elsewhere.",
        "Train times are wall-clock with 2 CPU threads (on a machine shared with other work, so they vary).",
        "",
        "| model | stands in for | size | train time | held-out scores (fp32 / fp16) |",
        "|---|---|---|---|---|",
    ]
    stands_in = {
        "clip": "open_clip ViT (`local-dir:`)",
        "blip-caption": "Salesforce/blip-image-captioning-*",
        "blip-vqa": "Salesforce/blip-vqa-*",
        "vit-gpt2": "nlpconnect/vit-gpt2-image-captioning",
        "vilt": "dandelin/vilt-b32-finetuned-vqa",
        "smolvlm": "HuggingFaceTB/SmolVLM2-*",
    }
    for name in MODELS:
        if name not in metrics:
            continue
        m = metrics[name]
        scores = "<br>".join(f"{k}: {v:.3f} / {fmt(m['fp16'].get(k))}" for k, v in m["fp32"].items())
        size, seconds = m["bytes"] / 1e6, m["train_seconds"]
        lines.append(f"| `{DIRS.get(name, name)}/` | {stands_in[name]} | {size:.2f} MB | {seconds:.0f} s | {scores} |")
    lines += [
        "",
        "How they were trained (all from scratch, AdamW, warm-up then cosine decay, random left-right flips):",
        '- `clip/`: contrastive, with texts that name the colour and shape ("an orange circle", "a photo of ..."),',
        '  the colour only ("orange") or the shape only ("circle"); a text counts as a match for every image in',
        "  the batch that fits it.",
        '- `blip-caption/`: caption loss (10% of captions behind a prompt, "a photography of" or "a picture of"),',
        "  plus a training-only colour+shape classifier on the vision [CLS] output (not saved).",
        "- `blip-vqa/`: starts from `blip-caption/` (vision tower; its text decoder for the question encoder and",
        "  the answer decoder), then trains on the scenes' question/answer pairs the way `generate()` runs.",
        "- `vit-gpt2/`: caption loss plus the same training-only classifier; the GPT-2 tokenizer is a byte-level",
        "  BPE trained on the toy words.",
        "- `vilt/`: ViLT's own VQA loss (per-answer binary cross-entropy) on one-hot answers over the six colours",
        "  and three shapes, plus softmax cross-entropy on the same logits and the same training-only classifier on",
        "  the image [CLS] token.",
        "- `smolvlm-chat/`: next-token loss on the assistant's answers only (the prompt and image are masked), on",
        "  chats about the scenes and about two-shape scenes (`toyworld.two_shape_scene`, shapes at least",
        f"  {SMOLVLM_MIN_GAP} px apart left to right): describe the image ('The image shows a red circle.', two",
        "  shapes named left to right), colour and shape questions (toyworld's), how many shapes ('one' / 'two'),",
        "  which side a shape is on ('left' / 'right'); a third of the chats go on to a second question after the",
        "  answer. Scored on held-out single and two-shape scenes (as many of each as the other toys' scenes),",
        "  greedy, one question a chat; `second_turn` asks a follow-up after the model's own first answer.",
        "  Plus training-only heads on the image tokens the decoder reads (not saved): each token's colour+shape",
        "  (or background) and, in two-shape scenes, whether it belongs to the left or the right shape; the",
        "  one-shape scene's class from the mean token; and, for a which-side question, one attention head of",
        f"  decoder layer {SMOLVLM_BINDING_LAYER} is taught to look from the answering position at the asked shape's",
        "  image tokens, and one head of the layer before it at the colour the question names (without them the",
        "  answer ignores which shape is asked about). No flips (they would swap the sides).",
        "",
        "Notes for loaders:",
        '- `clip/`: `open_clip.create_model_from_pretrained("local-dir:<dir>")` and',
        '  `open_clip.get_tokenizer("local-dir:<dir>")` (a word-level BertTokenizerFast, lower-cased, unknown words',
        "  become [UNK]; context length 24). The text tower pools at [SEP] (`pool_type: eos`) under a causal mask.",
        "  Images are 64x64, OpenAI CLIP mean/std.",
        "- `blip-caption/`, `blip-vqa/`: `BlipProcessor` + `BlipForConditionalGeneration` / "
        "`BlipForQuestionAnswering`;",
        "  plain `model.generate(**inputs)`, greedy or beams. The decoder starts at [DEC] (bos) and stops at [SEP];",
        '  decode with `skip_special_tokens=True`. A caption prompt (text="a photography of") must be the same for',
        "  every image in a call: `generate()` drops the prompt's last token, which it assumes is [SEP].",
        "- `vit-gpt2/`: `VisionEncoderDecoderModel` + `ViTImageProcessor` + GPT-2 tokenizer; generation_config has",
        "  num_beams 4, max_length 16; `<|endoftext|>` is decoder start, eos and pad.",
        "- `vilt/`: `ViltProcessor` + `ViltForQuestionAnswering`; `config.id2label` holds the nine answers; each",
        "  answer's probability is the sigmoid of its logit (as the hub ViLT). Questions are cut at 40 tokens.",
        "- `smolvlm-chat/`: `AutoProcessor` (SmolVLMProcessor: SmolVLMImageProcessor, 64 px, no image splitting;",
        f"  {SMOLVLM_IMAGE_TOKENS} `<image>` tokens an image) + `AutoModelForImageTextToText`",
        "  (SmolVLMForConditionalGeneration: SigLIP-style vision tower, patch 8, pixel shuffle 2, Llama decoder).",
        "  Chat with `processor.apply_chat_template(messages, add_generation_prompt=True, tokenize=True,",
        "  return_dict=True, return_tensors='pt')`, image parts as `{'type': 'image', 'image': PIL}`; the answer",
        "  ends at `<end_of_utterance>` (eos); decode with `skip_special_tokens=True`. The template is transformers'",
        "  SmolVLM default (the Hub's, also taking string contents), saved as `chat_template.jinja`.",
        "- Weights are fp32 safetensors; in fp16 (`.half()`, also on the CPU) they give the fp16 scores above.",
        "",
    ]
    (out / "README.md").write_text("\n".join(lines))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--only", default=",".join(MODELS), help=f"comma-separated subset of {','.join(MODELS)}")
    parser.add_argument("--out", type=Path, default=ROOT / "assets/models/toy")
    args = parser.parse_args()
    wanted = {n.strip() for n in args.only.split(",") if n.strip()}
    unknown = sorted(wanted - set(MODELS))
    if unknown:
        parser.error(f"unknown model(s) {unknown}; choose from {', '.join(MODELS)}")
    names = [n for n in MODELS if n in wanted]  # blip-caption before blip-vqa, which starts from it

    torch.set_num_threads(2)
    started = time.time()
    train_scenes = toyworld.scenes(TRAIN_SCENES, start_seed=0)
    held_out = toyworld.scenes(EVAL_SCENES, start_seed=toyworld.HELD_OUT_SEED)
    metrics_path = args.out / "metrics.json"
    metrics = json.loads(metrics_path.read_text()) if metrics_path.exists() else {}

    for name in names:
        out = args.out / DIRS.get(name, name)
        out.mkdir(parents=True, exist_ok=True)
        for old in out.iterdir():  # no stale files from an earlier layout
            old.unlink()
        print(f"== {name}", flush=True)
        seed_everything()
        tic = time.time()
        TRAINERS[name](train_scenes, out)
        train_seconds = time.time() - tic
        metrics[name] = {
            "train_seconds": round(train_seconds, 1),
            "bytes": dir_size(out),
            "fp32": EVALUATORS[name](out, held_out),
            "fp16": EVALUATORS[name](out, held_out[:FP16_EVAL_SCENES], fp16=True),
        }
        print(f"  {name}: {json.dumps(metrics[name], indent=None)}", flush=True)

    metrics_path.write_text(json.dumps(metrics, indent=2) + "\n")
    write_readme(args.out, metrics)
    print(f"\nHeld-out accuracy (fp32 / fp16), total {time.time() - started:.0f}s:")
    for name in names:
        for key, value in metrics[name]["fp32"].items():
            print(f"  {name:13s} {key:45s} {value:.3f} / {fmt(metrics[name]['fp16'].get(key))}")


if __name__ == "__main__":
    main()
