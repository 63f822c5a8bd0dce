"""Named hook points on a ``transformers`` Whisper: read (``capture``) or rewrite (``patch``) activations.

Names: ``encoder.blocks.N`` (residual stream after block N, 0-based), ``encoder.out`` (after the
encoder's final layer norm), ``decoder.blocks.N``, ``decoder.out``. They are derived from the
config, so every Whisper size has them.

Inside a block (for circuits: what each sublayer writes into the residual stream, and what the MLP
reads): ``{side}.blocks.N.attn_out`` (self-attention after out_proj, before the residual add),
``{side}.blocks.N.mlp_in`` (the MLP's input: the block's final_layer_norm output, what fc1 reads),
``{side}.blocks.N.mlp_out`` (fc2's output, before the residual add) and, in decoder blocks only,
``decoder.blocks.N.cross_attn_out`` (cross-attention to the audio, before the residual add). Every
hook point is d_model wide. Each is the output of one submodule, so ``capture`` and ``patch`` work the
same way for them as for whole blocks, in a plain forward pass and in ``generate()``.
"""

from __future__ import annotations

import contextlib
import math
import re
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from typing import Literal

import torch
from torch import nn

from whisper_sae.audio.constants import FRAMES_PER_SECOND, FRAMES_PER_WINDOW, SAMPLE_RATE

_NAME = re.compile(r"^(encoder|decoder)\.(?:blocks\.(\d+)(?:\.(\w+))?|(out))$")
# Sub-block hook → the submodule of a WhisperEncoderLayer / WhisperDecoderLayer whose output it is.
SUB_MODULES = {
    "attn_out": "self_attn",
    "cross_attn_out": "encoder_attn",
    "mlp_in": "final_layer_norm",
    "mlp_out": "fc2",
}
SUB_HOOKS = {
    "encoder": ("attn_out", "mlp_in", "mlp_out"),
    "decoder": ("attn_out", "cross_attn_out", "mlp_in", "mlp_out"),
}


class UnknownHookError(ValueError):
    """A hook name the model does not have; the message lists the valid ones."""


def _config(obj):
    """The WhisperConfig of a config, model or LoadedWhisper."""
    return obj if hasattr(obj, "encoder_layers") else obj.config


def _core(obj) -> nn.Module:
    """The ``WhisperModel`` (with ``.encoder`` and ``.decoder``) inside a LoadedWhisper or a Whisper model."""
    module = obj
    for _ in range(3):
        if hasattr(module, "encoder") and hasattr(module, "decoder"):
            return module
        module = getattr(module, "model", None)
    raise TypeError(
        f"{type(obj).__name__} is not a Whisper model: expected a LoadedWhisper, "
        "WhisperForConditionalGeneration or WhisperModel."
    )


def valid_hook_names(config, *, sub_blocks: bool = True) -> list[str]:
    """Every hook name of a model with this config (or of this model / LoadedWhisper), block by block;
    ``sub_blocks=False`` leaves out the hooks inside blocks (``encoder.blocks.N.mlp_out`` and the like)."""
    config = _config(config)
    names = []
    for side, n_layers in (("encoder", config.encoder_layers), ("decoder", config.decoder_layers)):
        for i in range(n_layers):
            names.append(f"{side}.blocks.{i}")
            names += [f"{side}.blocks.{i}.{sub}" for sub in SUB_HOOKS[side]] if sub_blocks else []
        names.append(f"{side}.out")
    return names


def _valid_hooks_text(config) -> str:
    """The valid names for an error message: every block-level name, then the sub-block pattern."""
    inside = "; ".join(f"{side}.blocks.N.{{{', '.join(subs)}}}" for side, subs in SUB_HOOKS.items())
    return f"{', '.join(valid_hook_names(config, sub_blocks=False))}; inside each block N: {inside}"


