"""A transformers Whisper checkpoint with random weights, built in seconds with nothing to download.

Tests and benchmarks use it to run the transformers backend offline: any size (TINY_EN is Whisper tiny.en's), the
English vocabulary and tokenizer of the embedded tiny.en model, and the generation settings Whisper needs for
timestamps. Random weights decode gibberish: use it for plumbing and speed, never for words.
"""

from __future__ import annotations

import json
from pathlib import Path

from ..core.registry import local_path, resolve

EMBEDDED = "whisper-tiny.en-embedded"  # its tokenizer.json and vocabulary.txt are the English Whisper vocabulary
TINY_EN = {"d_model": 384, "layers": 4, "heads": 6, "ffn": 1536}  # Whisper tiny.en's dimensions
SMALLEST = {"d_model": 64, "layers": 2, "heads": 2, "ffn": 128}  # enough to run every code path quickly
ENGLISH_VOCAB = 51864  # tokens, timestamps included
MEL_BINS = 80
EOS, START, NO_TIMESTAMPS = 50256, 50257, 50362  # token ids: <|endoftext|>, <|startoftranscript|>, <|notimestamps|>
TRANSLATE, TRANSCRIBE = 50357, 50358  # the task tokens; the language tokens lie between <|startoftranscript|> and these


def build(
    directory: Path, dims: dict = SMALLEST, *, max_length: int = 48, seed: int = 0, multilingual: bool = False
) -> Path:
    """Save a random-weight English Whisper of ``dims`` with its WhisperProcessor into ``directory``.

    ``multilingual`` gives it a multilingual model's generation settings (language and task tokens, which the English
    vocabulary holds too), so language detection and translation run through transformers as with a real one.

    Random weights almost never predict end-of-text, so every window decodes ``max_length`` tokens (prompt
    included; Whisper's own limit is 448): keep it near what real speech needs, or tests crawl.
    """
    import torch
    from transformers import GenerationConfig, WhisperConfig, WhisperForConditionalGeneration

    embedded = local_path(resolve("transcribe", EMBEDDED, "toy"))
    ct2_config = json.loads((embedded / "config.json").read_text())
    config = WhisperConfig(
        vocab_size=ENGLISH_VOCAB,
        num_mel_bins=MEL_BINS,
        d_model=dims["d_model"],
        encoder_layers=dims["layers"],
        decoder_layers=dims["layers"],
        encoder_attention_heads=dims["heads"],
        decoder_attention_heads=dims["heads"],
        encoder_ffn_dim=dims["ffn"],
        decoder_ffn_dim=dims["ffn"],
        decoder_start_token_id=START,
        bos_token_id=START,
        eos_token_id=EOS,
        pad_token_id=EOS,
    )
    torch.manual_seed(seed)
    model = WhisperForConditionalGeneration(config)
    model.generation_config = GenerationConfig(
        decoder_start_token_id=START,
        bos_token_id=START,
        eos_token_id=EOS,
        pad_token_id=EOS,
        no_timestamps_token_id=NO_TIMESTAMPS,
        is_multilingual=False,
        max_initial_timestamp_index=50,
        max_length=max_length,
        alignment_heads=_alignment_heads(dims, ct2_config),
        suppress_tokens=ct2_config["suppress_ids"],
        begin_suppress_tokens=ct2_config["suppress_ids_begin"],
    )
    if multilingual:  # unknown to GenerationConfig.update: set as loading a hub generation_config.json would
        vocabulary = (embedded / "vocabulary.txt").read_text().splitlines()
        settings = {
            "is_multilingual": True,
            "task_to_id": {"translate": TRANSLATE, "transcribe": TRANSCRIBE},
            "lang_to_id": {vocabulary[i]: i for i in range(START + 1, TRANSLATE)},
        }
        for name, value in settings.items():
            setattr(model.generation_config, name, value)
    directory = Path(directory)
    model.save_pretrained(directory)
    _processor(embedded).save_pretrained(directory)
    return directory


def _alignment_heads(dims: dict, ct2_config: dict) -> list[list[int]]:
    """The cross-attention heads that time words: tiny.en's own at its size, else every head of the last layer."""
    if dims == TINY_EN:
        return ct2_config["alignment_heads"]
    return [[dims["layers"] - 1, head] for head in range(dims["heads"])]


def _processor(embedded: Path):
    """A WhisperProcessor from the CTranslate2 export's files: its tokenizer.json lacks the timestamp tokens and does
    not mark the control tokens special, so both are added here, with the ids vocabulary.txt gives them."""
    from tokenizers import AddedToken
    from transformers import WhisperFeatureExtractor, WhisperProcessor, WhisperTokenizer

    added = json.loads((embedded / "tokenizer.json").read_text())["added_tokens"]
    control = [token["content"] for token in added if token["id"] > EOS]
    vocabulary = (embedded / "vocabulary.txt").read_text().splitlines()
    tokenizer = WhisperTokenizer(tokenizer_file=str(embedded / "tokenizer.json"), extra_special_tokens=control)
    tokenizer.add_tokens([AddedToken(token, normalized=False) for token in vocabulary[NO_TIMESTAMPS + 1 :]])
    return WhisperProcessor(feature_extractor=WhisperFeatureExtractor(feature_size=MEL_BINS), tokenizer=tokenizer)
