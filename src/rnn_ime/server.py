"""`rnn-ime serve`: the HTTP API and the web page that suggests as you type (FastAPI, uvicorn).

    POST /api/suggest   {text, k}             → the k most likely next words
    POST /api/complete  {text, beam, length}  → multi-word continuations
    POST /api/pinyin    {letters, context, k, fuzzy} → Chinese candidates for typed pinyin;
                        letters ending in a mark (nihao,) → also what to commit (你好，)
    GET  /api/pinyin/options                  → fuzzy rules, the server's default, marks
    GET  /api/health                          → model name, vocabulary size, config (no paths)
    GET  /openapi.json                        → the schema;  GET / → the page (static/)

Inference runs in a worker thread (never on the event loop), one request at a time: one lock
guards the shared model, so concurrent requests are safe and do not oversubscribe the CPU. The
text of a request is read through a context cache (predict.ContextReader): typing one more
character costs segmenting the last clause and a step or two of the model, not a re-read.

One process serves. uvicorn's --workers is not offered: each worker would load its own copy
of the model and keep its own cache (a keep-alive connection stays on one worker, so a typist's
context would mostly stay warm), which could pay on many cores; on 2 cores shared with the
clients there is little for a second process to run on.
"""

from __future__ import annotations

import gc
import math
import os
import socket
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import asdict, is_dataclass
from pathlib import Path
from typing import Annotated, Any, Literal, TypeVar

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import FileResponse, JSONResponse
from fastapi.staticfiles import StaticFiles
from pydantic import BaseModel, BeforeValidator, ConfigDict, Field
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException as StarletteHTTPException

from .beam import beam_search
from .context_cache import DEFAULT_ENTRIES
from .errors import ConfigError, RnnImeError
from .ime import (
    FULL_WIDTH,
    FUZZY_RULES,
    DecoderSettings,
    Lexicon,
    check_fuzzy,
    commit_of,
    decode,
    open_lexicon,
    split_mark,
)
from .ime.lexicon import skipped_note
from .ime.punctuation import mark_class
from .limits import (
    MAX_LETTERS,
    SERVER_MAX_BEAM,
    SERVER_MAX_BODY_BYTES,
    SERVER_MAX_K,
    SERVER_MAX_LENGTH,
    SERVER_MAX_TEXT,
)
from .predict import ContextReader, Predictor

STATIC = Path(__file__).with_name("static")
# The page loads nothing from elsewhere; say so to the browser too.
PAGE_HEADERS = {"Content-Security-Policy": "default-src 'self'; img-src 'self' data:",
                "Cache-Control": "no-cache"}

T = TypeVar("T")


# ---------------------------------------------------------------- request and response bodies
def _whole_number(value: Any) -> Any:
    """JSON's 5 and 5.0 are the same integer; "5", true and 5.5 are not integers."""
    if isinstance(value, float) and value.is_integer():
        return int(value)
    return value


WholeNumber = Annotated[int, BeforeValidator(_whole_number)]


class _Request(BaseModel):
    model_config = ConfigDict(extra="forbid")
    text: str = Field("", max_length=SERVER_MAX_TEXT, strict=True,
                      description="the text typed so far; empty asks for a passage's first word")


class SuggestRequest(_Request):
    k: WholeNumber = Field(5, ge=1, le=SERVER_MAX_K, strict=True,
                           description="how many next words")


class CompleteRequest(_Request):
    beam: WholeNumber = Field(4, ge=1, le=SERVER_MAX_BEAM, strict=True,
                              description="beam width, and the most continuations returned")
    length: WholeNumber = Field(4, ge=1, le=SERVER_MAX_LENGTH, strict=True,
                                description="words per continuation")


FuzzyRule = Literal[FUZZY_RULES]  # type: ignore[valid-type]  # z-zh, c-ch, … an-ang …


class PinyinRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")
    letters: str = Field(min_length=1, max_length=MAX_LETTERS + 1,
                         pattern=f"^[A-Za-z']{{1,{MAX_LETTERS}}}{mark_class()}?$", strict=True,
                         description=f"typed pinyin: up to {MAX_LETTERS} letters a-z and "
                                     "apostrophes, and optionally one mark at the end (, . ? ! "
                                     "; : \\), which commits the first candidate (`commit`)")
    context: str = Field("", max_length=SERVER_MAX_TEXT, strict=True,
                         description="the text already committed before it")
    k: WholeNumber = Field(9, ge=1, le=SERVER_MAX_K, strict=True,
                           description="candidates of each kind")
    fuzzy: list[FuzzyRule] | None = Field(
        None, max_length=len(FUZZY_RULES),
        description="fuzzy pinyin rules to use (GET /api/pinyin/options lists them); "
                    "default: the server's (`rnn-ime serve --fuzzy`), [] for none")


class PinyinCandidate(BaseModel):
    text: str
    words: list[str]
    letters: int = Field(description="characters of `letters` it consumes")
    log_prob: float
    score: float


class PinyinCommit(BaseModel):
    text: str = Field(description="what to insert: the first candidate and the full-width mark")
    letters: int = Field(description="characters of `letters` it stands for (all, the mark "
                                     "included)")


class PinyinResponse(BaseModel):
    model: str
    letters: str
    phrases: list[PinyinCandidate] = Field(description="for the whole input, best first")
    first_words: list[PinyinCandidate] = Field(description="what the input can start with")
    candidates: list[PinyinCandidate] = Field(
        description="the list to show, in order: the best phrases, then first words (k at most)")
    commit: PinyinCommit | None = Field(
        None, description="only when `letters` ends in a mark: what typing it commits")
    latency_ms: float


class PinyinOptions(BaseModel):
    fuzzy_rules: list[str] = Field(description="every fuzzy pinyin rule, for `fuzzy`")
    fuzzy_default: list[str] = Field(description="the rules used when a request has no `fuzzy`")
    punctuation: dict[str, str] = Field(description="a mark typed → its full-width form")


class Word(BaseModel):
    word: str
    probability: float


class SuggestResponse(BaseModel):
    model: str
    suggestions: list[Word]
    latency_ms: float = Field(description="time the model took, without queueing or HTTP")


class Continuation(BaseModel):
    words: list[str]
    text: str
    probability: float


class CompleteResponse(BaseModel):
    model: str
    continuations: list[Continuation]
    latency_ms: float


class HealthResponse(BaseModel):
    status: Literal["ok"]
    model: str
    vocab_size: int
    config: dict[str, Any]


class FieldError(BaseModel):
    field: str
    message: str


class ErrorResponse(BaseModel):
    error: str = Field(description="one line saying what is wrong")
    errors: list[FieldError] = []


ERROR_RESPONSES: dict[int | str, dict[str, Any]] = {
    400: {"model": ErrorResponse, "description": "The body is not JSON"},
    422: {"model": ErrorResponse, "description": "A field is missing, of the wrong type or "
                                                 "out of range"},
}


# ---------------------------------------------------------------- inference, one at a time
class Engine:
    """The predictor behind a lock; every call runs in a worker thread and is timed. Texts are
    read through a ContextReader, so a keystroke costs a step or two of the scorer, not a
    re-read of the whole text (`context_cache` bounds its cache; 0: none, every text read
    whole, the path before the cache).

    The worker thread stays even for a call of a fraction of a millisecond: running it on the
    event loop instead, when the lock is free, measured slower with 20 clients on 2 cores
    (bench/serve_load.py: ≈750 against ≈1,050 requests/s), since torch releases the GIL and the
    loop parses the next requests meanwhile.
    """

    def __init__(self, predictor: Predictor, context_cache: int = DEFAULT_ENTRIES,
                 lexicon: Lexicon | None = None, fuzzy: Iterable[str] = ()) -> None:
        self.predictor = predictor
        self.reader = ContextReader(predictor, context_cache)
        self.lexicon = lexicon  # None: the model's (open_lexicon), without a user's word list
        self.fuzzy = check_fuzzy(fuzzy)  # a request's default
        self._lock = threading.Lock()

    def _timed(self, work: Callable[[], T]) -> tuple[T, float]:
        with self._lock:
            start = time.perf_counter()
            result = work()
            return result, (time.perf_counter() - start) * 1000

    async def run(self, work: Callable[[], T]) -> tuple[T, float]:
        return await run_in_threadpool(self._timed, work)

    def suggest(self, text: str, k: int) -> list[dict[str, Any]]:
        return [s.as_dict() for s in self.reader.suggest(text, k)]

    def complete(self, text: str, beam: int, length: int) -> list[dict[str, Any]]:
        context = self.reader.read(text)
        vocab = self.predictor.vocab
        out = []
        for found in beam_search(self.predictor.scorer, context.ids, beam, length,
                                 start=(context.state, context.log_probs)):
            words = [vocab.word(i) for i in found.word_ids]
            out.append({"words": words, "text": "".join(words),
                        "probability": round(math.exp(found.log_prob), 6)})
        return out

    def pinyin(self, typed: str, context: str, k: int,
               fuzzy: Iterable[str] | None = None) -> dict[str, Any]:
        """The decoding of `typed` (its letters; a trailing mark adds `commit`)."""
        settings = DecoderSettings(k=k, fuzzy=self.fuzzy if fuzzy is None else frozenset(fuzzy))
        letters, _ = split_mark(typed)
        read = self.reader.read(context)
        found = decode(self.predictor.scorer, letters, read.ids, settings, self.lexicon,
                       start=(read.state, read.log_probs))
        answer = found.as_dict(limit=k)
        commit = commit_of(found, typed)
        if commit is not None:
            answer["commit"] = commit.as_dict()
        return answer


