"""Load test of `rnn-ime serve` on loopback: concurrent clients, a bounded number of requests.

    .venv/bin/python bench/serve_load.py --model models/default          # starts its own servers
    .venv/bin/python bench/serve_load.py --url http://127.0.0.1:8000/    # a running one
    .venv/bin/python bench/serve_load.py --url URL1 URL2   # running servers, taking turns
    .venv/bin/python bench/serve_load.py --model M --clients 1 20 --requests 2000

Each value of --clients is one run of --requests requests (httpx, async, one connection per
client) against POST /api/suggest (or /api/complete). By default each client types: it sends
its passage one character longer each time, as the page does while a person types (the served
path then costs a step, not a re-read); `--pattern fixed` sends the same 11 texts round and
round. With --model, the real server is started once per variant and the variants take turns
for each --clients value, so a busy machine slows them alike:

    served   `rnn-ime serve` as it is: contexts through the cache (--context-cache 256)
    plain    `rnn-ime serve --context-cache 0`: every text segmented and read whole, in a
             worker thread (the path before the cache)

Prints throughput, latency percentiles (round trip as the client sees it, and the model's own
time as the server reports it) and the error count, and writes JSON to bench/out/. Only
loopback addresses are ever targeted; every run stops after --requests requests or
--max-seconds, whichever comes first.
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
PASSAGES = [  # one per client (up to 24) to begin with: no two clients type the same text
    "酒店的位置不错，离地铁站很近，早餐也很丰富，下次还会再来。",
    "我们周末想去公园散步，如果天气好的话，还可以带孩子去划船。",
    "这本书写得很好，我推荐给所有喜欢历史的朋友，值得一读。",
    "房间很干净，服务员也很热情，就是隔音效果差了一点。",
    "昨天晚上我和朋友去看了一场电影，剧情很精彩，演员也很出色。",
    "这家餐厅的菜味道一般，价格偏贵，服务态度还可以。",
    "今天公司开会讨论了明年的计划，大家都提出了很多好的建议。",
    "手机的电池很耐用，屏幕也很清楚，就是拍照效果不太理想。",
    "妈妈每天早上六点起床，给全家人做早饭，然后去上班。",
    "他从小就喜欢画画，长大以后成为了一名有名的画家。",
    "下个月学校要举行运动会，同学们都在认真地练习跑步。",
    "北京的秋天天气很舒服，不冷也不热，很适合出去旅游。",
    "快递昨天就到了，包装很结实，东西也没有任何损坏。",
    "医生建议他多喝水，多休息，少吃辛辣的食物。",
    "图书馆里很安静，很多学生在那里复习功课，准备考试。",
    "这次旅行我们去了三个城市，看到了很多美丽的风景。",
    "老师耐心地回答了每一个问题，同学们都听得很认真。",
    "这款电脑运行速度很快，外观也很漂亮，性价比很高。",
    "周末超市里人很多，排队结账花了将近半个小时。",
    "爷爷退休以后喜欢在院子里种花，每天都去浇水。",
    "经过几个月的努力，他终于通过了驾驶考试。",
    "这部电视剧的故事很感人，我看了好几遍都不觉得累。",
    "雨下了一整天，路上的车开得很慢，大家都迟到了。",
    "新开的咖啡店环境很好，咖啡也很香，就是座位少了一点。",
]
VARIANTS = {"served": [], "plain": ["--context-cache", "0"]}


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    target = p.add_mutually_exclusive_group(required=True)
    target.add_argument("--model", help="start `rnn-ime serve --model M` on a free 127.0.0.1 port")
    target.add_argument("--url", nargs="+",
                        help="running servers on loopback addresses (several: they take turns, "
                             "and each is compared with the last, e.g. this code's server and "
                             "one of an older checkout)")
    p.add_argument("--clients", type=int, nargs="+", default=[20],
                   help="concurrent clients; several values compare them in one run")
    p.add_argument("--requests", type=int, default=2000, help="requests per run")
    p.add_argument("--endpoint", choices=["suggest", "complete"], default="suggest")
    p.add_argument("--pattern", choices=["typing", "fixed"], default="typing",
                   help="typing: each client types a passage a character at a time (default); "
                        "fixed: 11 fixed texts round and round")
    p.add_argument("--client", choices=["raw", "httpx"], default="raw",
                   help="raw: a minimal asyncio HTTP/1.1 client (default; light on the shared "
                        "cores); httpx: httpx.AsyncClient")
    p.add_argument("--variants", nargs="+", choices=list(VARIANTS), default=list(VARIANTS),
                   help="with --model: the servers to compare (default: all)")
    p.add_argument("-k", type=int, default=5, help="k of /api/suggest")
    p.add_argument("--max-seconds", type=float, default=300, help="stop a run after this long")
    p.add_argument("--out", type=Path, default=OUT / "serve_load.json")
    args = p.parse_args(argv)
    if args.requests < 1 or min(args.clients) < 1:
        p.error("--requests and --clients must be at least 1")
    for url in args.url or []:
        check_loopback(p, url)
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
def start_server(model: str, extra: list[str] | None = None, timeout: float = 120
                 ) -> tuple[subprocess.Popen, str]:
    """`rnn-ime serve --port 0` on 127.0.0.1; its URL is the first thing it prints."""
    proc = subprocess.Popen([sys.executable, "-m", "rnn_ime", "serve", "--model", model,
                             "--host", "127.0.0.1", "--port", "0", *(extra or [])],
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
def body_for(endpoint: str, text: str, k: int) -> dict[str, Any]:
    return {"text": text, "k": k} if endpoint == "suggest" else \
        {"text": text, "beam": 3, "length": 3}


def texts_of(pattern: str, client: int):
    """What one client sends, request after request: documents of two passages typed a
    character at a time (client n begins with passage n), or the fixed texts round and round."""
    if pattern == "fixed":
        while True:
            yield from TEXTS[client % len(TEXTS):] + TEXTS[:client % len(TEXTS)]
    for turn in range(client, 1 << 30, 2):
        document = PASSAGES[turn % len(PASSAGES)] + PASSAGES[(turn + 1) % len(PASSAGES)]
        for end in range(1, len(document) + 1):
            yield document[:end]


class RawConnection:
    """A keep-alive HTTP/1.1 connection that POSTs JSON: a few lines of asyncio, so that the
    clients, which share the machine's cores with the server, take little of them (httpx costs
    a few times more CPU per request than the server's own handling of it)."""

    def __init__(self, url: str) -> None:
        parts = urlsplit(url)
        self.host, self.port = parts.hostname or "127.0.0.1", parts.port or 80
        self.streams: tuple[asyncio.StreamReader, asyncio.StreamWriter] | None = None

    async def post(self, path: str, body: dict[str, Any]) -> tuple[int, bytes]:
        if self.streams is None:
            self.streams = await asyncio.open_connection(self.host, self.port)
        reader, writer = self.streams
        data = json.dumps(body, ensure_ascii=False).encode()
        writer.write(f"POST {path} HTTP/1.1\r\nhost: {self.host}\r\n"
                     f"content-type: application/json\r\ncontent-length: {len(data)}\r\n\r\n"
                     .encode() + data)
        head = await reader.readuntil(b"\r\n\r\n")
        lines = head.decode("latin-1").split("\r\n")
        headers = dict(line.split(": ", 1) for line in lines[1:] if ": " in line)
        length = int({k.lower(): v for k, v in headers.items()}.get("content-length", 0))
        return int(lines[0].split()[1]), await reader.readexactly(length)

    async def close(self) -> None:
        if self.streams is not None:
            self.streams[1].close()


