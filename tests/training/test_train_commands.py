"""`graphrec train` through the real CLI on a tiny graph artifact."""

from __future__ import annotations

from pathlib import Path

from click.testing import CliRunner

from graphrec.app.cli import cli
from graphrec.core.artifacts import (
    GRAPH_FORMAT_VERSION,
    current_model,
    graphs_dir,
    models_dir,
    save_graph,
    write_pointer,
)
from training.checkpoint import load_trained

FAST = [
    "--set",
    "train.embedding_dim=8",
    "--set",
    "train.max_epochs=2",
    "--set",
    "train.steps_per_epoch=3",
    "--set",
    "train.batch_size=64",
    "--set",
    "train.negatives=32",
    "--set",
    "train.fanouts=4,4",
]


def run(artifacts: Path, *args: str) -> str:
    result = CliRunner().invoke(cli, ["--set", f"paths.artifacts={artifacts}", *FAST, "train", *args])
    assert result.exit_code == 0, result.output + repr(result.exception)
    return result.output


def test_train_saves_versions_and_promotes_only_when_asked(planted, artifacts: Path) -> None:
    data, id_maps, _, _ = planted()
    as_of = int(data["user", "saves", "good"].time.max())
    manifest = {"format_version": GRAPH_FORMAT_VERSION, "name": "g1", "as_of": as_of}  # as build-graph writes
    save_graph(graphs_dir(artifacts) / "g1", data, id_maps, manifest)
    write_pointer(graphs_dir(artifacts) / "LATEST", "g1")
    models = models_dir(artifacts)

    out = run(artifacts, "--model", "lightgcn")  # no CURRENT yet: the first model becomes it
    first = current_model(models)
    assert first is not None and first.name in out and "validation recall@20" in out and "train time" in out
    assert "promoted to CURRENT" in out
    trained = load_trained(first)
    assert trained.kind == "lightgcn" and trained.meta.graph_manifest["name"] == "g1"

    out = run(artifacts, "--model", "pinsage")  # CURRENT exists: default is not to promote
    assert "not promoted" in out and current_model(models) == first
    out = run(artifacts, "--model", "pinsage", "--graph", str(graphs_dir(artifacts) / "g1"), "--promote")
    newest = current_model(models)
    assert newest != first and newest is not None and newest.name in out
    assert load_trained(newest).kind == "pinsage"
    assert len([p for p in models.iterdir() if p.is_dir()]) == 3


def test_train_without_a_graph_says_what_to_do(artifacts: Path) -> None:
    result = CliRunner().invoke(cli, ["--set", f"paths.artifacts={artifacts}", "train"])
    assert result.exit_code != 0
    assert "build-graph" in result.output


def test_an_unknown_model_names_the_registered_ones(artifacts: Path) -> None:
    result = CliRunner().invoke(cli, ["--set", f"paths.artifacts={artifacts}", "train", "--model", "gcn"])
    assert result.exit_code == 2
    assert "unknown model kind 'gcn'; known kinds: pinsage, lightgcn" in result.output and "--model" in result.output
