"""What an exported ONNX file is, for both sides: where it lives in a model dir, the prefix of
its metadata keys, and how to open it with ONNX Runtime.

onnx_export.py writes such files and onnx_runtime.py scores with them; both import this module
and neither imports the other.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from .errors import ModelError, RnnImeError

FP32_FILE, INT8_FILE = "model.onnx", "model.int8.onnx"
META = "rnn_ime."  # prefix of our metadata keys


def default_path(model_dir: str | Path, int8: bool = False) -> Path:
    return Path(model_dir) / (INT8_FILE if int8 else FP32_FILE)


def new_session(path: str | Path, threads: int = 1) -> Any:
    """An ONNX Runtime CPU session on `path` with `threads` intra-op threads."""
    try:
        import onnxruntime as ort
    except ImportError:
        raise RnnImeError("the onnx runtime needs the onnxruntime package; run "
                          "scripts/setup-venv.sh") from None
    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    options.log_severity_level = 3  # errors only
    try:
        return ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
    except Exception as exc:  # onnxruntime raises its own exception types, not exported
        raise ModelError(f"{path}: ONNX Runtime cannot load it ({str(exc).splitlines()[0]})"
                         ) from None