async def run_load(url: str, endpoint: str, clients: int, requests: int, k: int,
                   max_seconds: float, pattern: str = "typing", client_kind: str = "raw"
                   ) -> dict[str, Any]:
    latencies: list[float] = []
    model_ms: list[float] = []
    errors: list[str] = []
    counter = iter(range(requests))
    start = time.perf_counter()
    deadline = start + max_seconds

    async def client(post, number: int) -> None:
        texts = texts_of(pattern, number)
        for _ in counter:
            if time.perf_counter() > deadline:
                return
            sent = time.perf_counter()
            try:
                status, content = await post(f"/api/{endpoint}",
                                             body_for(endpoint, next(texts), k))
                if status == 200:
                    model_ms.append(json.loads(content)["latency_ms"])
                else:
                    errors.append(f"HTTP {status}")
            except (httpx.HTTPError, OSError, asyncio.IncompleteReadError) as exc:
                errors.append(type(exc).__name__)
            latencies.append((time.perf_counter() - sent) * 1000)

    if client_kind == "raw":
        connections = [RawConnection(url) for _ in range(clients)]
        try:
            await asyncio.gather(*(client(c.post, n) for n, c in enumerate(connections)))
        finally:
            for connection in connections:
                await connection.close()
    else:
        limits = httpx.Limits(max_connections=clients, max_keepalive_connections=clients)
        async with httpx.AsyncClient(base_url=url, limits=limits, timeout=60) as http:
            async def post(path: str, body: dict[str, Any]) -> tuple[int, bytes]:
                response = await http.post(path, json=body)
                return response.status_code, response.content

            await asyncio.gather(*(client(post, n) for n in range(clients)))
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
    head = (f"{'variant':<8} {'clients':>7} {'requests':>8} {'errors':>6} {'req/s':>8} "
            f"{'p50 ms':>8} {'p90 ms':>8} {'p99 ms':>8} {'max ms':>8} {'model p50':>9} "
            f"{'model p99':>9}")
    rows = [head]
    for r in runs:
        lat, model = r["latency_ms"], r["model_ms"]
        rows.append(f"{r['variant']:<8} {r['clients']:>7} {r['requests']:>8} {r['errors']:>6} "
                    f"{r['requests_per_second']:>8.1f} {lat.get('p50', 0):>8.1f} "
                    f"{lat.get('p90', 0):>8.1f} {lat.get('p99', 0):>8.1f} "
                    f"{lat.get('max', 0):>8.1f} {model.get('p50', 0):>9.2f} "
                    f"{model.get('p99', 0):>9.2f}")
    return "\n".join(rows)


