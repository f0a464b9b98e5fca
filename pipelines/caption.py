"""Image captioning: BLIP and the ViT-GPT2 (VisionEncoderDecoder) family behind one interface."""

from __future__ import annotations

from dataclasses import dataclass

import torch

from .base import Pipeline
from .errors import InputError
from .hf import HF_FILES, load_part, load_pretrained, sequence_scores
from .io import load_image
from .registry import ModelSpec

MAX_NEW_TOKENS = 100  # upper bound a user may ask for
MAX_BEAMS = 10


@dataclass(frozen=True)
class CaptionOptions:
    num_beams: int = 3  # beam search width; 1 = greedy
    max_new_tokens: int = 30
    prefix: str = ""  # conditional captioning: the caption continues this text (BLIP only)

    def verify(self) -> None:
        if not isinstance(self.num_beams, int) or not 1 <= self.num_beams <= MAX_BEAMS:
            raise InputError(f"num_beams must be a whole number from 1 to {MAX_BEAMS}; got {self.num_beams!r}")
        if not isinstance(self.max_new_tokens, int) or not 1 <= self.max_new_tokens <= MAX_NEW_TOKENS:
            raise InputError(f"max_new_tokens must be from 1 to {MAX_NEW_TOKENS}; got {self.max_new_tokens!r}")


@dataclass(frozen=True)
class Caption:
    text: str
    score: float | None  # beam search's length-normalised log-probability; None for greedy decoding


class Captioner(Pipeline):
    """Images in (paths, bytes, PIL images or arrays), one Caption each out."""

    Options = CaptionOptions
    hub_files = HF_FILES
    model_class_name: str  # the transformers class that holds this family

    def __init__(self, spec: ModelSpec, device: torch.device, dtype: torch.dtype, model, processor):
        super().__init__(spec, device, dtype)
        self.model, self.processor = model, processor

    @classmethod
    def load(cls, spec: ModelSpec, device: torch.device, dtype: torch.dtype) -> "Captioner":
        import transformers

        model, path = load_pretrained(spec, getattr(transformers, cls.model_class_name), device, dtype)
        return cls(spec, device, dtype, model, cls.load_processor(spec, path))

    @classmethod
    def load_processor(cls, spec: ModelSpec, path):
        raise NotImplementedError

    def preprocess(self, images: list, options: CaptionOptions) -> dict[str, torch.Tensor]:
        inputs = self.encode([load_image(image) for image in images], options)
        inputs["pixel_values"] = inputs["pixel_values"].to(self.dtype)
        return {name: value.to(self.device) for name, value in inputs.items()}

    def encode(self, images: list, options: CaptionOptions) -> dict[str, torch.Tensor]:
        raise NotImplementedError

    def _forward(self, inputs: dict[str, torch.Tensor], options: CaptionOptions):
        return self.model.generate(**inputs, num_beams=options.num_beams, max_new_tokens=options.max_new_tokens,
                                   output_scores=True, return_dict_in_generate=True)

    def postprocess(self, outputs, inputs, options: CaptionOptions) -> list[Caption]:
        texts = self.decode(outputs.sequences)
        scores = sequence_scores(outputs, len(texts))
        return [Caption(" ".join(text.split()), score) for text, score in zip(texts, scores)]

    def decode(self, sequences: torch.Tensor) -> list[str]:
        return self.processor.batch_decode(sequences, skip_special_tokens=True)


class BlipCaptioner(Captioner):
    model_class_name = "BlipForConditionalGeneration"

    @classmethod
    def load_processor(cls, spec, path):
        from transformers import BlipProcessor

        return load_part(spec, path, BlipProcessor)

    def encode(self, images, options):
        if options.prefix.strip():
            prefixes = [options.prefix.strip()] * len(images)
            return dict(self.processor(images=images, text=prefixes, return_tensors="pt"))
        return dict(self.processor(images=images, return_tensors="pt"))


class VisionEncoderDecoderCaptioner(Captioner):
    """ViT-GPT2 and kin: an image processor for the encoder, a tokenizer for the decoder's output."""

    model_class_name = "VisionEncoderDecoderModel"

    @classmethod
    def load_processor(cls, spec, path):
        from transformers import AutoImageProcessor, AutoTokenizer

        return load_part(spec, path, AutoImageProcessor), load_part(spec, path, AutoTokenizer)

    def encode(self, images, options):
        if options.prefix.strip():
            raise InputError(f"The model '{self.spec.name}' cannot continue a text prefix; clear the prefix, "
                             "or choose a BLIP captioner")
        image_processor, _ = self.processor
        return {"pixel_values": image_processor(images=images, return_tensors="pt")["pixel_values"]}

    def decode(self, sequences):
        _, tokenizer = self.processor
        return tokenizer.batch_decode(sequences, skip_special_tokens=True)