@dataclass(frozen=True)
class HookPoint:
    """One place in the model; ``layer`` is None for ``.out`` (after the final layer norm); ``sub`` names
    a point inside block ``layer`` (``attn_out``, ``cross_attn_out``, ``mlp_in``, ``mlp_out``), None for
    the block's output (the residual stream)."""

    name: str
    side: Literal["encoder", "decoder"]
    layer: int | None
    sub: str | None = None

    @classmethod
    def parse(cls, name: str | HookPoint, config) -> HookPoint:
        if isinstance(name, HookPoint):
            name = name.name
        config = _config(config)
        match = _NAME.match(str(name))
        n_layers = {"encoder": config.encoder_layers, "decoder": config.decoder_layers}
        if (
            match is None
            or (match.group(2) is not None and int(match.group(2)) >= n_layers[match.group(1)])
            or (match.group(3) is not None and match.group(3) not in SUB_HOOKS[match.group(1)])
        ):
            raise UnknownHookError(
                f"Unknown hook {name!r} for this model ({config.encoder_layers} encoder and "
                f"{config.decoder_layers} decoder blocks); valid hooks: {_valid_hooks_text(config)}."
            )
        side, layer, sub, _ = match.groups()
        if layer is None:
            return cls(name=f"{side}.out", side=side, layer=None)
        name = f"{side}.blocks.{int(layer)}" + (f".{sub}" if sub else "")  # canonical: no leading zeros
        return cls(name=name, side=side, layer=int(layer), sub=sub)

    @property
    def kind(self) -> Literal["frame", "token"]:
        """Encoder hooks give one row per 20-ms frame, decoder hooks one per token."""
        return "frame" if self.side == "encoder" else "token"

    def blocks_needed(self, config) -> int:
        """How many blocks of its side must run before this point's activation exists."""
        config = _config(config)
        total = config.encoder_layers if self.side == "encoder" else config.decoder_layers
        return total if self.layer is None else self.layer + 1

    def module(self, model) -> nn.Module:
        """The submodule whose output is this hook's activation."""
        stack = getattr(_core(model), self.side)
        if self.layer is None:
            return stack.layer_norm
        block = stack.layers[self.layer]
        return block if self.sub is None else getattr(block, SUB_MODULES[self.sub])


def frames_for_duration(seconds: float, max_frames: int = FRAMES_PER_WINDOW) -> int:
    """Encoder positions covering ``seconds`` of real audio (the rest of the 30-s window is padding)."""
    # round() first so that e.g. 2.0 s gives 100 frames despite floating-point error in seconds * 50.
    return min(max_frames, math.ceil(round(seconds * FRAMES_PER_SECOND, 6)))


def _parse_all(hooks: str | HookPoint | Iterable[str | HookPoint], config) -> list[HookPoint]:
    if isinstance(hooks, (str, HookPoint)):
        hooks = [hooks]
    return [HookPoint.parse(h, config) for h in hooks]


def _output_tensor(output) -> torch.Tensor:
    # transformers 5 blocks return a tensor; older versions return a tuple whose first item is it.
    return output[0] if isinstance(output, tuple) else output


@contextlib.contextmanager
def capture(model, hooks, *, detach: bool = True) -> Iterator[dict[str, torch.Tensor]]:
    """Collect activations [B, T, d] at ``hooks`` during any forward pass inside the block.

    Repeated calls of a hooked module (as in ``generate()`` with a KV cache, one position per step) are
    concatenated along T, so the dict holds the whole sequence at the end.
    """
    points = _parse_all(hooks, _config(model))
    store: dict[str, torch.Tensor] = {}

    def make_hook(name: str):
        def hook(module, args, output):
            acts = _output_tensor(output)
            acts = acts.detach() if detach else acts
            store[name] = torch.cat([store[name], acts], dim=1) if name in store else acts

        return hook

    handles = [p.module(model).register_forward_hook(make_hook(p.name)) for p in points]
    try:
        yield store
    finally:
        for handle in handles:
            handle.remove()


@contextlib.contextmanager
def patch(model, hook: str | HookPoint, fn: Callable[[torch.Tensor], torch.Tensor]) -> Iterator[None]:
    """Replace the activation at ``hook`` by ``fn(acts)`` ([B, T, d] → [B, T, d]) in every forward pass.

    With a KV cache (``generate()``), decoder hooks see T = 1 per step: ``fn`` must work position-wise.
    """
    point = HookPoint.parse(hook, _config(model))

    def replace(module, args, output):
        acts = _output_tensor(output)
        new = fn(acts)
        if not isinstance(new, torch.Tensor) or new.shape != acts.shape:
            raise ValueError(
                f"The patch function for {point.name} must return a tensor of shape "
                f"{tuple(acts.shape)}, got {getattr(new, 'shape', type(new).__name__)}."
            )
        new = new.to(acts.dtype)
        return (new, *output[1:]) if isinstance(output, tuple) else new

    handle = point.module(model).register_forward_hook(replace)
    try:
        yield
    finally:
        handle.remove()


def _check_side(points: list[HookPoint], side: str, function: str) -> None:
    wrong = [p.name for p in points if p.side != side]
    if wrong:
        raise ValueError(
            f"{function} computes {side} hooks only; got {wrong}. Use "
            f"{'run_decoder_teacher_forced' if side == 'encoder' else 'run_encoder'} for those."
        )


