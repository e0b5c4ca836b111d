"""The seeded fault campaign: hundreds of DAG runs on a real Airflow 3.3 cluster
(api-server, scheduler, dag-processor, two triggerers, PostgreSQL; LocalExecutor and a
CeleryExecutor slice) under drawn faults, judged for duplicates, lost results and hung tasks.

Modules: ``plan`` (seed -> fault plan), ``runner`` (the rolling pool on one cluster), ``inject``
(process kills, cluster-wide faults, forged callbacks), ``procs`` (finding task processes),
``db`` (reading Airflow's database), ``verify`` (the verdict on each task), ``report`` (the table),
``campaign`` (everything together) and ``__main__`` (the CLI). See docs/reliability.md.
"""
