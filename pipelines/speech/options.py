"""What a caller can ask of a transcription, checked once before any audio is decoded."""

from __future__ import annotations

from dataclasses import dataclass

from ..core.errors import InputError
from ..core.options import ANY, option, verify

MAX_BEAMS = 10
MAX_PROMPT_CHARS = 600  # characters; Whisper keeps only the last ~220 prompt tokens anyway
TASKS = ("transcribe", "translate")  # translate = speech in any language to English text (multilingual models)

# Whisper's language codes and names (the same 100 in faster-whisper and transformers).
LANGUAGES = {
    "en": "english",
    "zh": "chinese",
    "de": "german",
    "es": "spanish",
    "ru": "russian",
    "ko": "korean",
    "fr": "french",
    "ja": "japanese",
    "pt": "portuguese",
    "tr": "turkish",
    "pl": "polish",
    "ca": "catalan",
    "nl": "dutch",
    "ar": "arabic",
    "sv": "swedish",
    "it": "italian",
    "id": "indonesian",
    "hi": "hindi",
    "fi": "finnish",
    "vi": "vietnamese",
    "he": "hebrew",
    "uk": "ukrainian",
    "el": "greek",
    "ms": "malay",
    "cs": "czech",
    "ro": "romanian",
    "da": "danish",
    "hu": "hungarian",
    "ta": "tamil",
    "no": "norwegian",
    "th": "thai",
    "ur": "urdu",
    "hr": "croatian",
    "bg": "bulgarian",
    "lt": "lithuanian",
    "la": "latin",
    "mi": "maori",
    "ml": "malayalam",
    "cy": "welsh",
    "sk": "slovak",
    "te": "telugu",
    "fa": "persian",
    "lv": "latvian",
    "bn": "bengali",
    "sr": "serbian",
    "az": "azerbaijani",
    "sl": "slovenian",
    "kn": "kannada",
    "et": "estonian",
    "mk": "macedonian",
    "br": "breton",
    "eu": "basque",
    "is": "icelandic",
    "hy": "armenian",
    "ne": "nepali",
    "mn": "mongolian",
    "bs": "bosnian",
    "kk": "kazakh",
    "sq": "albanian",
    "sw": "swahili",
    "gl": "galician",
    "mr": "marathi",
    "pa": "punjabi",
    "si": "sinhala",
    "km": "khmer",
    "sn": "shona",
    "yo": "yoruba",
    "so": "somali",
    "af": "afrikaans",
    "oc": "occitan",
    "ka": "georgian",
    "be": "belarusian",
    "tg": "tajik",
    "sd": "sindhi",
    "gu": "gujarati",
    "am": "amharic",
    "yi": "yiddish",
    "lo": "lao",
    "uz": "uzbek",
    "fo": "faroese",
    "ht": "haitian creole",
    "ps": "pashto",
    "tk": "turkmen",
    "nn": "nynorsk",
    "mt": "maltese",
    "sa": "sanskrit",
    "lb": "luxembourgish",
    "my": "myanmar",
    "bo": "tibetan",
    "tl": "tagalog",
    "mg": "malagasy",
    "as": "assamese",
    "tt": "tatar",
    "haw": "hawaiian",
    "ln": "lingala",
    "ha": "hausa",
    "ba": "bashkir",
    "jw": "javanese",
    "su": "sundanese",
    "yue": "cantonese",
}


@dataclass(frozen=True)
class TranscribeOptions:
    # decoding
    beam_size: int = option(5, low=1, high=MAX_BEAMS, whole=True, help="1 is fastest; 5 is Whisper's default")
    vad: bool = option(True, help="skip silence (Silero VAD): faster, and no words hallucinated into silence")
    # what to produce
    task: str = option(
        "transcribe", choices=TASKS, help="translate: speech in any language to English text (multilingual models)"
    )
    language: str | None = option(
        None, kind=ANY, optional=True, help="a Whisper language code (en, fr, ...); none = detect it"
    )
    word_timestamps: bool = option(False, help="also time every word")
    # steering the decoder
    initial_prompt: str = option(
        "", max_chars=MAX_PROMPT_CHARS, help="text the speech follows on from: names, spelling, style"
    )
    hotwords: str = option("", max_chars=MAX_PROMPT_CHARS, help="words likely to be said, e.g. 'Whisper, CTranslate2'")

    def verify(self) -> None:
        verify(self)
        if self.language is not None and self.language not in LANGUAGES:
            raise InputError(
                f"Unknown language {self.language!r}; use a Whisper language code such as en, fr, de "
                "or es, or None to detect it"
            )

    @property
    def prompt(self) -> str:
        """Hotwords and the initial prompt as one decoder prompt (faster-whisper puts hotwords first the same way)."""
        return " ".join(part.strip() for part in (self.hotwords, self.initial_prompt) if part.strip())
