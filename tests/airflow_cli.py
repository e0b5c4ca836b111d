"""``airflow`` as the tests run it: Airflow's own CLI, with one cost of ``airflow dags test`` before 3.3 cut.

Before Airflow 3.3, ``airflow dags test`` builds its in-process Execution API (a FastAPI app with
every API version, ~15 s of CPU on these 2-core machines) again for every task it runs; 3.3 builds
it once per process (``functools.lru_cache`` on ``supervisor.in_process_api_server``). A 3-way
mapped DAG with deferrals runs its tasks 7 times: minutes per DAG on 3.0-3.2. This caches it as 3.3
does, and changes nothing else: the same app serves every task, as on 3.3.

    python tests/airflow_cli.py dags test DAG_ID [...]   (tests.support.airflow_cli builds this)
"""

from __future__ import annotations

import functools
import sys


def _build_the_in_process_api_once() -> None:
    from airflow.sdk.execution_time import supervisor

    built = supervisor.in_process_api_server
    if not hasattr(built, "cache_info"):  # Airflow 3.3+ caches it itself
        supervisor.in_process_api_server = functools.lru_cache(maxsize=1)(built)


if __name__ == "__main__":
    del sys.path[0]  # run as a script: this folder must not shadow what Airflow or a DAG imports
    _build_the_in_process_api_once()
    from airflow.__main__ import main

    sys.argv[0] = "airflow"
    sys.exit(main())
