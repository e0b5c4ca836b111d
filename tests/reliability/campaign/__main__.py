"""``python -m tests.reliability.campaign --seed N --runs K``: the fault campaign on a real Airflow.

Runs seeds N .. N+K-1 (``--runs 1`` reruns exactly seed N's fault plan), prints one line per run
and the table, and exits 1 when a duplicate, lost result, hung task, unexpected failure, forged
callback with an effect or secret hit was seen.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

from tests.reliability.campaign.campaign import plans_for, run_campaign
from veo_provider.testing.cluster import postgres_unavailable, redis_unavailable

EXECUTOR_NAMES = {"local": "LocalExecutor", "celery": "CeleryExecutor"}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tests.reliability.campaign", description=__doc__)
    parser.add_argument("--seed", type=int, default=1000, help="first seed (default 1000)")
    parser.add_argument("--runs", type=int, default=200, help="number of runs = seeds (default 200)")
    parser.add_argument("--concurrency", type=int, default=14, help="DAG runs at once (default 14)")
    parser.add_argument("--celery-share", type=float, default=0.2, help="share of seeds on Celery (default 0.2)")
    parser.add_argument("--executor", choices=sorted(EXECUTOR_NAMES), help="run every seed on this executor")
    parser.add_argument("--plan", action="store_true", help="print the plans and exit (no cluster)")
    parser.add_argument("--workdir", type=Path, help="keep the cluster's files here (default: a temp dir)")
    parser.add_argument("--json", type=Path, help="write the summary as JSON here")
    args = parser.parse_args(argv)

    executor = EXECUTOR_NAMES.get(args.executor) if args.executor else None
    plans = plans_for(range(args.seed, args.seed + args.runs), celery_share=args.celery_share, executor=executor)
    if args.plan:
        print("\n".join(p.describe() for p in plans))
        return 0
    if reason := postgres_unavailable():
        print(f"the campaign needs PostgreSQL: {reason}", file=sys.stderr)
        return 2
    if any(p.executor == "CeleryExecutor" for p in plans) and (reason := redis_unavailable()):
        print(f"the CeleryExecutor slice needs Redis: {reason}", file=sys.stderr)
        return 2
    os.environ.pop("AIRFLOW_HOME", None)
    outcome = run_campaign(plans, concurrency=args.concurrency, workdir=args.workdir, keep=args.workdir is not None)
    print()
    print(outcome.table)
    s = outcome.summary
    if s.defects:
        print("\ndefects:\n" + "\n".join(f"  {line}" for line in s.defects))
    if s.failing_seeds:
        print(f"\nseeds to rerun: {s.failing_seeds}")
    if args.json:
        data = {
            "zero_rows": s.zero_rows(),
            "secret_hits": s.secret_hits,
            "hostile": {"sent": s.hostile_sent, "accepted": s.hostile_accepted},
            "table": outcome.table,
            "events": outcome.events,
        }
        args.json.write_text(json.dumps(data, indent=2, default=str))
    return 0 if s.passed else 1


if __name__ == "__main__":
    sys.exit(main())
