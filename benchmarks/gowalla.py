"""make bench-gowalla: the LightGCN paper's Gowalla table, trained from scratch on this CPU.

Data: ../shared/data/gowalla (or $GRAPHREC_SHARED_DATA/gowalla), read in place. Protocol: for every user with
test items, rank all goods not in that user's train set; Recall@20 and NDCG@20 averaged over those users
(graphrec.core.metrics). Published Recall@20 / NDCG@20: LightGCN 0.1830 / 0.1554, GF-CF 0.1849 / 0.1518.

Models, all in one run:
- gf_cf: the training-free graph filter GF-CF (published settings k=256, alpha=0.3).
- lightgcn: torch_geometric.nn.LightGCN trained by training.models.lightgcn (sampled softmax, full graph propagation
  per step; settings in evaluation/models.py), within --budget-s.
- baseline: PyG's LightGCN with the recipe of PyG's examples/lightgcn.py (3 layers here as in the paper, 64-d,
  batch 8192, BPR, Adam 1e-3, PyG's own message passing), within the same --budget-s.
- gowalla (the main model): the better of gf_cf and lightgcn on the validation split (see MAIN below).

Hyperparameters come from the validation split only: `--select` carves 10% of each user's train.txt goods
(seeded), trains on the rest, and prints validation Recall@20 per epoch for the settings below; test.txt is
read only for the final figures of the default mode, which trains on the whole train.txt.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
import time
from pathlib import Path

import numpy as np
import scipy.sparse as sp
import torch
from _common import ROOT, report

sys.path.insert(0, str(ROOT))

from evaluation.datasets.gowalla import carve_validation, load_gowalla  # noqa: E402
from evaluation.models import gowalla_lightgcn_params  # noqa: E402
from graphrec.core.metrics import ndcg_at_k, recall_at_k, topk, topk_from_vectors  # noqa: E402
from training.graph_filter import filter_basis, gf_cf  # noqa: E402
from training.models.lightgcn import LightGCNParams, train_lightgcn  # noqa: E402

log = logging.getLogger("bench.gowalla")
K = 20

# The LightGCN settings live with the evaluator's Gowalla row (evaluation/models.py), so the two runs agree.
LIGHTGCN = gowalla_lightgcn_params()
GF_CF = {"k": 256, "alpha": 0.3}
# The main model (gowalla_*): whichever of these scored higher on the validation split in --select.
MAIN = "gf_cf"


def data_root() -> Path:
    shared = os.environ.get("GRAPHREC_SHARED_DATA")
    return (Path(shared) if shared else ROOT.parent / "shared" / "data") / "gowalla"


def evaluate(score_users: np.ndarray, truth: sp.csr_matrix, picks: np.ndarray) -> tuple[float, float]:
    rows = truth[score_users]
    return float(recall_at_k(picks, rows, K).mean()), float(ndcg_at_k(picks, rows, K).mean())


def edges(m: sp.csr_matrix) -> tuple[np.ndarray, np.ndarray]:
    coo = m.tocoo()
    return coo.row.astype(np.int64), coo.col.astype(np.int64)


def train_baseline(train: sp.csr_matrix, budget_s: float, seed: int = 0) -> tuple[np.ndarray, np.ndarray, float, int]:
    """PyG's examples/lightgcn.py recipe until ``budget_s`` runs out: (user_vecs, good_vecs, seconds, steps)."""
    from torch_geometric.nn import LightGCN

    torch.manual_seed(seed)
    n_users, n_goods = train.shape
    u, g = edges(train)
    u_t, g_t = torch.from_numpy(u), torch.from_numpy(g) + n_users
    edge_index = torch.stack([torch.cat([u_t, g_t]), torch.cat([g_t, u_t])])
    model = LightGCN(n_users + n_goods, embedding_dim=64, num_layers=3)
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
    start = time.perf_counter()
    steps = 0
    done = False
    while not done:
        for index in torch.randperm(len(u_t)).split(8192):
            pos = torch.stack([u_t[index], g_t[index]])
            neg = torch.stack([u_t[index], torch.randint(n_users, n_users + n_goods, (len(index),))])
            label_index = torch.cat([pos, neg], dim=1)
            optimizer.zero_grad()
            pos_rank, neg_rank = model(edge_index, label_index).chunk(2)
            loss = model.recommendation_loss(pos_rank, neg_rank, node_id=label_index.unique())
            loss.backward()
            optimizer.step()
            steps += 1
            if time.perf_counter() - start > budget_s:
                done = True
                break
        log.info("baseline: %d steps, loss %.4f, %.0f s", steps, loss.item(), time.perf_counter() - start)
    seconds = time.perf_counter() - start
    with torch.no_grad():
        emb = model.get_embedding(edge_index).numpy()
    return emb[:n_users], emb[n_users:], seconds, steps


