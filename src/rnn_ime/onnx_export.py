"""`rnn-ime export`: a trained model's step as an ONNX graph, fp32 or dynamic int8.

What is exported is what a typing session runs for each committed word, with the recurrent
state as explicit inputs and outputs (B batch, L layers, H hidden, V vocab, T = seq_len):

    lm objective ("step" graph):
        word_ids (B,) int64, h (L, B, H) [, c (L, B, H) for the LSTM]
          → log_probs (B, V), h_out (L, B, H) [, c_out (L, B, H)]
    window objective ("window" graph, no state: the window is the whole context):
        window_ids (B, T) int64, <pad>-padded on the left as the predictor pads
          → log_probs (B, V)

`log_probs` are exact log-probabilities over the whole vocabulary, for either output layer
(full softmax or adaptive softmax). The exporter is torch's TorchScript-based one
(`dynamo=False`): in torch 2.13 it needs only `onnx`, gives a compact graph whose LSTM/GRU/RNN
is a single ONNX op, and `quantize_dynamic` can turn that op and every MatMul into int8 kernels
(the dynamo exporter also works but needs `onnxscript`, and its LSTM is left in fp32).

int8 (`--int8`, onnxruntime's dynamic quantisation): the projection's MatMuls become int8
(except narrow ones, where int8 is slower, and the adaptive softmax's small down-projections);
the recurrent cell stays fp32 unless `quantize_rnn` (its error would build up in the state from
word to word); and the top `rerank` words of each int8 layer that ranks words (the decoder, or
the adaptive head and the clusters' up-projections) are re-scored with their fp32 weight rows:

    logits ≈ int8 MatMul(x) ─▶ log_softmax ─▶ top n ids ─▶ exact logits x·W[id] + b[id] (fp32)
    log_probs = the int8 log-probs, with the n candidates' replaced by exact logit − log-normaliser

so within each such layer the order of the top words is the fp32 order unless a true top word
falls outside the int8 top n, and their log-probs differ from fp32 by one constant, the int8
estimate of that layer's normaliser (the layer's input must be fp32 for this: the cell and the
adaptive down-projections stay fp32 unless `quantize_rnn`).

The file's metadata names the vocabulary and weights it was made from, so that a model that
was retrained after the export is not run with a stale graph.
"""

from __future__ import annotations

import logging
import re
import tempfile
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F

from . import modeldir
from .errors import ConfigError, RnnImeError
from .fsutil import sha256_file, write_with
from .model import NextWordModel
from .onnx_format import FP32_FILE, INT8_FILE, META, default_path, new_session
from .options import check_int_range, check_out_file
from .stepping import exact_log_probs

FORMATS = ("onnx",)
OPSET = 17
MIN_INT8_INNER = 32  # see fp32_matmuls
DEFAULT_RERANK = 32
MAX_RERANK = 1000  # words re-scored per layer: each costs a row of fp32 weights per input

Projection = Callable[[NextWordModel, torch.Tensor], torch.Tensor]


def reranked_log_softmax(layer: nn.Linear, x: torch.Tensor, n: int) -> torch.Tensor:
    """log_softmax(layer(x)) for a layer to be quantised, its top n re-scored in fp32.

    x (B, H) → (B, V). The MatMul of `layer` becomes int8; the Gather of its weight rows does
    not (only MatMul is quantised), so the n candidates get exact logits.
    """
    logits = layer(x)  # (B, V)
    approx = F.log_softmax(logits, dim=-1)
    candidates = approx.topk(min(n, approx.shape[-1]), dim=-1).indices  # (B, n)
    first = candidates[:, :1]
    log_normaliser = logits.gather(1, first) - approx.gather(1, first)  # (B, 1)
    exact = (layer.weight[candidates] * x[:, None, :]).sum(-1)  # (B, n, H) · (B, 1, H)
    if layer.bias is not None:
        exact = exact + layer.bias[candidates]
    return approx.scatter(1, candidates, exact - log_normaliser)


def projection(rerank: int) -> Projection:
    """features (B, F) → log_probs (B, V): exact, or re-ranked for an int8 graph (rerank > 0).

    Every layer that ranks words and is quantised (see fp32_matmuls) is re-ranked: the
    decoder, or the adaptive head and each cluster's up-projection with ≥ MIN_INT8_INNER inputs.
    """
    if rerank <= 0:
        return exact_log_probs

    def ranking_layer(layer: nn.Linear, x: torch.Tensor) -> torch.Tensor:
        if layer.in_features < MIN_INT8_INNER:  # stays fp32: exact already
            return F.log_softmax(layer(x), dim=-1)
        return reranked_log_softmax(layer, x, rerank)

    def reranked(model: NextWordModel, features: torch.Tensor) -> torch.Tensor:
        return exact_log_probs(model, features, top_layer=ranking_layer)

    return reranked