# ---------------------------------------------------------------- errors: 4xx, one clear line
def _field_error(error: dict[str, Any]) -> FieldError:
    """One of pydantic's errors, without the offending input (never echoed back)."""
    where = ".".join(str(part) for part in error.get("loc", ()) if part != "body")
    if where:
        return FieldError(field=where, message=error.get("msg", ""))
    if error.get("type") == "missing":
        return FieldError(field="body", message="missing; send a JSON object")
    return FieldError(field="body", message="must be a JSON object, like {\"text\": \"我今天\"}")


NOT_JSON = "the request body is not valid JSON"


async def _validation_error(_: Request, exc: RequestValidationError) -> JSONResponse:
    if any(e.get("type") == "json_invalid" for e in exc.errors()):
        return JSONResponse(ErrorResponse(error=NOT_JSON).model_dump(), status_code=400)
    errors = [_field_error(e) for e in exc.errors()]
    line = "; ".join(f"{e.field}: {e.message}" for e in errors) or "invalid request"
    return JSONResponse(ErrorResponse(error=line, errors=errors).model_dump(), status_code=422)


async def _http_error(_: Request, exc: Exception) -> JSONResponse:
    """404, 405, and FastAPI's 400 for a body it cannot even decode (bytes that are not UTF-8)."""
    assert isinstance(exc, StarletteHTTPException)
    message = str(exc.detail)
    if exc.status_code == 400 and message.startswith("There was an error parsing the body"):
        message = NOT_JSON
    return JSONResponse(ErrorResponse(error=message).model_dump(), status_code=exc.status_code,
                        headers=exc.headers)


async def _user_error(_: Request, exc: Exception) -> JSONResponse:
    return JSONResponse(ErrorResponse(error=str(exc)).model_dump(), status_code=400)


# ---------------------------------------------------------------- the app
def _jsonable_config(predictor: Predictor) -> dict[str, Any]:
    model_config = getattr(getattr(predictor.scorer, "model", None), "config", None)
    return {"model": asdict(model_config)} if is_dataclass(model_config) else {}


PRIVATE_TRAIN_KEYS = ("data", "out", "extra")  # local paths and free-form notes


def public_config(config: dict[str, Any]) -> dict[str, Any]:
    """What /api/health shows of a model dir's config.json: the architecture, tokenizer and
    training settings, never a local path (the data manifest and the data/out dirs)."""
    out = {k: v for k, v in config.items() if k != "data_manifest"}
    if isinstance(out.get("train"), dict):
        out["train"] = {k: v for k, v in out["train"].items() if k not in PRIVATE_TRAIN_KEYS}
    return out


