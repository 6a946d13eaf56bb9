"""Helpers shared by the benchmarks: output folder, data dirs, machine description, tables."""

from __future__ import annotations

import json
import os
import platform
import subprocess
import sys
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parent.parent
OUT = ROOT / "bench" / "out"


def machine() -> dict:
    return {"python": platform.python_version(), "torch": torch.__version__,
            "cpu_count": os.cpu_count(), "torch_threads": torch.get_num_threads(),
            "processor": platform.processor() or platform.machine(),
            "cuda": torch.cuda.get_device_name(0) if torch.cuda.is_available() else None,
            "date": time.strftime("%Y-%m-%d %H:%M")}


def ensure_data(path: Path, corpus: list[str], min_count: int, max_vocab: int | None) -> Path:
    """Prepare a data dir with the rnn-ime CLI unless it is already there."""
    if not (path / "manifest.json").is_file():
        command = [sys.executable, "-m", "rnn_ime", "prepare", "--out", str(path),
                   "--min-count", str(min_count), "--corpus", *corpus]
        if max_vocab:
            command += ["--max-vocab", str(max_vocab)]
        subprocess.run(command, check=True)
    return path


def matmul_gflops(seconds: float = 2.0, device: str = "cpu") -> float:
    """The float32 matrix-multiply rate on `device`, in GFLOP/s (the practical ceiling)."""
    a = torch.randn(2048, 256, device=device)
    b = torch.randn(256, 8192, device=device)
    for _ in range(3):
        a @ b
    n, started = 0, time.perf_counter()
    while time.perf_counter() - started < seconds:
        a @ b
        n += 1
    if device != "cpu":
        torch.cuda.synchronize()
    return 2 * 2048 * 256 * 8192 * n / (time.perf_counter() - started) / 1e9


def print_table(rows: list[dict], columns: list[tuple[str, str, str]]) -> None:
    """columns: (key, header, format spec)."""
    widths = [max(len(h), 10) for _, h, _ in columns]
    print("  ".join(h.rjust(w) for (_, h, _), w in zip(columns, widths, strict=True)))
    for row in rows:
        cells = []
        for (key, _, spec), width in zip(columns, widths, strict=True):
            value = row.get(key, "")
            cells.append((format(value, spec) if value != "" and value is not None else "-")
                         .rjust(width))
        print("  ".join(cells))


def write_json(name: str, payload: dict) -> Path:
    OUT.mkdir(parents=True, exist_ok=True)
    path = OUT / name
    path.write_text(json.dumps(payload, ensure_ascii=False, indent=2) + "\n", encoding="utf-8")
    return path
