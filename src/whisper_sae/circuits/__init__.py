"""Circuits: which parts of Whisper turn sound into which words.

Where it sits in the flow: after ``evaluate`` (which asks whether an SAE is faithful), this package
asks how Whisper itself computes its transcript, with the named hook points of ``whisper/`` (the
residual stream after each block, and inside blocks: attention and MLP outputs, the MLP's input) and
the corpora of ``audio/``. The lenses read no activation store and no SAE: their numbers come from
running Whisper on audio; attribution and replacement run Whisper with a dictionary spliced in.

- ``lens``: layer lenses. The encoder lens decodes each encoder layer's residual stream as if it were
  the encoder's output (after the final layer norm): at which depth the transcript becomes readable.
  The logit lens reads each decoder block's residual through the final layer norm and the output
  projection, teacher-forced on the reference: top-1 accuracy and cross-entropy per block.
- ``attribution``: which SAE features, at which frames, push Whisper toward one token of its transcript
  (gradient × activation with the SAE spliced in, error term kept), and how well that predicts real
  ablations (``ablation_check``).
- ``replacement``: transcoders and crosscoders (``sae/``) spliced into Whisper, and their WER / CE.
- ``hallucination``: how often Whisper writes words for audio that holds none (the non-speech corpus
  of ``audio.nonspeech``), optionally with SAE features steered.
- ``hallucination_features``: the SAE features that fire when Whisper hallucinates (the exception to
  "no SAE" above: it ranks an SAE's features), and the steering spec that ablates or clamps them.
- ``steering``: ``SteeringSpec``, the small JSON file of features and values that ``intervene``,
  ``hallucination_rate`` and ``steered_wer`` (WER on speech with a spec applied) read.

Names are imported on first use, so that importing the package does not load ``transformers``.
"""

from whisper_sae._lazy import lazy_exports

_EXPORTS = {
    "LensResult": "lens",
    "encoder_lens": "lens",
    "lens_items": "lens",
    "Attribution": "attribution",
    "attribute": "attribution",
    "ablation_check": "attribution",
    "evaluate_replacement": "replacement",
    "spliced": "replacement",
    "HallucinationResult": "hallucination",
    "hallucination_rate": "hallucination",
    "FeatureSelection": "hallucination_features",
    "select_hallucination_features": "hallucination_features",
    "rank_features": "hallucination_features",
    "SteeringSpec": "steering",
    "steered_transcripts": "steering",
    "steered_wer": "steering",
}
__all__ = sorted(_EXPORTS)
__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS)
