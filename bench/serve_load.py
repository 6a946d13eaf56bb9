"""Load test of `rnn-ime serve` on loopback: concurrent clients, a bounded number of requests.

    .venv/bin/python bench/serve_load.py --model models/default          # starts its own server
    .venv/bin/python bench/serve_load.py --url http://127.0.0.1:8000/    # a running one
    .venv/bin/python bench/serve_load.py --model M --clients 1 20 --requests 2000

Each value of --clients is one run of --requests requests (httpx, async, one connection per
client) against POST /api/suggest (or /api/complete). Prints throughput, latency percentiles
(round trip as the client sees it, and the model's own time as the server reports it) and the
error count, and writes JSON to bench/out/. Only loopback addresses are ever targeted; every run
stops after --requests requests or --max-seconds, whichever comes first.
"""

from __future__ import annotations

import argparse
import asyncio
import ipaddress
import json
import os
import platform
import queue
import re
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import httpx

OUT = Path(__file__).with_name("out")
TEXTS = ["", "我", "我今天", "这家酒店", "这家酒店的服务", "房间很", "房间很干净，服务员也很",
         "我们周末想去公园散步", "昨天晚上", "这本书写得很好，我推荐给",
         "酒店的位置不错，离地铁站很近，早餐也很丰富，下次还会再来"]


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    target = p.add_mutually_exclusive_group(required=True)
    target.add_argument("--model", help="start `rnn-ime serve --model M` on a free 127.0.0.1 port")
    target.add_argument("--url", help="a running server on a loopback address")
    p.add_argument("--clients", type=int, nargs="+", default=[20],
                   help="concurrent clients; several values compare them in one run")
    p.add_argument("--requests", type=int, default=2000, help="requests per run")
    p.add_argument("--endpoint", choices=["suggest", "complete"], default="suggest")
    p.add_argument("-k", type=int, default=5, help="k of /api/suggest")
    p.add_argument("--max-seconds", type=float, default=300, help="stop a run after this long")
    p.add_argument("--out", type=Path, default=OUT / "serve_load.json")
    args = p.parse_args(argv)
    if args.requests < 1 or min(args.clients) < 1:
        p.error("--requests and --clients must be at least 1")
    if args.url:
        check_loopback(p, args.url)
    return args


def check_loopback(parser: argparse.ArgumentParser, url: str) -> None:
    host = urlsplit(url).hostname or ""
    try:
        loopback = host == "localhost" or ipaddress.ip_address(host).is_loopback
    except ValueError:
        loopback = False
    if not loopback:
        parser.error(f"--url must be a loopback address (127.0.0.1, localhost, ::1), not {host!r}")


