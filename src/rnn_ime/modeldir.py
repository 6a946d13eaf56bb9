"""A model dir: config.json, vocab.txt, best/last weights (safetensors), metrics.json, logs/.

Loading never unpickles code: weights are safetensors, configs are JSON.
"""

from __future__ import annotations

import pickle
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file

from .errors import ConfigError, ModelError
from .fsutil import read_json_object, write_json, write_with
from .model import ModelConfig, NextWordModel
from .vocab import Vocab

WEIGHTS = ("best.safetensors", "last.safetensors")


def save_config(out: Path, model_config: ModelConfig, extra: dict[str, Any]) -> None:
    write_json(out / "config.json", {"model": vars(model_config), **extra})


def weight_tensors(model: NextWordModel) -> dict[str, torch.Tensor]:
    """Each parameter as its own contiguous CPU tensor (cuDNN keeps an RNN's weights in one
    shared buffer); a tied output matrix is stored once, as the embedding."""
    tied = model.config.tie_weights
    return {name: tensor.detach().to("cpu").contiguous().clone()
            for name, tensor in model.state_dict().items()
            if not (tied and name == "decoder.weight")}


def save_weights(model: NextWordModel, path: Path) -> None:
    tensors = weight_tensors(model)
    write_with(path, lambda tmp: save_file(tensors, str(tmp)))


def load_config(path: Path) -> dict[str, Any]:
    if not (path / "config.json").is_file():
        raise ModelError(f"{path}: not a model dir (no config.json); train one with "
                         "`rnn-ime train --data DIR --out DIR`")
    config = read_json_object(path / "config.json", ModelError)
    where = path / "config.json"
    if not isinstance(config.get("model"), dict):
        raise ModelError(f"{where}: no \"model\" object")
    try:
        ModelConfig.from_dict(config["model"]).resolved()
    except ConfigError as exc:
        raise ModelError(f"{where}: {exc}") from None
    for key, kind in (("vocab_sha256", str), ("train", dict), ("tokenizer", dict)):
        if key in config and not isinstance(config[key], kind):
            raise ModelError(f"{where}: \"{key}\" should be a JSON {kind.__name__}")
    return config


def trained_on(path: Path, config: dict[str, Any]) -> str:
    """The data dir the model was trained on, as config.json records it."""
    data = config.get("train", {}).get("data")
    if not isinstance(data, str):
        raise ModelError(f"{path / 'config.json'}: does not say which data dir the model was "
                         "trained on; pass --data")
    if not Path(data).is_absolute() and not Path(data).exists():
        raise ModelError(f"{path / 'config.json'}: the model was trained on {data}, a path "
                         f"relative to the directory training ran in, not found from "
                         f"{Path.cwd()}; run from there or pass --data")
    return data


def load_vocab(path: Path, config: dict[str, Any]) -> Vocab:
    """The model dir's vocabulary, checked against the hash and size the model was trained with."""
    vocab = Vocab.load(path / "vocab.txt") if (path / "vocab.txt").is_file() else None
    if vocab is None:
        raise ModelError(f"{path}: no vocab.txt")
    if vocab.sha256 != config.get("vocab_sha256"):
        raise ModelError(f"{path}: vocab.txt does not match the vocabulary the model was "
                         "trained with (hash differs)")
    vocab_size = ModelConfig.from_dict(config["model"]).vocab_size
    if vocab_size != len(vocab):
        raise ModelError(f"{path}: the model has {vocab_size} outputs but "
                         f"vocab.txt has {len(vocab)} words")
    return vocab


def weights_file(path: Path, weights: str = "best") -> Path:
    """`weights`.safetensors, else the first of best/last that exists."""
    candidates = [path / f"{weights}.safetensors"] + [path / w for w in WEIGHTS]
    found = next((c for c in candidates if c.is_file()), None)
    if found is None:
        raise ModelError(f"{path}: no weights (best.safetensors or last.safetensors); "
                         "train the model first")
    return found


def load(path: str | Path, weights: str = "best", device: str = "cpu"
         ) -> tuple[NextWordModel, Vocab, dict[str, Any]]:
    """Load a trained model, refusing a vocabulary whose hash differs from the one trained on."""
    path = Path(path)
    config = load_config(path)
    vocab = load_vocab(path, config)
    model_config = ModelConfig.from_dict(config["model"])
    weight_file = weights_file(path, weights)
    model = NextWordModel(model_config)
    try:
        tensors = load_file(str(weight_file))
        missing, unexpected = model.load_state_dict(tensors, strict=False)
    except (SafetensorError, RuntimeError, OSError) as exc:
        raise ModelError(f"{weight_file}: cannot load weights ({str(exc).splitlines()[0]})"
                         ) from None
    if model_config.tie_weights:
        missing = [name for name in missing if name != "decoder.weight"]
    if missing or unexpected:
        raise ModelError(f"{weight_file}: weights do not fit config.json "
                         f"(missing {len(missing)}, unexpected {len(unexpected)} tensors)")
    model.to(device).eval()
    return model, vocab, config


def torch_load_state(path: Path) -> dict[str, Any]:
    """Training state for --resume: tensors and plain containers only (weights_only)."""
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # whatever a damaged file makes torch.load raise
        first = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
        if isinstance(exc, pickle.UnpicklingError):  # its message is about weights_only
            first = "not a checkpoint of tensors and plain containers"
        elif len(first) > 100:
            first = f"{type(exc).__name__}: {first[:80]}…"
        raise ModelError(f"{path}: cannot read the training state ({first}); the file is "
                         "damaged: train again into another --out") from None
    if not isinstance(state, dict):
        raise ModelError(f"{path}: not a training state (found {type(state).__name__})")
    return state