class StepGraph(nn.Module):
    """The lm model's stateful step: (word_ids, h[, c]) → (log_probs, h_out[, c_out])."""

    def __init__(self, model: NextWordModel, log_probs: Projection = exact_log_probs) -> None:
        super().__init__()
        self.model = model
        self.log_probs = log_probs

    def forward(self, word_ids: torch.Tensor, *state: torch.Tensor) -> tuple[torch.Tensor, ...]:
        x = self.model.embedding(word_ids)[:, None, :]  # (B, 1, E)
        hidden = tuple(state) if len(state) == 2 else state[0]
        output, hidden = self.model.rnn(x, hidden)  # output (B, 1, H)
        new_state = hidden if isinstance(hidden, tuple) else (hidden,)
        return (self.log_probs(self.model, output[:, 0]), *new_state)


class WindowGraph(nn.Module):
    """The window model: window_ids (B, T) → log_probs (B, V)."""

    def __init__(self, model: NextWordModel, log_probs: Projection = exact_log_probs) -> None:
        super().__init__()
        self.model = model
        self.log_probs = log_probs

    def forward(self, window_ids: torch.Tensor) -> torch.Tensor:
        features, _ = self.model(window_ids)  # (B, D·H)
        return self.log_probs(self.model, features)


@dataclass
class ExportConfig:
    model: str
    format: str = "onnx"
    int8: bool = False
    out: str | None = None
    per_channel: bool = False  # int8: one scale per output column instead of per tensor
    rerank: int = DEFAULT_RERANK  # int8: top words re-scored with fp32 weights (0: none)
    quantize_rnn: bool = False  # int8: the recurrent cell too (faster, less exact)

    def check(self) -> None:
        """Every option in its range, or a one-line error, before the model loads."""
        if self.format not in FORMATS:
            raise ConfigError(f"unknown export format {self.format!r}; choose onnx")
        check_int_range("rerank", self.rerank, 0, MAX_RERANK)
        if self.out is not None:
            check_out_file(self.out)


@dataclass
class GraphSpec:
    graph: nn.Module
    inputs: tuple[torch.Tensor, ...]
    input_names: list[str]
    output_names: list[str]
    dynamic_axes: dict[str, dict[int, str]]
    kind: str


def graph_spec(model: NextWordModel, log_probs: Projection = exact_log_probs) -> GraphSpec:
    """The module to export, example inputs, and the names and batch axes of its tensors."""
    config = model.config
    if config.objective == "window":
        ids = torch.full((1, config.seq_len), 2, dtype=torch.long)
        return GraphSpec(WindowGraph(model, log_probs).eval(), (ids,), ["window_ids"],
                         ["log_probs"], {"window_ids": {0: "batch"}, "log_probs": {0: "batch"}},
                         "window")
    names = ["h", "c"] if config.cell == "lstm" else ["h"]
    state = tuple(torch.zeros(config.layers, 1, config.hidden) for _ in names)
    axes = {"word_ids": {0: "batch"}, "log_probs": {0: "batch"}}
    axes.update({n: {1: "batch"} for n in names})
    axes.update({f"{n}_out": {1: "batch"} for n in names})
    return GraphSpec(StepGraph(model, log_probs).eval(), (torch.tensor([2]), *state),
                     ["word_ids", *names], ["log_probs", *(f"{n}_out" for n in names)],
                     axes, "step")


def _torch_export(spec: GraphSpec, path: Path) -> None:
    with warnings.catch_warnings(), torch.no_grad():
        warnings.simplefilter("ignore")  # the legacy exporter's deprecation and LSTM notes
        torch.onnx.export(spec.graph, spec.inputs, str(path), input_names=spec.input_names,
                          output_names=spec.output_names, dynamic_axes=spec.dynamic_axes,
                          opset_version=OPSET, dynamo=False)


def fp32_matmuls(proto: Any, down_projections: int = 0) -> list[str]:
    """MatMul/Gemm nodes that stay fp32 in an int8 graph: the narrow ones, and the adaptive
    softmax's down-projections.

    Narrow: a constant weight that sums fewer than MIN_INT8_INNER products. For those, int8 is
    slower than fp32 (onnxruntime 1.32, one thread: the adaptive softmax's 16 → 40,000 tail
    projection takes 0.12 ms in int8 against 0.10 ms in fp32). Down-projections (H → H/4ⁱ,
    small and cheap): their output feeds a cluster's up-projection, whose top words are
    re-scored exactly only if that input is exact. A Gemm is renamed NAME_MatMul by the
    quantiser: both names are listed. `down_projections`: how many the model has; finding
    another number (an exporter that names nodes differently) is an error, not a silently
    inexact int8 graph.
    """
    shapes = {t.name: list(t.dims) for t in proto.graph.initializer}
    names, found = [], 0
    for node in proto.graph.node:
        if node.op_type not in ("MatMul", "Gemm") or len(node.input) < 2 \
                or node.input[1] not in shapes:
            continue
        dims = shapes[node.input[1]]
        transposed = node.op_type == "Gemm" and any(a.name == "transB" and a.i
                                                    for a in node.attribute)
        down_projection = re.search(r"tail\.\d+\.0/", node.name) is not None
        found += down_projection
        if (dims[1] if transposed else dims[0]) < MIN_INT8_INNER or down_projection:
            names += [node.name, f"{node.name}_MatMul"]
    if found != down_projections:
        raise RnnImeError(f"int8 export: found {found} adaptive-softmax down-projections in "
                          f"the graph, expected {down_projections}; export without --int8")
    return names