class LimitBodySize:
    """ASGI middleware: a body over `limit` bytes gets 413 (text is capped at 2,000 characters).

    A declared Content-Length is checked before anything is read; a body without one (sent
    chunked) is counted as its pieces arrive and refused as soon as the count passes the
    limit, so at most `limit` bytes and one piece are ever held. The pieces read are then
    handed on to the app unchanged.
    """

    def __init__(self, app: Any, limit: int) -> None:
        self.app = app
        self.limit = limit

    async def _refuse(self, scope: Any, receive: Any, send: Any) -> None:
        message = f"the request body is larger than {self.limit:,} bytes"
        response = JSONResponse(ErrorResponse(error=message).model_dump(), status_code=413,
                                headers={"Connection": "close"})
        await response(scope, receive, send)

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        length = dict(scope.get("headers") or []).get(b"content-length")
        if length is not None and (not length.isdigit() or int(length) > self.limit):
            await self._refuse(scope, receive, send)
            return
        read: list[Any] = []
        size = 0
        while True:
            message = await receive()
            read.append(message)
            if message["type"] != "http.request":  # the client went away
                break
            size += len(message.get("body", b""))
            if size > self.limit:
                await self._refuse(scope, receive, send)
                return
            if not message.get("more_body", False):
                break

        async def replay() -> Any:
            return read.pop(0) if read else await receive()

        await self.app(scope, replay, send)


def create_app(predictor: Predictor, config: dict[str, Any] | None = None,
               context_cache: int = DEFAULT_ENTRIES, lexicon: Lexicon | None = None,
               fuzzy: Iterable[str] = ()) -> FastAPI:
    """The ASGI app around one predictor; `config` is the model dir's config.json, shown by
    /api/health without its local paths (public_config); `context_cache`, `lexicon` (the
    pinyin lexicon, with a user's word lists) and `fuzzy` (the default rules): see Engine."""
    engine = Engine(predictor, context_cache, lexicon, fuzzy)
    options = PinyinOptions(fuzzy_rules=list(FUZZY_RULES),
                            fuzzy_default=[r for r in FUZZY_RULES if r in engine.fuzzy],
                            punctuation=dict(FULL_WIDTH))
    health = HealthResponse(status="ok", model=predictor.model_name or "model",
                            vocab_size=len(predictor.vocab),
                            config=public_config(config) if config is not None
                            else _jsonable_config(predictor))
    # docs_url/redoc_url load their scripts from a CDN, which the page must never need.
    app = FastAPI(title="rnn-ime", version="1", docs_url=None, redoc_url=None,
                  description="Next-word suggestions from a recurrent neural network.")
    app.add_exception_handler(RequestValidationError, _validation_error)
    app.add_exception_handler(StarletteHTTPException, _http_error)
    app.add_exception_handler(RnnImeError, _user_error)
    # a plain ASGI middleware: @app.middleware("http") costs a task and two streams a request
    app.add_middleware(LimitBodySize, limit=SERVER_MAX_BODY_BYTES)
    app.state.engine = engine

    # The answers are built as plain dicts and sent as they are (a Response skips FastAPI's
    # re-validation of the return value); response_model still documents them in the schema,
    # and tests/test_server.py checks that they match it.
    @app.post("/api/suggest", response_model=SuggestResponse, responses=ERROR_RESPONSES)
    async def suggest(request: SuggestRequest) -> JSONResponse:
        """The k most likely next words after `text`, with their probabilities."""
        words, ms = await engine.run(lambda: engine.suggest(request.text, request.k))
        return JSONResponse({"model": health.model, "suggestions": words,
                             "latency_ms": round(ms, 3)})

    @app.post("/api/complete", response_model=CompleteResponse, responses=ERROR_RESPONSES)
    async def complete(request: CompleteRequest) -> JSONResponse:
        """Up to `beam` continuations of `length` words, most probable first (beam search)."""
        found, ms = await engine.run(
            lambda: engine.complete(request.text, request.beam, request.length))
        return JSONResponse({"model": health.model, "continuations": found,
                             "latency_ms": round(ms, 3)})

    @app.post("/api/pinyin", response_model=PinyinResponse, responses=ERROR_RESPONSES)
    async def pinyin(request: PinyinRequest) -> JSONResponse:
        """Chinese candidates for typed pinyin after `context`, ranked by the model."""
        found, ms = await engine.run(
            lambda: engine.pinyin(request.letters, request.context, request.k, request.fuzzy))
        return JSONResponse({"model": health.model, **found, "latency_ms": round(ms, 3)})

    @app.get("/api/pinyin/options", response_model=PinyinOptions)
    async def pinyin_options() -> PinyinOptions:
        """The fuzzy pinyin rules (and the server's default) and the marks a composition
        commits on, with their full-width forms: the page builds its settings from them."""
        return options

    @app.get("/api/health", response_model=HealthResponse)
    async def get_health() -> HealthResponse:
        """The model's name, vocabulary size and configuration."""
        return health

    @app.api_route("/", methods=["GET", "HEAD"], include_in_schema=False)
    async def page() -> FileResponse:
        return FileResponse(STATIC / "index.html", headers=PAGE_HEADERS)

    app.mount("/static", StaticFiles(directory=STATIC), name="static")
    return app


