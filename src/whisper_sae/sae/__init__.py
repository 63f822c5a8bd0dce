"""Sparse autoencoders over Whisper activations: the model, its SAELens-layout files, and the trainer."""

from .config import ARCHITECTURES, SAEConfig
from .io import convert_original, load_pretrained, save_pretrained
from .member import SAESpec
from .model import SAEOutput, SparseAutoencoder
from .trainer import TrainConfig, TrainingError, fit
from .training import train, train_specs

__all__ = [
    "ARCHITECTURES", "SAEConfig", "SAEOutput", "SparseAutoencoder", "convert_original", "load_pretrained",
    "save_pretrained", "SAESpec", "TrainConfig", "TrainingError", "fit", "train", "train_specs",
]
