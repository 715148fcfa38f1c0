"""`graphrec evaluate --dataset PATH`: the LightGCN directory format, the S3-Rec sequence file, and errors
that name the file and line."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from evaluation.datasets.files import load_dataset_path
from evaluation.run import load_public, recommenders
from graphrec.core.config import load_config


def test_a_lightgcn_directory(tmp_path: Path) -> None:
    (tmp_path / "train.txt").write_text("0 0 1\n1 1 2\n2 0\n")
    (tmp_path / "test.txt").write_text("0 2\n1 0\n")
    es = load_dataset_path(tmp_path)
    assert es.name == tmp_path.name and es.users.tolist() == [0, 1]
    assert es.train.saves.toarray().tolist() == [[1, 1, 0], [0, 1, 1], [1, 0, 0]]
    assert es.test.toarray().tolist() == [[0, 0, 1], [1, 0, 0]]
    assert es.train.save_time is None and es.train.content is None
    # Through the evaluator's loader: a path is a data set; no order, so no sequence row.
    names = [r.name for r in recommenders(load_public(str(tmp_path), Path("unused")), (), load_config())]
    assert "ease" in names and "sasrec" not in names


def test_a_sequence_file_with_and_without_attributes(tmp_path: Path) -> None:
    seq = tmp_path / "Toys.txt"
    seq.write_text("1 1 2 3\n2 3 1\n3 2 3 1 4\n")
    es = load_dataset_path(seq)
    assert es.name == "Toys" and es.train.content is None
    assert es.test.toarray().tolist() == [[0, 0, 1, 0], [1, 0, 0, 0], [0, 0, 0, 1]]
    assert es.train.validation.toarray().tolist() == [[0, 1, 0, 0], [0, 0, 1, 0], [1, 0, 0, 0]]
    assert es.train.save_time.toarray()[2].tolist() == [-1, -3, -2, 0]  # 2, 3, 1 oldest first, 4 the test
    (tmp_path / "Toys_item2attributes.json").write_text(json.dumps({"1": [9, 5], "2": [5], "3": [6], "4": [9, 6]}))
    es = load_dataset_path(seq)
    assert es.train.content is not None and es.train.content.shape[0] == 4
    assert np.array_equal(es.train.domain, [0, -1, -1, 0])
    names = [r.name for r in recommenders(es, (), load_config())]
    assert "sasrec" in names and "ease" in names


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("1 1 2\n2 x 3\n", r"Bad\.txt:2: expected integer ids"),
        ("1 1 2\n2 0 3\n", r"Bad\.txt:2: ids are 1-based"),
        ("1 1 2\n\n1 3 4\n", r"Bad\.txt:3: user 1 already has a line \(1\)"),
        ("1 1 2\n2\n", r"Bad\.txt:2: user 2 has no items"),
        ("\n\n", r"Bad\.txt: no interactions"),
    ],
)
def test_a_bad_sequence_file_names_its_line(tmp_path: Path, text: str, message: str) -> None:
    (tmp_path / "Bad.txt").write_text(text)
    with pytest.raises(ValueError, match=message):
        load_dataset_path(tmp_path / "Bad.txt")


def test_anything_else_is_named(tmp_path: Path) -> None:
    (tmp_path / "train.txt").write_text("0 1\n")
    with pytest.raises(ValueError, match="needs test.txt"):
        load_dataset_path(tmp_path)
    (tmp_path / "blob.bin").write_bytes(b"\xff\xfe\x00\x81")
    with pytest.raises(ValueError, match=r"blob\.bin: not a text file"):
        load_dataset_path(tmp_path / "blob.bin")
    (tmp_path / "test.txt").write_text("0 a\n")
    with pytest.raises(ValueError, match=r"test\.txt:1: expected integer ids"):
        load_dataset_path(tmp_path)
    with pytest.raises(FileNotFoundError, match="no data set at"):
        load_dataset_path(tmp_path / "nowhere")
    with pytest.raises(ValueError, match="not one of demo, gowalla, beauty"):
        load_public(str(tmp_path / "nowhere"), tmp_path)


def test_the_command_takes_a_path(migrated_url: str, artifacts: Path, tmp_path: Path) -> None:
    from click.testing import CliRunner

    from graphrec.app.cli import cli

    rng = np.random.default_rng(0)
    lines = [" ".join(map(str, [u, *rng.choice(np.arange(1, 31), 6, replace=False)])) for u in range(1, 41)]
    (tmp_path / "Tiny.txt").write_text("\n".join(lines) + "\n")
    env = {"GRAPHREC_DATABASE_URL": migrated_url, "GRAPHREC_PATHS__ARTIFACTS": str(artifacts)}
    out = artifacts / "report"
    args = ["evaluate", "--dataset", str(tmp_path / "Tiny.txt"), "--models", "popularity,ease", "--out", str(out)]
    r = CliRunner().invoke(cli, args, env=env, catch_exceptions=False)
    assert r.exit_code == 0, r.output
    rows = {row["name"] for row in json.loads((out / "metrics.json").read_text())["datasets"]["Tiny"]["rows"]}
    assert rows == {"popularity", "ease"}
    (tmp_path / "Tiny.txt").write_text("1 2 3\nfoo\n")
    r = CliRunner().invoke(cli, ["evaluate", "--dataset", str(tmp_path / "Tiny.txt"), "--out", str(out)], env=env)
    assert r.exit_code != 0 and "Tiny.txt:2: expected integer ids" in r.output