# ---------------------------------------------------------------- running it
def listen(host: str, port: int) -> socket.socket:
    """A listening TCP socket on host:port (port 0: a free one), or a one-line ConfigError."""
    if not 0 <= port <= 65535:
        raise ConfigError(f"--port must be between 0 and 65535, not {port}")
    try:
        family, kind, proto, _, address = socket.getaddrinfo(
            host, port, type=socket.SOCK_STREAM, proto=socket.IPPROTO_TCP)[0]
        # proto must say TCP: asyncio sets TCP_NODELAY only on sockets whose proto is TCP, and
        # without it Nagle's algorithm adds ~40 ms to every keep-alive request.
        sock = socket.socket(family, kind, proto)
    except OSError as exc:  # socket.gaierror is an OSError too
        raise _listen_error(host, port, exc) from None
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(address)
        sock.listen(2048)
    except OSError as exc:
        sock.close()
        raise _listen_error(host, port, exc) from None
    return sock


def _listen_error(host: str, port: int, exc: OSError) -> ConfigError:
    reason = os.strerror(exc.errno) if exc.errno and exc.errno > 0 else exc.strerror or exc
    return ConfigError(f"cannot listen on {host}:{port} ({reason}); "
                       "choose another --host or --port")


def url_of(sock: socket.socket) -> str:
    host, port = sock.getsockname()[:2]
    return f"http://[{host}]:{port}/" if ":" in host else f"http://{host}:{port}/"


def _say(message: str) -> None:
    print(message, flush=True)


def serve(model_dir: str, host: str = "127.0.0.1", port: int = 8000,
          log: Callable[[str], None] = _say, mixture: bool = True,
          context_cache: int = DEFAULT_ENTRIES, fuzzy: Iterable[str] = (),
          word_lists: Iterable[str | Path] = (),
          log_note: Callable[[str], None] = _say) -> None:
    """Load the model, listen, and serve until Ctrl-C. `fuzzy`: the pinyin rules a request
    (and the page) starts with; `word_lists`: the user's, laid over the pinyin lexicon."""
    import uvicorn

    from .modeldir import load_config

    fuzzy = check_fuzzy(fuzzy)
    predictor = Predictor.from_dir(model_dir, mixture=mixture)
    # the pinyin lexicon now, not on the first request (its base is cached on disk)
    lexicon = open_lexicon(predictor.vocab, list(word_lists))
    if note := skipped_note(lexicon):
        log_note(note)
    app = create_app(predictor, load_config(Path(model_dir)), context_cache, lexicon, fuzzy)
    predictor.suggest("你好", 1)  # jieba builds its dictionary now, not on the first request
    # What is loaded now lives as long as the server: out of the collector's sight, or every
    # full collection walks it all (≈0.2 s with the lexicon, stalling every request in flight).
    gc.collect()
    gc.freeze()
    sock = listen(host, port)
    log(f"rnn-ime: serving {model_dir} at {url_of(sock)} (Ctrl-C stops)")
    if not host.startswith("127.") and host not in ("localhost", "::1"):
        log("rnn-ime: note: the API has no authentication; anyone who can reach "
            f"{host} can use it")
    server = uvicorn.Server(uvicorn.Config(app, log_level="warning", access_log=False))
    try:
        server.run(sockets=[sock])
    finally:
        sock.close()
