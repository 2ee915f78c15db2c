-- One row per batch (ingest_date): what the ingest run counted (landed = curated + quarantined +
-- duplicates + lost), what the lake holds, and the most frequent quarantine reasons.
with ingest_runs as (
    select
        *,
        count(*) over (partition by batch_date) as n_ingest_runs,
        -- the run that speaks for the batch: its latest success, else its latest attempt
        row_number() over (
            partition by batch_date
            order by case when status = 'succeeded' then 0 else 1 end, started_at desc, run_id desc
        ) as rank_in_batch
    from {{ ref('stg_pipeline_runs') }}
    where stage = 'ingest' and batch_date is not null
),

ingest_run as (
    select * from ingest_runs where rank_in_batch = 1
),

curated as (
    select ingest_date, count(*) as n_rows
    from {{ ref('stg_documents') }}
    group by ingest_date
),

quarantined as (
    select ingest_date, count(*) as n_rows
    from {{ ref('stg_quarantine') }}
    group by ingest_date
),

labelled as (
    select ingest_date, count(*) as n_rows
    from {{ ref('stg_labels') }}
    group by ingest_date
),

reason_counts as (
    select
        ingest_date,
        reason,
        count(*) as n_rows,
        row_number() over (partition by ingest_date order by count(*) desc, reason) as rank_in_batch
    from {{ ref('stg_quarantine_reasons') }}
    group by ingest_date, reason
),

top_reasons as (
    select
        ingest_date,
        max(case when rank_in_batch = 1 then reason end)       as top_reason,
        max(case when rank_in_batch = 1 then n_rows end)       as top_reason_rows,
        cast({{ dbt.listagg(
            measure="reason || ' (' || cast(n_rows as varchar) || ')'",
            delimiter_text="', '",
            order_by_clause="order by rank_in_batch",
        ) }} as varchar)                                       as top_reasons
    from reason_counts
    where rank_in_batch <= 3
    group by ingest_date
),

batches as (
    select batch_date as ingest_date from ingest_run
    union
    select ingest_date from curated
    union
    select ingest_date from quarantined
)

select
    batches.ingest_date,
    ingest_run.status                                               as ingest_status,
    ingest_run.run_id                                               as ingest_run_id,
    cast(coalesce(ingest_run.n_ingest_runs, 0) as bigint)           as n_ingest_runs,
    ingest_run.rows_in                                              as landed,
    ingest_run.rows_out                                             as curated,
    ingest_run.rows_rejected                                        as quarantined,
    ingest_run.rows_duplicate                                       as duplicates,
    ingest_run.rows_lost                                            as lost,
    ingest_run.rows_in = ingest_run.rows_out + ingest_run.rows_rejected + coalesce(ingest_run.rows_duplicate, 0)
                         + coalesce(ingest_run.rows_lost, 0)
                                                                    as is_balanced,
    {{ ratio('ingest_run.rows_rejected', 'ingest_run.rows_in') }}   as share_quarantined,
    cast(coalesce(curated.n_rows, 0) as bigint)                     as curated_in_lake,
    cast(coalesce(quarantined.n_rows, 0) as bigint)                 as quarantined_in_lake,
    cast(coalesce(labelled.n_rows, 0) as bigint)                    as labelled_in_lake,
    top_reasons.top_reason,
    cast(top_reasons.top_reason_rows as bigint)                     as top_reason_rows,
    top_reasons.top_reasons
from batches
left join ingest_run on ingest_run.batch_date = batches.ingest_date
left join curated on curated.ingest_date = batches.ingest_date
left join quarantined on quarantined.ingest_date = batches.ingest_date
left join labelled on labelled.ingest_date = batches.ingest_date
left join top_reasons on top_reasons.ingest_date = batches.ingest_date
