"""The one way options are declared and checked: each dataclass field says its kind, range and help once, in its
metadata (``option(...)``); ``verify`` checks every declared field with one message shape; the UI builds its
sliders from the same declarations. Imports no torch, so the UI can read them before any model loads.

    @dataclass(frozen=True)
    class AskOptions:
        top_k: int = option(5, low=1, high=10, whole=True, help="ranked answers per question")

        def verify(self) -> None:
            verify(self)          # every declared field; then this class's rules across fields
"""

from __future__ import annotations

from dataclasses import MISSING, dataclass, field, fields
from typing import Any

from .errors import InputError
from .limits import TEXT_LIMIT, check_text

NUMBER, WHOLE, TEXT, CHOICE, FLAG, ANY = "number", "whole number", "text", "choice", "flag", "any"


@dataclass(frozen=True)
class Declared:
    """What one option accepts, and how a control for it looks."""

    kind: str  # one of NUMBER, WHOLE, TEXT, CHOICE, FLAG, ANY (checked by the class's own rules)
    help: str  # one line a user reads beside the control
    what: str = ""  # the option as messages name it (default: the field's name)
    low: float | None = None
    high: float | None = None
    low_open: bool = False  # the low bound itself is refused (e.g. a temperature of 0)
    optional: bool = False  # None is accepted (it means "the model's default" or "none")
    choices: tuple = ()
    max_chars: int | str | None = None  # a number, or TEXT_LIMIT: the text limit in force when checked
    slider: tuple[float, float] | None = None  # the control's span, inside [low, high] (default: all of it)
    step: float | None = None  # the control's step (default: 1 for whole numbers)

    @property
    def span(self) -> tuple[float, float]:
        """(minimum, maximum) of a slider for this option."""
        return self.slider if self.slider is not None else (self.low, self.high)

    @property
    def increment(self) -> float:
        return self.step if self.step is not None else 1


def option(
    default: Any = MISSING,
    *,
    help: str,
    what: str = "",
    low: float | None = None,
    high: float | None = None,
    whole: bool = False,
    low_open: bool = False,
    optional: bool = False,
    choices: tuple = (),
    max_chars: int | str | None = None,
    flag: bool = False,
    kind: str | None = None,
    slider: tuple[float, float] | None = None,
    step: float | None = None,
    default_factory: Any = MISSING,
):
    """A dataclass field that declares what it accepts.

    ``low``/``high`` make it a number (``whole=True``: an int), ``choices`` one of them, ``max_chars`` (or a str
    default) text (``max_chars=TEXT_LIMIT``: the text limit in force, MM_MAX_TEXT_CHARS, read when checked),
    ``flag`` True or False; ``kind=ANY`` leaves the check to the class's ``verify``.
    """
    if kind is None:
        if flag or isinstance(default, bool):
            kind = FLAG
        elif choices:
            kind = CHOICE
        elif low is not None or high is not None:
            kind = WHOLE if whole else NUMBER
        elif max_chars is not None or isinstance(default, str):
            kind = TEXT
        else:
            kind = ANY
    declared = Declared(kind, help, what, low, high, low_open, optional, tuple(choices), max_chars, slider, step)
    return field(default=default, default_factory=default_factory, metadata={"option": declared})


def declarations(options_class: type) -> dict[str, Declared]:
    """{field name: its declaration} for every declared field of an Options class (or instance), in order."""
    return {f.name: f.metadata["option"] for f in fields(options_class) if "option" in f.metadata}


def verify(options: Any) -> None:
    """Check every declared field of ``options``; raises InputError naming the option, what it accepts and the value."""
    for name, declared in declarations(options).items():
        check(declared, getattr(options, name), declared.what or name)


def check(declared: Declared, value: Any, what: str) -> None:
    """Refuse ``value`` unless ``declared`` accepts it (bools are never numbers; None only where optional)."""
    if value is None and declared.optional:
        return
    kind = declared.kind
    if kind in (WHOLE, NUMBER):
        is_number = isinstance(value, int) if kind == WHOLE else isinstance(value, (int, float))
        low, high = declared.low, declared.high
        inside = (
            is_number
            and not isinstance(value, bool)
            and (low is None or (low < value if declared.low_open else low <= value))
            and (high is None or value <= high)
        )
        if not inside:
            raise InputError(f"{what} must be {_range(declared)}; got {value!r}")
    elif kind == FLAG and not isinstance(value, bool):
        raise InputError(f"{what} must be True or False; got {value!r}")
    elif kind == CHOICE and (isinstance(value, bool) or value not in declared.choices):
        raise InputError(f"{what} must be one of {', '.join(map(str, declared.choices))}; got {value!r}")
    elif kind == TEXT:
        if not isinstance(value, str):
            raise InputError(f"{what} must be text; got {type(value).__name__}")
        if declared.max_chars is not None:  # the one refusal of a too-long text (limits.check_text)
            check_text(what, value, None if declared.max_chars == TEXT_LIMIT else declared.max_chars)


def _range(declared: Declared) -> str:
    """'a whole number from 1 to 10', 'a number more than 0 up to 1', ..."""
    if declared.kind == WHOLE:
        noun, low, high = "a whole number", declared.low, declared.high
        return f"{noun} from {low} to {high}" if None not in (low, high) else f"{noun} from {low}"
    start = f"more than {declared.low:g}" if declared.low_open else f"from {declared.low:g}"
    return f"a number {start}" + (f" up to {declared.high:g}" if declared.high is not None else "")