# ---------------------------------------------------------------- the server under test
def start_server(model: str, timeout: float = 120) -> tuple[subprocess.Popen, str]:
    """`rnn-ime serve --port 0` on 127.0.0.1; its URL is the first thing it prints."""
    proc = subprocess.Popen([sys.executable, "-m", "rnn_ime", "serve", "--model", model,
                             "--host", "127.0.0.1", "--port", "0"],
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    lines: queue.Queue[str | None] = queue.Queue()

    def pump() -> None:
        for line in proc.stdout:  # type: ignore[union-attr]
            lines.put(line)
        lines.put(None)

    threading.Thread(target=pump, daemon=True).start()
    seen: list[str] = []
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            line = lines.get(timeout=max(0.1, deadline - time.monotonic()))
        except queue.Empty:
            break
        if line is None:
            break
        seen.append(line)
        if match := re.search(r"http://127\.0\.0\.1:\d+/", line):
            return proc, match.group(0)
    proc.kill()
    sys.exit("the server did not start:\n" + "".join(seen))


def wait_healthy(url: str, timeout: float = 30) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while True:
        try:
            response = httpx.get(url + "api/health", timeout=5)
            if response.status_code == 200:
                return response.json()
        except httpx.HTTPError:
            pass
        if time.monotonic() > deadline:
            sys.exit(f"{url} did not answer /api/health")
        time.sleep(0.2)


# ---------------------------------------------------------------- the load
def body_for(endpoint: str, number: int, k: int) -> dict[str, Any]:
    text = TEXTS[number % len(TEXTS)]
    return {"text": text, "k": k} if endpoint == "suggest" else \
        {"text": text, "beam": 3, "length": 3}


async def run_load(url: str, endpoint: str, clients: int, requests: int, k: int,
                   max_seconds: float) -> dict[str, Any]:
    latencies: list[float] = []
    model_ms: list[float] = []
    errors: list[str] = []
    counter = iter(range(requests))
    start = time.perf_counter()
    deadline = start + max_seconds

    async def client(http: httpx.AsyncClient) -> None:
        for number in counter:
            if time.perf_counter() > deadline:
                return
            sent = time.perf_counter()
            try:
                response = await http.post(f"/api/{endpoint}", json=body_for(endpoint, number, k))
                if response.status_code == 200:
                    model_ms.append(response.json()["latency_ms"])
                else:
                    errors.append(f"HTTP {response.status_code}")
            except httpx.HTTPError as exc:
                errors.append(type(exc).__name__)
            latencies.append((time.perf_counter() - sent) * 1000)

    limits = httpx.Limits(max_connections=clients, max_keepalive_connections=clients)
    async with httpx.AsyncClient(base_url=url, limits=limits, timeout=60) as http:
        await asyncio.gather(*(client(http) for _ in range(clients)))
    seconds = time.perf_counter() - start
    return {"clients": clients, "requests": len(latencies), "errors": len(errors),
            "error_kinds": sorted(set(errors)), "seconds": round(seconds, 3),
            "requests_per_second": round(len(latencies) / seconds, 1),
            "stopped_early": len(latencies) < requests,
            "latency_ms": percentiles(latencies), "model_ms": percentiles(model_ms)}


def percentiles(values: list[float]) -> dict[str, float]:
    if not values:
        return {}
    ordered = sorted(values)

    def at(q: float) -> float:
        return round(ordered[min(len(ordered) - 1, int(q * len(ordered)))], 2)

    return {"p50": at(0.50), "p90": at(0.90), "p99": at(0.99), "max": round(ordered[-1], 2)}


def table(runs: list[dict[str, Any]]) -> str:
    head = (f"{'clients':>7} {'requests':>8} {'errors':>6} {'req/s':>8} {'p50 ms':>8} "
            f"{'p90 ms':>8} {'p99 ms':>8} {'max ms':>8} {'model p50':>9}")
    rows = [head]
    for r in runs:
        lat, model = r["latency_ms"], r["model_ms"]
        rows.append(f"{r['clients']:>7} {r['requests']:>8} {r['errors']:>6} "
                    f"{r['requests_per_second']:>8.1f} {lat.get('p50', 0):>8.1f} "
                    f"{lat.get('p90', 0):>8.1f} {lat.get('p99', 0):>8.1f} "
                    f"{lat.get('max', 0):>8.1f} {model.get('p50', 0):>9.2f}")
    return "\n".join(rows)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    proc = None
    if args.model:
        proc, url = start_server(args.model)
    else:
        url = args.url if args.url.endswith("/") else args.url + "/"
    try:
        health = wait_healthy(url)
        runs = []
        for clients in args.clients:
            runs.append(asyncio.run(run_load(url, args.endpoint, clients, args.requests, args.k,
                                             args.max_seconds)))
    finally:
        if proc is not None:
            proc.terminate()
            proc.wait(timeout=10)
    print(f"POST /api/{args.endpoint} on {url} · model {health['model']} "
          f"(vocabulary {health['vocab_size']:,}) · {os.cpu_count()} CPUs shared by server and "
          "clients")
    print(table(runs))
    record = {"url": url, "endpoint": args.endpoint, "k": args.k, "model": health["model"],
              "vocab_size": health["vocab_size"], "server_started_here": proc is not None,
              "cpus": os.cpu_count(), "python": platform.python_version(),
              "date": time.strftime("%Y-%m-%dT%H:%M:%S%z"), "runs": runs}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(record, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    print(f"wrote {args.out}")
    failed = sum(r["errors"] for r in runs)
    if failed:
        print(f"{failed} requests failed", file=sys.stderr)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
