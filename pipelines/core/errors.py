"""The project's error types. Each message says what went wrong and what to do about it."""


class PipelineError(Exception):
    """Base class: anything a user can fix by changing their input or their setup."""


class InputError(PipelineError, ValueError):
    """The user's input (image, audio, text, option) cannot be used as given."""


class ModelLoadError(PipelineError, RuntimeError):
    """A model could not be loaded; the message names the model, the cause and the fix."""

    def __init__(self, model: str, cause: str, fix: str):
        self.model, self.cause, self.fix = model, cause, fix
        super().__init__(f"Could not load model '{model}': {cause}. {fix}")


class UnknownModelError(PipelineError, KeyError):
    """A model or task name that the registry does not know; the message lists the valid names."""

    def __str__(self) -> str:  # KeyError would repr() the message
        return str(self.args[0])