def ratios(runs: list[dict[str, Any]]) -> list[str]:
    """Each variant against the last one (plain, or the last --url), requests/s and round-trip
    p99, for each number of clients."""
    variants = list(dict.fromkeys(r["variant"] for r in runs))
    by = {(r["variant"], r["clients"]): r for r in runs}
    out = []
    for (variant, clients), run in by.items():
        base = by.get((variants[-1], clients))
        if variant == variants[-1] or base is None or not base["requests_per_second"]:
            continue
        speed = run["requests_per_second"] / base["requests_per_second"]
        p99 = run["latency_ms"]["p99"] / base["latency_ms"]["p99"]
        out.append(f"{clients} clients: {variant}/{variants[-1]} requests/s × {speed:.2f}, "
                   f"round-trip p99 × {p99:.2f}")
    return out


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    servers: dict[str, tuple[subprocess.Popen | None, str]] = {}
    try:
        if args.model:
            for variant in args.variants:
                servers[variant] = start_server(args.model, VARIANTS[variant])
        else:
            for number, url in enumerate(args.url, 1):
                servers[f"url{number}"] = (None, url if url.endswith("/") else url + "/")
        health = {variant: wait_healthy(url) for variant, (_, url) in servers.items()}
        runs = []
        for clients in args.clients:
            for variant, (_, url) in servers.items():
                run = asyncio.run(run_load(url, args.endpoint, clients, args.requests, args.k,
                                           args.max_seconds, args.pattern, args.client))
                runs.append({"variant": variant, **run})
    finally:
        for proc, _ in servers.values():
            if proc is not None:
                proc.terminate()
                proc.wait(timeout=10)
    first = next(iter(health.values()))
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    print(f"POST /api/{args.endpoint} ({args.pattern}, {args.client} client) · "
          f"model {first['model']} (vocabulary {first['vocab_size']:,}) · "
          f"{os.cpu_count()} CPUs shared by server and clients · "
          f"load average {load:.2f} at the end")
    print(table(runs))
    for line in ratios(runs):
        print(line)
    record = {"urls": {v: url for v, (_, url) in servers.items()}, "endpoint": args.endpoint,
              "pattern": args.pattern, "client": args.client, "k": args.k, "model": first["model"],
              "vocab_size": first["vocab_size"], "server_started_here": args.model is not None,
              "cpus": os.cpu_count(), "load_average_at_end": load,
              "python": platform.python_version(),
              "date": time.strftime("%Y-%m-%dT%H:%M:%S%z"), "runs": runs,
              "ratios": ratios(runs)}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(record, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    print(f"wrote {args.out}")
    failed = sum(r["errors"] for r in runs)
    if failed:
        print(f"{failed} requests failed", file=sys.stderr)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