# Rows of the deepest block's MLP computed at once on a CPU. The block's MLP widens each row to
# ffn_dim (4 x d_model): done for all rows at once, that intermediate is megabytes per window, which
# the allocator hands back to the OS and page-faults in again each batch, and it falls out of cache
# between fc1, GELU and fc2. In blocks of rows it stays in cache and in the allocator's free lists.
# Layer norm, the MLP and the residual are row-wise, so blocking is the same function; but matmuls of
# other shapes round differently (up to ~1e-6), which moved 4 in a million of the demo store's fp16
# values by one step and, through SAE training, its spliced WER (42.6 % -> 39.4 %). So it is off by
# default (None: the whole block at once, bit for bit the store of before); 256 is the size that
# removed the page faults in a loaded run (benchmarks/results/extract-avx512.txt), not yet timed quietly.
CPU_MLP_ROWS: int | None = None


def _block_rows(layer: nn.Module, x: torch.Tensor, rows: int) -> torch.Tensor:
    """Encoder block ``layer`` on x [B, T, d], computed for output rows ``:rows`` only: queries, the
    residual and the MLP on those rows, keys and values from all T rows. Each kept row is the same
    function of x as in the full block (the block mixes rows only through attention's keys/values).
    On a CPU with ``CPU_MLP_ROWS`` set, the MLP runs over blocks of that many rows (split over the batch)."""
    h = layer.self_attn_layer_norm(x)
    attn, _ = layer.self_attn(hidden_states=h[:, :rows], key_value_states=h)  # no cache: k, v from h
    y = x[:, :rows] + attn
    step = rows if x.device.type != "cpu" or CPU_MLP_ROWS is None else max(16, CPU_MLP_ROWS // x.shape[0])
    if step >= rows:
        y = y + layer.fc2(layer.activation_fn(layer.fc1(layer.final_layer_norm(y))))
    else:
        out = torch.empty_like(y)
        for s in range(0, rows, step):
            part = y[:, s : s + step]
            out[:, s : s + step] = part + layer.fc2(layer.activation_fn(layer.fc1(layer.final_layer_norm(part))))
        y = out
    if y.dtype == torch.float16:  # what WhisperEncoderLayer does to fp16 outputs
        limit = torch.finfo(y.dtype).max - 1000
        y = y.clamp(-limit, limit)
    return y


def _hooked(module: nn.Module) -> bool:
    # Sub-block hooks (attn_out, mlp_in, mlp_out) sit on submodules: they too must see the whole block run.
    return any(m._forward_hooks or m._forward_pre_hooks for m in module.modules())


def _encoder_blocks(
    encoder: nn.Module, features: torch.Tensor, n_blocks: int, wanted: dict[int, str], rows: int | None = None
):
    """WhisperEncoder.forward's computation, stopped after ``n_blocks`` blocks; yields (name, acts).
    With ``rows``, the last block computes only its first ``rows`` output rows (see ``_block_rows``),
    unless a hook (``patch``/``capture``) sits on it and must see the whole block run."""
    x = nn.functional.gelu(encoder.conv1(features))
    x = nn.functional.gelu(encoder.conv2(x)).permute(0, 2, 1)
    positions = torch.arange(encoder.embed_positions.num_embeddings, device=x.device)
    # permute leaves x (and, through the residual adds, every block's output) in [B, d, T] memory order;
    # contiguous rows make the row slices below views and the blocks' matmuls read rows directly.
    x = (x + encoder.embed_positions(positions)).contiguous()
    for i in range(n_blocks):
        layer = encoder.layers[i]
        if i == n_blocks - 1 and rows is not None and rows < x.shape[1] and not _hooked(layer):
            x = _block_rows(layer, x, rows)
        else:
            x = _output_tensor(layer(x, None))
        if i in wanted:
            yield wanted[i], x
    if -1 in wanted:
        yield wanted[-1], encoder.layer_norm(x)


def run_encoder(
    lw,
    features: torch.Tensor,
    hooks,
    *,
    stop_after_deepest: bool = True,
    autocast_dtype: torch.dtype | None = None,
    rows: int | None = None,
) -> dict[str, torch.Tensor]:
    """Encoder activations {name: [B, 1500, d] float32} for log-mel ``features`` [B, n_mels, 3000].

    With ``stop_after_deepest`` only the blocks up to the deepest requested hook run. ``patch`` contexts
    around the call apply, since the same block modules are called. ``rows``: only frames ``:rows`` of
    the result are wanted (e.g. an utterance's real frames); every tensor returned then has ``rows``
    frames, and the deepest block (with ``stop_after_deepest``) computes only those, which is the same
    computation for them: keys and values still come from all 1500 frames.
    """
    config = _config(lw)
    points = _parse_all(hooks, config)
    _check_side(points, "encoder", "run_encoder")
    encoder = _core(lw).encoder
    expected = config.max_source_positions * 2
    if features.ndim != 3 or features.shape[1:] != (config.num_mel_bins, expected):
        raise ValueError(
            f"Features must be [batch, {config.num_mel_bins}, {expected}] (a padded 30-s window), "
            f"got {tuple(features.shape)}."
        )
    n_blocks = max(p.blocks_needed(config) for p in points) if stop_after_deepest else config.encoder_layers
    wanted = {(-1 if p.layer is None else p.layer): p.name for p in points if p.sub is None}
    param = next(encoder.parameters())
    features = features.to(device=param.device, dtype=param.dtype if autocast_dtype is None else features.dtype)
    autocast = (
        torch.autocast(device_type=param.device.type, dtype=autocast_dtype)
        if autocast_dtype is not None
        else contextlib.nullcontext()
    )
    if rows is not None and not 0 < rows <= config.max_source_positions:
        raise ValueError(f"rows must be 1 to {config.max_source_positions} frames, got {rows}")
    trim = rows if stop_after_deepest else None
    # Sub-block hooks (e.g. encoder.blocks.1.mlp_out) are read by ``capture`` on their submodules while
    # the blocks run; a captured block then runs whole (see _hooked), so they hold all frames before the cut.
    inside = [p for p in points if p.sub is not None]
    with torch.no_grad(), autocast, capture(lw, inside) as sub_acts:
        result = dict(_encoder_blocks(encoder, features, n_blocks, wanted, trim))
    result.update(sub_acts)
    return {p.name: result[p.name][:, :rows].float() for p in points}


def encode_clips(lw, audios, hook: str) -> list[torch.Tensor]:
    """Activations [T_i, d] at encoder ``hook`` of each 16-kHz clip (at most 30 s, on Whisper's padded
    window), real-audio frames only. The deepest block computes just those rows (see ``run_encoder``)."""
    frames = [frames_for_duration(len(a) / SAMPLE_RATE) for a in audios]
    acts = run_encoder(lw, lw.log_mel(list(audios)), [hook], rows=max(max(frames), 1))[hook]
    return [acts[i, :n] for i, n in enumerate(frames)]


def run_decoder_teacher_forced(
    lw,
    encoder_hidden: torch.Tensor,
    token_ids: list[list[int]],
    hooks,
    *,
    pad_id: int | None = None,
    return_logits: bool = False,
) -> dict[str, torch.Tensor]:
    """Decoder activations {name: [B, T_max, d]} with the given tokens as input (teacher forcing).

    Row b, position t is the activation at ``token_ids[b][t]`` (prompt, then text, then end token, as
    given); shorter sequences are right-padded, and causal attention keeps padding out of real positions.
    ``return_logits`` adds ``"logits"`` [B, T_max, vocab] (the prediction of the next token).
    """
    config = _config(lw)
    points = _parse_all(hooks, config)
    _check_side(points, "decoder", "run_decoder_teacher_forced")
    longest = max((len(t) for t in token_ids), default=0)
    if longest == 0 or longest > config.max_target_positions:
        raise ValueError(
            f"Token sequences must hold 1 to {config.max_target_positions} tokens; the longest has {longest}."
        )
    if encoder_hidden.shape[0] != len(token_ids):
        raise ValueError(f"{encoder_hidden.shape[0]} encoder outputs but {len(token_ids)} token sequences.")
    core = _core(lw)
    param = next(core.decoder.parameters())
    pad = config.eos_token_id if pad_id is None else pad_id
    ids = torch.tensor([list(t) + [pad] * (longest - len(t)) for t in token_ids], device=param.device)
    with torch.no_grad(), capture(lw, [p.name for p in points]) as acts:
        hidden = core.decoder(
            input_ids=ids, encoder_hidden_states=encoder_hidden.to(param.device, param.dtype), use_cache=False
        ).last_hidden_state
    result = dict(acts)
    if return_logits:
        head = getattr(lw, "proj_out", None) or getattr(getattr(lw, "model", None), "proj_out", None)
        if head is None:
            raise TypeError("return_logits needs a LoadedWhisper or WhisperForConditionalGeneration (with proj_out).")
        with torch.no_grad():
            result["logits"] = head(hidden)
    return result
