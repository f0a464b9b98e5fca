"""What a caller can ask of a transcription, checked once before any audio is decoded."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from ..core.errors import InputError

MAX_BEAMS = 10
MAX_PROMPT_CHARS = 600  # characters; Whisper keeps only the last ~220 prompt tokens anyway
TASKS = ("transcribe", "translate")  # translate = speech in any language to English text (multilingual models)

# Whisper's language codes and names (the same 100 in faster-whisper and transformers).
LANGUAGES = {
    "en": "english", "zh": "chinese", "de": "german", "es": "spanish", "ru": "russian", "ko": "korean", "fr": "french",
    "ja": "japanese", "pt": "portuguese", "tr": "turkish", "pl": "polish", "ca": "catalan", "nl": "dutch",
    "ar": "arabic", "sv": "swedish", "it": "italian", "id": "indonesian", "hi": "hindi", "fi": "finnish",
    "vi": "vietnamese", "he": "hebrew", "uk": "ukrainian", "el": "greek", "ms": "malay", "cs": "czech",
    "ro": "romanian", "da": "danish", "hu": "hungarian", "ta": "tamil", "no": "norwegian", "th": "thai", "ur": "urdu",
    "hr": "croatian", "bg": "bulgarian", "lt": "lithuanian", "la": "latin", "mi": "maori", "ml": "malayalam",
    "cy": "welsh", "sk": "slovak", "te": "telugu", "fa": "persian", "lv": "latvian", "bn": "bengali", "sr": "serbian",
    "az": "azerbaijani", "sl": "slovenian", "kn": "kannada", "et": "estonian", "mk": "macedonian", "br": "breton",
    "eu": "basque", "is": "icelandic", "hy": "armenian", "ne": "nepali", "mn": "mongolian", "bs": "bosnian",
    "kk": "kazakh", "sq": "albanian", "sw": "swahili", "gl": "galician", "mr": "marathi", "pa": "punjabi",
    "si": "sinhala", "km": "khmer", "sn": "shona", "yo": "yoruba", "so": "somali", "af": "afrikaans", "oc": "occitan",
    "ka": "georgian", "be": "belarusian", "tg": "tajik", "sd": "sindhi", "gu": "gujarati", "am": "amharic",
    "yi": "yiddish", "lo": "lao", "uz": "uzbek", "fo": "faroese", "ht": "haitian creole", "ps": "pashto",
    "tk": "turkmen", "nn": "nynorsk", "mt": "maltese", "sa": "sanskrit", "lb": "luxembourgish", "my": "myanmar",
    "bo": "tibetan", "tl": "tagalog", "mg": "malagasy", "as": "assamese", "tt": "tatar", "haw": "hawaiian",
    "ln": "lingala", "ha": "hausa", "ba": "bashkir", "jw": "javanese", "su": "sundanese", "yue": "cantonese",
}


@dataclass(frozen=True)
class TranscribeOptions:
    # decoding
    beam_size: int = 5  # beam search width; 1 = greedy (fastest)
    vad: bool = True  # skip silence with Silero VAD: faster, and no words hallucinated into silence
    # what to produce
    task: str = "transcribe"  # or "translate": any language to English (multilingual models only)
    language: str | None = None  # a code from LANGUAGES; None = detect (English-only models: always "en")
    word_timestamps: bool = False  # also time every word (Segment.words)
    # steering the decoder
    initial_prompt: str = ""  # text the speech follows on from: names, spelling, style
    hotwords: str = ""  # words likely to be said, e.g. "Whisper, CTranslate2"
    # reporting: called with the fraction (0 to 1) of the current recording done, as segments finish;
    # recordings are transcribed one after another, in list order
    progress: Callable[[float], None] | None = None

    def verify(self) -> None:
        whole = isinstance(self.beam_size, int) and not isinstance(self.beam_size, bool)
        if not whole or not 1 <= self.beam_size <= MAX_BEAMS:
            raise InputError(f"beam_size must be a whole number from 1 to {MAX_BEAMS}; got {self.beam_size!r}")
        if self.task not in TASKS:
            raise InputError(f"task must be one of {', '.join(TASKS)}; got {self.task!r}")
        if self.language is not None and self.language not in LANGUAGES:
            raise InputError(f"Unknown language {self.language!r}; use a Whisper language code such as en, fr, de "
                             "or es, or None to detect it")
        for name in ("initial_prompt", "hotwords"):
            value = getattr(self, name)
            if not isinstance(value, str) or len(value) > MAX_PROMPT_CHARS:
                raise InputError(f"{name} must be text of at most {MAX_PROMPT_CHARS} characters; got "
                                 f"{type(value).__name__} of length {len(value) if isinstance(value, str) else '?'}")
        if self.progress is not None and not callable(self.progress):
            raise InputError(f"progress must be a function taking a fraction; got {type(self.progress).__name__}")

    @property
    def prompt(self) -> str:
        """Hotwords and the initial prompt as one decoder prompt (faster-whisper puts hotwords first the same way)."""
        return " ".join(part.strip() for part in (self.hotwords, self.initial_prompt) if part.strip())
