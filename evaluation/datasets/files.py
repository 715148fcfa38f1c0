"""Data that is not bundled, named by a path: `graphrec evaluate --dataset PATH`.

Two formats are recognised:
- a directory holding `train.txt` and `test.txt` in the LightGCN format (one line per user,
  ``user_id item_id ...``, 0-based ids): every item is a candidate except the user's train items, as for
  Gowalla; no order, content or domains.
- a sequence file in the S3-Rec format (one line per user, ``user_id item_id ...`` oldest first, 1-based
  ids), with `<stem>_item2attributes.json` beside it when present (brand first, then categories, as for
  Beauty): leave-last-out, the item before the last validates, save order for the sequence model.

Anything else is an error naming the path (or the file and line of the first bad line).
"""

from __future__ import annotations

from pathlib import Path

from evaluation.datasets.beauty import load_sequence_file, sequence_evalset, validation_window
from evaluation.datasets.gowalla import TEST_FILE, TRAIN_FILE, load_gowalla
from evaluation.protocol import EvalSet, from_public

FORMATS = (
    "a directory with train.txt and test.txt (LightGCN format: 'user item item ...', 0-based ids) or a "
    "sequence file (S3-Rec format: one user per line, 'user item item ...' oldest first, 1-based ids, "
    "with <stem>_item2attributes.json beside it when there are attributes)"
)


def attributes_beside(path: Path) -> Path | None:
    """`<stem>_item2attributes.json` next to a sequence file, or None when there is none."""
    candidate = path.with_name(f"{path.stem}_item2attributes.json")
    return candidate if candidate.is_file() else None


def load_dataset_path(path: Path, seed: int = 0, window: str = "test") -> EvalSet:
    """The EvalSet of the data at `path` (see the module docstring for the two formats); window "validation"
    tests a sequence file on each user's item before the last."""
    path = Path(path)
    try:
        return _load(path, seed, window)
    except UnicodeDecodeError:
        raise ValueError(f"{path}: not a text file; expected {FORMATS}") from None


def _load(path: Path, seed: int, window: str) -> EvalSet:
    if path.is_dir():
        if window != "test":
            raise ValueError(f"{path}: a LightGCN-format split has no validation window (train.txt / test.txt only)")
        missing = [n for n in (TRAIN_FILE, TEST_FILE) if not (path / n).is_file()]
        if missing:
            raise ValueError(f"{path}: a directory data set needs {' and '.join(missing)}; expected {FORMATS}")
        g = load_gowalla(path)
        return from_public(
            path.name,
            g.train,
            g.test,
            seed=seed,
            description=f"{path}: LightGCN-format split (train.txt before, test.txt after); no order or content.",
        )
    if path.is_file():
        attributes = attributes_beside(path)
        s = load_sequence_file(path, attributes, name=path.stem)
        return sequence_evalset(
            validation_window(s) if window == "validation" else s,
            seed=seed,
            description=(
                f"{path}: S3-Rec-format sequences, leave-last-out (the last item tests, the one before "
                f"validates); {'attributes from ' + attributes.name if attributes else 'no attributes'}."
            ),
        )
    raise FileNotFoundError(f"no data set at {path}: expected {FORMATS}")
