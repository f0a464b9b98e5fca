"""The alternatives a question names: 'is it a cat or a dog?' -> ['cat', 'dog'] (zero-shot labels to tell apart).

A question that offers a choice puts a lead-in before the first alternative ('is it', 'if it's', 'does the picture
show', 'a photo of') and may repeat it before the others ('... or is it a dog'); alternatives are split at 'or',
'and' and commas, and each loses its lead-in and articles. Fewer than two alternatives: the words name no choice.
"""

from __future__ import annotations

import re

# Lead-ins before an alternative: a question word or 'if'/'whether' up to its subject, then the verb that names it.
_SUBJECT = r"(?:it|this|that|there|these|those|they|he|she|you|we|i|the (?:image|picture|photo|thing|animal|object))"
_LEAD = re.compile(
    r"^(?:(?:so|and|but|well|now|ok|okay|maybe|perhaps|rather|either)\s+)*"
    r"(?:(?:is|are|was|were|if|whether|does|do|did|can|could|would|will|should|tell me|guess)\b[\w\s']*?"
    rf"\b{_SUBJECT}(?:'s|'re)?\b\s*)?"
    r"(?:(?:is|are|shows?|contains?|depicts?|see|have|has|looks? like|showing)\b\s*)*"
)
_PICTURE_OF = re.compile(r"^(?:(?:a|an|the)\s+)?(?:photo|picture|image|drawing)\s+of\s+")
_ARTICLE = re.compile(r"^(?:(?:a|an|the|some|one)\s+)+")
_WHERE = re.compile(r"\s+(?:in|on) (?:the|this) (?:photo|picture|image)$")


def alternatives(words: str) -> list[str]:
    """The choices in a sentence: 'is it a red circle or a blue square?' -> ['red circle', 'blue square'];
    "if it's a cat or a dog" -> ['cat', 'dog']; no choice named -> []."""
    text = words.lower().replace("’", "'")
    parts = re.split(r",|;|\bor\b|\band\b", text)
    choices = []
    for part in parts:
        phrase = " ".join(re.findall(r"[\w'-]+", part))
        phrase = _PICTURE_OF.sub("", _ARTICLE.sub("", _LEAD.sub("", phrase)))
        phrase = _WHERE.sub("", _ARTICLE.sub("", _PICTURE_OF.sub("", phrase))).strip(" '-")
        if phrase:
            choices.append(phrase)
    return choices if len(choices) >= 2 else []