def select(budget_s: float) -> None:
    """Validation figures (train.txt only) for the settings above: what MAIN and LIGHTGCN were chosen by."""
    split = load_gowalla(data_root())
    fit, val = carve_validation(split.train, share=0.1, seed=0)
    users = np.flatnonzero(np.diff(val.indptr) > 0)

    def validate(user_vecs: np.ndarray, good_vecs: np.ndarray) -> float:
        picks = topk_from_vectors(user_vecs, good_vecs, users, K, exclude=fit, batch_size=2048)
        return float(recall_at_k(picks, val[users], K).mean())

    start = time.perf_counter()
    basis = filter_basis(fit, GF_CF["k"])
    picks = topk(gf_cf(fit, alpha=GF_CF["alpha"], basis=basis), users, K, exclude=fit)
    gf_recall, gf_ndcg = evaluate(users, val, picks)
    gf_s = time.perf_counter() - start
    u, g = edges(fit)
    params = LightGCNParams(**{**LIGHTGCN.__dict__, "max_epochs": 20, "patience": 2, "time_budget_s": budget_s})
    result = train_lightgcn(u, g, fit.shape[0], fit.shape[1], params, validate=validate, progress=True)
    for rec in result.history:
        print(f"val epoch {rec['epoch']}: loss {rec['loss']:.4f} recall@20 {rec['val']} at {rec['seconds']:.0f} s")
    report(
        {
            "val_gf_cf_recall@20": gf_recall,
            "val_gf_cf_ndcg@20": gf_ndcg,
            "val_gf_cf_s": gf_s,
            "val_lightgcn_recall@20": result.best_val or 0.0,
            "val_lightgcn_best_epoch": result.best_epoch or 0,
            "val_lightgcn_train_s": result.train_s,
        }
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--budget-s", type=float, default=600.0, help="training budget of lightgcn and baseline")
    parser.add_argument("--select", action="store_true", help="validation figures only (never reads test.txt)")
    parser.add_argument("--skip-baseline", action="store_true")
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s", stream=sys.stderr)
    if args.select:
        select(args.budget_s)
        return

    bench_start = time.perf_counter()
    split = load_gowalla(data_root())
    train, test = split.train, split.test
    users = np.flatnonzero(np.diff(test.indptr) > 0)
    figures: dict[str, float | int | str] = {"gowalla_users": len(users), "gowalla_items": split.n_items}

    start = time.perf_counter()
    score = gf_cf(train, k=GF_CF["k"], alpha=GF_CF["alpha"])
    gf_fit_s = time.perf_counter() - start
    picks = topk(score, users, K, exclude=train)
    gf_s = time.perf_counter() - start
    figures["gf_cf_recall@20"], figures["gf_cf_ndcg@20"] = evaluate(users, test, picks)
    figures["gf_cf_fit_s"], figures["gf_cf_s"] = gf_fit_s, gf_s
    log.info("gf_cf done: %s", {k: v for k, v in figures.items() if k.startswith("gf_cf")})

    u, g = edges(train)
    params = LightGCNParams(**{**LIGHTGCN.__dict__, "time_budget_s": args.budget_s})
    result = train_lightgcn(u, g, split.n_users, split.n_items, params, progress=True)
    picks = topk_from_vectors(result.user_vecs, result.good_vecs, users, K, exclude=train, batch_size=2048)
    figures["lightgcn_recall@20"], figures["lightgcn_ndcg@20"] = evaluate(users, test, picks)
    figures["lightgcn_train_s"] = result.train_s
    figures["lightgcn_epochs"] = len(result.history)
    log.info("lightgcn done: %s", {k: v for k, v in figures.items() if k.startswith("lightgcn")})

    if not args.skip_baseline:
        user_vecs, good_vecs, base_s, steps = train_baseline(train, args.budget_s)
        picks = topk_from_vectors(user_vecs, good_vecs, users, K, exclude=train, batch_size=2048)
        figures["baseline_recall@20"], figures["baseline_ndcg@20"] = evaluate(users, test, picks)
        figures["baseline_train_s"] = base_s
        figures["baseline_epochs"] = steps / int(np.ceil(train.nnz / 8192))

    main_time = figures["gf_cf_s"] if MAIN == "gf_cf" else figures["lightgcn_train_s"]
    figures["gowalla_model"] = MAIN
    figures["gowalla_recall@20"] = figures[f"{MAIN}_recall@20"]
    figures["gowalla_ndcg@20"] = figures[f"{MAIN}_ndcg@20"]
    figures["gowalla_train_s"] = main_time
    figures["bench_total_s"] = time.perf_counter() - bench_start
    # Four decimals for ranking figures, as the paper's table prints them.
    report({k: f"{v:.4f}" if k.endswith("@20") else v for k, v in figures.items()})


if __name__ == "__main__":
    main()