def _quantize(source: Path, target: Path, config: ExportConfig, down_projections: int) -> None:
    import onnx
    from onnxruntime.quantization import QuantType, quantize_dynamic

    ops = ["MatMul", "LSTM"] if config.quantize_rnn else ["MatMul"]  # never the Gathers
    logging.disable(logging.WARNING)  # its advice to pre-process, logged on the root logger
    try:
        quantize_dynamic(str(source), str(target), weight_type=QuantType.QInt8,
                         per_channel=config.per_channel, op_types_to_quantize=ops,
                         nodes_to_exclude=fp32_matmuls(onnx.load(str(source)),
                                                       down_projections),
                         extra_options={"MatMulConstBOnly": True})
    finally:
        logging.disable(logging.NOTSET)


def _require_onnx() -> None:
    try:
        import onnx  # noqa: F401
        import onnxruntime  # noqa: F401
    except ImportError as exc:
        raise RnnImeError(f"ONNX export needs the onnx and onnxruntime packages ({exc.name} "
                          "is missing); run scripts/setup-venv.sh") from None


def export_model(config: ExportConfig) -> dict[str, Any]:
    """Export the model dir's step to ONNX (atomically); returns a summary of what was written."""
    config.check()
    _require_onnx()
    import onnx

    model_dir = Path(config.model)
    model, vocab, _ = modeldir.load(model_dir)
    weights = modeldir.weights_file(model_dir)
    rerank = config.rerank if config.int8 else 0
    spec = graph_spec(model, projection(rerank))
    out = Path(config.out) if config.out else default_path(model_dir, config.int8)
    metadata = {"format": spec.kind, "precision": "int8" if config.int8 else "fp32",
                "vocab_sha256": vocab.sha256, "weights": weights.name,
                "weights_sha256": sha256_file(weights), "objective": model.config.objective,
                "cell": model.config.cell, "layers": str(model.config.layers),
                "hidden": str(model.config.hidden), "seq_len": str(model.config.seq_len),
                "vocab_size": str(len(vocab)), "torch": torch.__version__}
    if config.int8:
        metadata.update(rerank=str(rerank), quantize_rnn=str(config.quantize_rnn).lower(),
                        per_channel=str(config.per_channel).lower())
    with tempfile.TemporaryDirectory(prefix="rnn-ime-export-") as tmp:
        fp32 = Path(tmp) / FP32_FILE
        _torch_export(spec, fp32)
        source = fp32
        if config.int8:
            source = Path(tmp) / INT8_FILE
            tails = model.adaptive.tail if model.adaptive is not None else ()
            _quantize(fp32, source, config, down_projections=len(tails))
        proto = onnx.load(str(source))
        onnx.helper.set_model_props(proto, {META + k: v for k, v in metadata.items()})
        write_with(out, lambda path: onnx.save(proto, str(path)))
    return {"path": str(out), "bytes": out.stat().st_size, **metadata,
            "max_abs_diff": check_against_torch(out, spec)}


def check_against_torch(path: Path, spec: GraphSpec, batch: int = 3, seed: int = 0) -> float:
    """Largest |log-prob difference| between ONNX Runtime on `path` and torch, random inputs."""
    generator = torch.Generator().manual_seed(seed)
    vocab_size = spec.graph.model.config.vocab_size
    ids = torch.randint(3, vocab_size, (batch, *spec.inputs[0].shape[1:]), generator=generator)
    state = [torch.randn(s.shape[0], batch, s.shape[2], generator=generator) * 0.5
             for s in spec.inputs[1:]]
    with torch.no_grad():
        want = spec.graph(ids, *state)
    want = want[0] if isinstance(want, tuple) else want
    session = new_session(path)
    feeds = {name: value.numpy() for name, value in zip(spec.input_names, [ids, *state],
                                                         strict=True)}
    got = session.run(["log_probs"], feeds)[0]
    return float(np.abs(got - want.numpy()).max())
