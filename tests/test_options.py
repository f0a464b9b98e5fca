"""One way to declare options: every Options class checks its fields through the same declarations, with one
message shape, and the UI's sliders are built from those declarations. One registry names each model's class and
defaults."""

from __future__ import annotations

import inspect
from dataclasses import fields

import gradio as gr
import pytest

import pipelines
from pipelines.caption.options import CaptionOptions, RerankOptions
from pipelines.core import registry
from pipelines.core.errors import InputError
from pipelines.core.options import NUMBER, WHOLE, declarations, option
from pipelines.search.retrieval import Query, SearchOptions
from pipelines.speech.options import TranscribeOptions
from pipelines.studio import StudioOptions
from pipelines.vqa.options import AskOptions

# Each Options class, built with whatever it needs besides the option under test.
CLASSES = {
    CaptionOptions: {},
    RerankOptions: {},
    AskOptions: {},
    TranscribeOptions: {},
    SearchOptions: {},
    Query: {"text": "a red circle"},
    StudioOptions: {},
}
NUMERIC = [(cls, name) for cls in CLASSES for name, d in declarations(cls).items() if d.kind in (NUMBER, WHOLE)]
BOUNDED = [(cls, name) for cls, name in NUMERIC if declarations(cls)[name].high is not None]  # e.g. not a time budget


def refusal(cls, **values) -> str:
    with pytest.raises(InputError) as info:
        cls(**CLASSES[cls], **values).verify()
    return str(info.value)


@pytest.mark.parametrize("cls,name", NUMERIC, ids=lambda x: getattr(x, "__name__", x))
def test_a_bool_where_a_number_is_expected_is_refused_with_the_shared_message(cls, name):
    declared = declarations(cls)[name]
    noun = "a whole number" if declared.kind == WHOLE else "a number"
    assert f"{declared.what or name} must be {noun} " in refusal(cls, **{name: True})
    assert refusal(cls, **{name: True}).endswith("; got True")


@pytest.mark.parametrize("cls,name", BOUNDED, ids=lambda x: getattr(x, "__name__", x))
def test_a_value_out_of_range_is_refused_naming_the_option_the_range_and_the_value(cls, name):
    declared = declarations(cls)[name]
    too_big = declared.high + (1 if declared.kind == WHOLE else 0.5)
    message = refusal(cls, **{name: too_big})
    high = f"{declared.high}" if declared.kind == WHOLE else f"{declared.high:g}"
    assert message.startswith(f"{declared.what or name} must be ")
    assert f"{declared.low:g}" in message and f" {high};" in message and message.endswith(f"got {too_big!r}")
    cls(**CLASSES[cls], **{name: declared.low if not declared.low_open else declared.high}).verify()  # a bound: fine


@pytest.mark.parametrize("cls", CLASSES, ids=lambda c: c.__name__)
def test_every_field_is_declared_with_help_and_its_default_passes(cls):
    declared = declarations(cls)
    assert [f.name for f in fields(cls)] == list(declared)
    assert all(d.help.strip() for d in declared.values())
    for d in declared.values():
        if d.kind in (NUMBER, WHOLE) and d.high is not None:  # an open-ended one gets no slider
            low, high = d.span
            assert d.low <= low < high <= d.high  # a slider never offers a value the check refuses
    cls(**CLASSES[cls]).verify()


@pytest.mark.parametrize(
    "options,message",
    [
        (AskOptions(top_k=True), "top_k must be a whole number from 1 to 10; got True"),  # accepted before
        (
            Query(text="a", image_weight=True),
            "image_weight must be a number from 0 up to 1; got True",
        ),  # accepted before
        (CaptionOptions(num_candidates=True), "The number of candidate captions must be a whole number"),
        (StudioOptions(num_candidates=0), "num_candidates must be a whole number from 1 to 10; got 0"),
        (CaptionOptions(sample="yes"), "sample must be True or False; got 'yes'"),
        (CaptionOptions(seed=-1), "The seed must be a whole number from 0 to 4294967295; got -1"),
        (TranscribeOptions(vad=1), "vad must be True or False; got 1"),
        (TranscribeOptions(task=True), "task must be one of transcribe, translate; got True"),
        (StudioOptions(labels=None), "labels must be text; got NoneType"),
        (AskOptions(max_new_tokens=0), "max_new_tokens must be a whole number from 1 to 50; got 0"),
    ],
)
def test_the_same_shape_of_message_everywhere(options, message):
    with pytest.raises(InputError) as info:
        options.verify()
    assert message in str(info.value)


def test_none_is_accepted_only_where_declared_optional():
    CaptionOptions(num_beams=None, max_new_tokens=None, seed=None).verify()
    StudioOptions(template=None).verify()  # the search model's own template, as before
    with pytest.raises(InputError, match="The number of candidate captions .* got None"):
        CaptionOptions(num_candidates=None).verify()


def test_cross_field_rules_still_apply_after_the_declared_checks():
    with pytest.raises(InputError, match="4 candidates need at least 4 beams"):
        CaptionOptions(num_candidates=4, num_beams=2).verify()
    with pytest.raises(InputError, match="Unknown language 'klingon'"):
        TranscribeOptions(language="klingon").verify()


def test_a_progress_callback_is_an_argument_not_an_option():
    with pytest.raises(TypeError):
        TranscribeOptions(progress=print)
    with pytest.raises(InputError, match="progress must be a function taking a fraction; got int"):
        pipelines.load("transcribe")(["never decoded.wav"], progress=5)


