"""ONNX export and OnnxScorer: the same answers as torch, through every Scorer use."""

import json
import shutil
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
import torch

from conftest import tiny_train_config
from rnn_ime import modeldir
from rnn_ime.cli import main
from rnn_ime.data import DataDir
from rnn_ime.errors import ConfigError, ModelError
from rnn_ime.metrics import evaluate
from rnn_ime.model import ModelConfig, NextWordModel
from rnn_ime.onnx_export import ExportConfig, export_model, reranked_log_softmax
from rnn_ime.onnx_runtime import OnnxScorer
from rnn_ime.predict import Predictor
from rnn_ime.scoring import NeuralScorer
from rnn_ime.train import TrainConfig, train
from rnn_ime.vocab import BOS_ID


@dataclass
class AdaptiveTrainConfig(TrainConfig):
    """The adaptive softmax on a tiny vocabulary: explicit cutoffs (auto needs 5,000 words)."""

    def model_config(self, vocab_size: int) -> ModelConfig:
        config = super().model_config(vocab_size)
        config.softmax, config.cutoffs = "adaptive", [20, 30]  # 20 frequent words in the head
        return config


def _copy_model(source: Path, target: Path) -> Path:
    shutil.copytree(source, target, ignore=shutil.ignore_patterns("logs", "train_state.pt"))
    return target


@pytest.fixture(scope="module")
def full_model(small_model, tmp_path_factory) -> Path:
    """The shared small model (LSTM, full softmax), copied so exports stay out of it."""
    return _copy_model(small_model, tmp_path_factory.mktemp("onnx") / "full")


