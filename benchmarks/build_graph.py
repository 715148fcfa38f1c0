"""make bench-build-graph: demo data (5,000 users / 100,000 goods) into a fresh database, then build-graph.

Targets on the 2-core machine: demo data under 60 s; build-graph under 30 s and 2 GB peak.
"""

from __future__ import annotations

import os
import tempfile

from _common import fresh_database, graphrec, report, run_measured

USERS = int(os.environ.get("BENCH_USERS", 5000))
GOODS = int(os.environ.get("BENCH_GOODS", 100000))


def main() -> None:
    with fresh_database() as url, tempfile.TemporaryDirectory() as artifacts:
        env = {"GRAPHREC_DATABASE_URL": url, "GRAPHREC_PATHS__ARTIFACTS": artifacts}
        run_measured(graphrec("db", "init"), env)
        demo_s, demo_mb, _ = run_measured(
            graphrec("demo-data", "--users", str(USERS), "--goods", str(GOODS), "--seed", "0"), env
        )
        build_s, build_mb, out = run_measured(graphrec("build-graph"), env)
        audit_s, _, _ = run_measured(graphrec("audit"), env)
    print(out.strip().splitlines()[-1] if out.strip() else "")
    report(
        {
            "users": USERS,
            "goods": GOODS,
            "demo_data_s": demo_s,
            "demo_data_peak_mb": demo_mb,
            "build_graph_s": build_s,
            "build_graph_peak_mb": build_mb,
            "audit_s": audit_s,
        }
    )


if __name__ == "__main__":
    main()