def test_option_infers_the_kind_from_what_is_declared():
    from dataclasses import dataclass

    @dataclass(frozen=True)
    class Made:
        weight: float = option(0.5, low=0, high=1, help="a weight")
        count: int = option(2, low=1, high=3, whole=True, help="a count")
        note: str = option("", max_chars=3, help="a note")

    kinds = {name: d.kind for name, d in declarations(Made).items()}
    assert kinds == {"weight": NUMBER, "count": WHOLE, "note": "text"}
    with pytest.raises(InputError, match="note is too long: 4 characters; the limit is 3 characters. Shorten it"):
        from pipelines.core.options import verify

        verify(Made(note="four"))


# The UI: slider label -> (Options class, option) it is built from, per tab.
SLIDERS = {
    "caption": {
        "Candidates": (CaptionOptions, "num_candidates"),
        "Beams": (CaptionOptions, "num_beams"),
        "Length penalty": (CaptionOptions, "length_penalty"),
        "Top-p": (CaptionOptions, "top_p"),
        "Temperature": (CaptionOptions, "temperature"),
        "Repetition penalty": (CaptionOptions, "repetition_penalty"),
        "Min new tokens": (CaptionOptions, "min_new_tokens"),
        "Max new tokens": (CaptionOptions, "max_new_tokens"),
        "Re-ranking: CLIP weight": (RerankOptions, "clip_weight"),
    },
    "ask": {"Answers to rank": (AskOptions, "top_k")},
    "transcribe": {"Beam size": (TranscribeOptions, "beam_size")},
    "search": {"Image weight (image + text)": (Query, "image_weight"), "Results": (SearchOptions, "top_k")},
    "studio": {
        "Fusion: weight of the words (0 = image only)": (StudioOptions, "text_weight"),
        "Images per search": (StudioOptions, "top_k"),
    },
}


@pytest.mark.parametrize("tab", SLIDERS)
def test_the_tabs_sliders_are_built_from_the_declarations(tab):
    module = __import__(f"demos.{tab}", fromlist=["build"])
    with gr.Blocks() as demo:
        module.build()
    sliders = {block.label: block for block in demo.blocks.values() if isinstance(block, gr.Slider)}
    for label, (cls, name) in SLIDERS[tab].items():
        declared = declarations(cls)[name]
        slider = sliders[label]
        assert (slider.minimum, slider.maximum, slider.step) == (*declared.span, declared.increment), label
        assert slider.info == declared.help


def test_the_caption_tabs_start_values_are_the_default_models_registry_defaults():
    from demos import caption

    defaults = registry.defaults(registry.resolve("caption", None, pipelines.core.runtime.settings().profile))
    initial = caption.Controls.initial()
    assert (initial.beams, initial.max_new_tokens) == (defaults["num_beams"], defaults["max_new_tokens"])
    with gr.Blocks():
        controls, _, _ = caption.option_controls(initial)
    assert list(controls) == [f.name for f in fields(caption.Controls)]  # the API's parameters follow the inputs
    assert (controls["beams"].value, controls["max_new_tokens"].value) == (initial.beams, initial.max_new_tokens)
    api = inspect.signature(caption.spread(caption.caption, initial)).parameters
    assert list(api) == ["image", *(f.name for f in fields(caption.Controls))]
    assert (api["beams"].default, api["max_new_tokens"].default) == (initial.beams, initial.max_new_tokens)


def test_each_family_names_one_class_that_serves_its_task():
    for task in registry.tasks():
        for family, entry in registry.families(task).items():
            cls = pipelines.pipeline_class(registry.ModelSpec(task, "x", family, "x"))
            assert registry.family_served_by(task, cls) == family
        for name in registry.available_models(task):
            assert registry.resolve(task, name, "toy").backend in registry.families(task)


def test_a_model_gets_its_familys_defaults_and_its_entrys_own_on_top():
    vit = registry.resolve("caption", "vit-gpt2", "toy")
    assert registry.defaults(vit) == {"num_beams": 4, "max_new_tokens": 15}
    own = registry.ModelSpec("caption", "mine", "blip", "x", own_defaults=(("num_beams", 7),))
    assert registry.defaults(own) == {"num_beams": 7, "max_new_tokens": 30}
    assert registry.defaults(registry.resolve("caption", "someone/captioner", "toy")) == {}  # family not known yet


def test_an_unknown_family_is_named_with_the_known_ones():
    with pytest.raises(pipelines.UnknownModelError, match="blip, vision-encoder-decoder"):
        registry.family("caption", "no-such-family")


def test_the_zero_shot_template_is_the_search_familys_own():
    from pipelines.search.classify import DEFAULT_TEMPLATE, classifier

    spec = registry.resolve("search", None, pipelines.core.runtime.settings().profile)
    assert classifier().template == registry.defaults(spec)["template"] == DEFAULT_TEMPLATE == "a photo of a {}"
    space = classifier().space
    mine = type(classifier())(space, template="a drawing of a {}")
    image = space.embed_texts(["a drawing of a red circle"])  # a text vector stands in for an image here
    given = mine.classify_vectors(image, ["red circle", "blue square"], "a drawing of a {}")
    assert mine.classify_vectors(image, ["red circle", "blue square"]) == given  # no template: the classifier's own
