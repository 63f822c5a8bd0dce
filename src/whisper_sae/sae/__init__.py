"""Sparse autoencoders over Whisper activations: the model, its SAELens-layout files, and the trainer.

Where things live:

- ``architectures/``: one module per architecture (relu, topk, batchtopk, jumprelu) holding all that
  architecture is (activation, threshold, loss, dead-feature handling, options, SAELens name), and the
  registry. **To add an architecture, add one file in ``sae/architectures/`` and register it** in
  ``architectures/__init__.py``; nothing else needs to change.
- ``config.py`` (``SAEConfig``), ``model.py`` (the one ``SparseAutoencoder`` class), ``io.py`` (SAE
  folders: cfg.json + sae_weights.safetensors, original ``.pth`` conversion), ``kernels.py`` (sparse TopK
  autograd kernels).
- Training: ``train_config.py`` (``TrainConfig``, ``StoreConfig``: every default, torch-free),
  ``trained_sae.py`` (``SAESpec``, ``TrainedSAE``: one SAE inside a pass), ``loop.py`` (``fit``: the loop,
  records, checkpoints, folder lock), ``checkpoint.py`` (safetensors + JSON checkpoints),
  ``store_training.py`` (``train`` / ``train_specs``: from an activation store), ``report.py`` (metrics
  and plots).

Names are imported from their modules on first use, so ``whisper_sae.sae.train_config`` and the
architecture registry load without torch (the CLI builds its flags from them).
"""

from whisper_sae._lazy import lazy_exports

_EXPORTS = {
    "ARCHITECTURES": "architectures",
    "get_architecture": "architectures",
    "SAEConfig": "config",
    "SAEOutput": "model",
    "SparseAutoencoder": "model",
    "convert_original": "io",
    "load_pretrained": "io",
    "save_pretrained": "io",
    "SAESpec": "trained_sae",
    "TrainedSAE": "trained_sae",
    "TrainConfig": "train_config",
    "StoreConfig": "train_config",
    "TrainingError": "loop",
    "fit": "loop",
    "CheckpointError": "checkpoint",
    "train": "store_training",
    "train_specs": "store_training",
}

__all__ = sorted(_EXPORTS)
__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS)