@pytest.fixture(scope="module")
def adaptive_model(small_data, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("onnx") / "adaptive"
    options = {**vars(tiny_train_config(small_data, out, max_steps=100)), "cell": "gru",
               "layers": 2}
    train(AdaptiveTrainConfig(**options), log=lambda *_: None)
    return out


@pytest.fixture(scope="module")
def window_model(small_data, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("onnx") / "window"
    train(tiny_train_config(small_data, out, objective="window", bidirectional=True,
                            max_steps=30), log=lambda *_: None)
    return out


def _contexts(data: Path, n: int = 60) -> list[list[int]]:
    """Prefixes of test passages, 0 to 6 words long."""
    split = DataDir(data).split("test")
    out = []
    for index in range(len(split.starts)):
        words = split.passage_tokens(index)[1:].tolist()
        out.append(words[:index % 7])
        if len(out) == n:
            break
    return out


def _step_through(scorer, context: list[int]) -> torch.Tensor:
    state, log_probs = scorer.step(scorer.start(), BOS_ID)
    for word_id in context:
        state, log_probs = scorer.step(state, word_id)
    return log_probs


def _top5(log_probs: torch.Tensor) -> list[int]:
    return log_probs[3:].topk(5).indices.tolist()  # never <pad>, <unk>, <s>


@pytest.mark.parametrize("which", ["full_model", "adaptive_model", "window_model"])
def test_fp32_export_gives_the_torch_log_probs(which, request, small_data):
    model_dir = request.getfixturevalue(which)
    summary = export_model(ExportConfig(model=str(model_dir)))
    assert Path(summary["path"]) == model_dir / "model.onnx"
    assert summary["max_abs_diff"] < 1e-4
    model, vocab, _ = modeldir.load(model_dir)
    torch_scorer = NeuralScorer(model, vocab)
    onnx_scorer, _ = OnnxScorer.from_dir(model_dir)
    contexts = _contexts(small_data)
    want = torch_scorer.log_probs(contexts)
    got = onnx_scorer.log_probs(contexts)
    assert got.shape == want.shape and torch.allclose(got, want, atol=1e-4)
    for context, row in zip(contexts[:20], want, strict=False):
        stepped = _step_through(onnx_scorer, context)
        assert torch.allclose(stepped, row, atol=1e-4)
        assert _top5(stepped) == _top5(row)


@pytest.mark.parametrize("which", ["full_model", "adaptive_model"])
def test_evaluation_on_onnx_matches_torch(which, request, small_data):
    model_dir = request.getfixturevalue(which)
    export_model(ExportConfig(model=str(model_dir)))
    model, vocab, _ = modeldir.load(model_dir)
    split = DataDir(small_data).split("test")
    want = evaluate(NeuralScorer(model, vocab), split)
    got = evaluate(OnnxScorer.from_dir(model_dir)[0], split)
    assert got["words"] == want["words"]
    assert abs(got["loss"] - want["loss"]) < 1e-3
    for k in ("top1", "top3", "top5"):
        assert abs(got[k] - want[k]) < 0.005


def _int8_agreement(model_dir: Path, data: Path, **options) -> tuple[float, float]:
    """(same top 5 in the same order, same set of 5) of int8 against fp32 torch."""
    summary = export_model(ExportConfig(model=str(model_dir), int8=True, **options))
    assert summary["precision"] == "int8"
    model, vocab, _ = modeldir.load(model_dir)
    contexts = _contexts(data, 100)
    want = NeuralScorer(model, vocab).log_probs(contexts)
    got = OnnxScorer(summary["path"], vocab).log_probs(contexts)
    assert (got - want).abs().max() < 0.5
    pairs = list(zip(got, want, strict=True))
    return (float(np.mean([_top5(a) == _top5(b) for a, b in pairs])),
            float(np.mean([set(_top5(a)) == set(_top5(b)) for a, b in pairs])))


# The templates make near-ties (8 equally likely subjects, …). The decoder, or the adaptive
# head, is re-scored in fp32, so its words keep their order. This small model's clusters have
# up-projections too narrow for int8 (they stay fp32); between a head word and a cluster word
# the int8 normalisers decide, and near-ties may swap.
@pytest.mark.parametrize("which,ordered,same_set", [
    ("full_model", 0.97, 0.97), ("window_model", 0.97, 0.97), ("adaptive_model", 0.75, 0.95)])
def test_int8_top5_agrees_with_fp32(which, ordered, same_set, request, small_data):
    model_dir = request.getfixturevalue(which)
    agreement = _int8_agreement(model_dir, small_data)
    assert agreement[0] >= ordered and agreement[1] >= same_set
    assert (model_dir / "model.int8.onnx").is_file()


def test_plain_int8_quantisation_still_mostly_agrees(full_model, small_data, tmp_path):
    # every MatMul and the LSTM in int8, nothing re-scored: near-ties may swap
    ordered, same_set = _int8_agreement(full_model, small_data, rerank=0, quantize_rnn=True,
                                        out=str(tmp_path / "plain.onnx"))
    assert ordered >= 0.7 and same_set >= 0.8


@pytest.mark.parametrize("bias", [True, False])
def test_reranked_log_softmax_is_exact_in_fp32(bias):
    torch.manual_seed(0)
    layer, x = torch.nn.Linear(8, 40, bias=bias), torch.randn(3, 8)
    with torch.no_grad():
        want = torch.log_softmax(layer(x), dim=-1)
        assert torch.allclose(reranked_log_softmax(layer, x, 5), want, atol=1e-5)
        assert torch.allclose(reranked_log_softmax(layer, x, 100), want, atol=1e-5)


def test_cli_export_and_predict_with_the_onnx_runtime(full_model, tmp_path, capsys):
    model_dir = _copy_model(full_model, tmp_path / "m")
    for name in ("model.onnx", "model.int8.onnx"):
        (model_dir / name).unlink(missing_ok=True)
    main(["export", "--model", str(model_dir), "--format", "onnx"])
    main(["export", "--model", str(model_dir), "--int8"])
    assert "wrote" in capsys.readouterr().out
    answers = {}
    for runtime in (["--runtime", "torch"], ["--runtime", "onnx"], ["--runtime", "onnx",
                                                                       "--int8"]):
        main(["predict", "--model", str(model_dir), "--json", *runtime, "我今天去"])
        answers[" ".join(runtime)] = json.loads(capsys.readouterr().out)["suggestions"]
    torch_words = [s["word"] for s in answers["--runtime torch"]]
    assert [s["word"] for s in answers["--runtime onnx"]] == torch_words
    assert set(s["word"] for s in answers["--runtime onnx --int8"][:3]) & set(torch_words[:3])


def test_a_typing_session_runs_on_onnx(full_model):
    export_model(ExportConfig(model=str(full_model)))
    predictor = Predictor.from_dir(full_model, runtime="onnx")
    session = predictor.session()
    session.commit_text("我今天去北京")
    stateless = predictor.suggest("我今天去北京", k=5)
    assert [s.word for s in session.suggestions(5)] == [s.word for s in stateless]


def test_missing_export_is_a_one_line_error(full_model, tmp_path, capsys):
    model_dir = _copy_model(full_model, tmp_path / "m")
    (model_dir / "model.int8.onnx").unlink(missing_ok=True)
    with pytest.raises(SystemExit) as exit_info:
        main(["predict", "--model", str(model_dir), "--runtime", "onnx", "--int8", "我"])
    assert exit_info.value.code == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "rnn-ime export" in err and "--int8" in err
    with pytest.raises(ConfigError):
        Predictor.from_dir(model_dir, int8=True)  # --int8 without --runtime onnx


def test_a_stale_export_is_refused(full_model, tmp_path):
    model_dir = _copy_model(full_model, tmp_path / "m")
    export_model(ExportConfig(model=str(model_dir), out=str(tmp_path / "x.onnx")))
    model, _, _ = modeldir.load(model_dir)
    with torch.no_grad():
        model.embedding.weight.add_(0.01)  # "retrained"
    modeldir.save_weights(model, model_dir / "best.safetensors")
    with pytest.raises(ModelError, match="export"):
        OnnxScorer.from_dir(model_dir, path=tmp_path / "x.onnx")


@pytest.mark.parametrize("which", ["full_model", "adaptive_model", "window_model"])
def test_a_batched_onnx_step_is_each_step(which, request):
    model_dir = request.getfixturevalue(which)
    export_model(ExportConfig(model=str(model_dir)))
    scorer, _ = OnnxScorer.from_dir(model_dir)
    states, words = [scorer.start()], [BOS_ID]
    for context in ([4], [6, 9, 3]):
        state, _ = scorer.step(scorer.start(), BOS_ID)
        for word_id in context:
            state, _ = scorer.step(state, word_id)
        states.append(state)
        words.append(context[0] + 1)
    for (state, log_probs), before, word_id in zip(scorer.step_batch(states, words), states,
                                                    words, strict=True):
        want_state, want = scorer.step(before, word_id)
        assert torch.allclose(log_probs, want, atol=1e-5)
        assert torch.allclose(scorer.step(state, 5)[1], scorer.step(want_state, 5)[1], atol=1e-5)


def test_int8_rescores_each_ranking_layer_exactly(tmp_path):
    """An adaptive model wide enough that cluster 1's up-projection is int8 (128/4 = 32 inputs)
    and cluster 2's is not (8): within the head and within each cluster, the int8 graph's top
    words have the fp32 log-probs up to one constant (that layer's normaliser estimate)."""
    import onnx

    from rnn_ime.onnx_export import _quantize, _torch_export, graph_spec, projection
    from rnn_ime.onnx_runtime import new_session

    torch.manual_seed(0)
    model = NextWordModel(ModelConfig(vocab_size=3000, embed=32, hidden=128,
                                      softmax="adaptive", cutoffs=[200, 1000])).eval()
    fp32, int8 = tmp_path / "fp32.onnx", tmp_path / "int8.onnx"
    _torch_export(graph_spec(model), fp32)
    _torch_export(graph_spec(model, projection(32)), tmp_path / "to-quantize.onnx")
    _quantize(tmp_path / "to-quantize.onnx", int8, ExportConfig(model="", int8=True),
              down_projections=2)
    ops = {node.name: node.op_type for node in onnx.load(str(int8)).graph.node}
    assert ops["/tail.0.0/MatMul"] == ops["/tail.1.0/MatMul"] == "MatMul"  # fp32
    assert ops["/tail.1.1/MatMul"] == "MatMul" and "/tail.0.1/MatMul" not in ops
    feeds = {"word_ids": np.arange(3, 9), "h": np.random.default_rng(0).normal(
        0, 0.5, (1, 6, 128)).astype(np.float32)}
    want = new_session(fp32).run(["log_probs"], feeds)[0]
    got = new_session(int8).run(["log_probs"], feeds)[0]
    for begin, end in [(0, 200), (200, 1000), (1000, 3000)]:
        for row_want, row_got in zip(want[:, begin:end], got[:, begin:end], strict=True):
            top = np.argsort(-row_want)[:5]
            assert np.argsort(-row_got)[:5].tolist() == top.tolist()
            offsets = row_got[top] - row_want[top]
            assert np.ptp(offsets) < 1e-4


def test_int8_export_refuses_a_graph_it_cannot_read(tmp_path):
    import onnx

    from rnn_ime.errors import RnnImeError
    from rnn_ime.onnx_export import _torch_export, fp32_matmuls, graph_spec

    model = NextWordModel(ModelConfig(vocab_size=3000, hidden=64, softmax="adaptive",
                                      cutoffs=[200, 1000])).eval()
    _torch_export(graph_spec(model), tmp_path / "m.onnx")
    proto = onnx.load(str(tmp_path / "m.onnx"))
    assert len(fp32_matmuls(proto, down_projections=2)) >= 4
    with pytest.raises(RnnImeError, match="found 2 adaptive-softmax down-projections"):
        fp32_matmuls(proto, down_projections=3)
