-- The batch each ingest_date reads: the one the curated table holds for it, if the ingest run that
-- wrote it succeeded. That run's record is the commit record of the batch's four tables (curated,
-- quarantine, duplicates, labels): rows of a batch killed between two of its commits, or replaced
-- since, are never read (spark_jobs/tables.py).
select distinct
    curated.ingest_date,
    curated.batch_id
from {{ lake_source('curated') }} as curated
where exists (
    select 1
    from {{ lake_source('runs') }} as runs
    where runs.run_id = curated.batch_id
      and runs.stage = 'ingest'
      and runs.status = 'succeeded'
)
