-- The predictions analysts see: for each ingest_date, those of the newest model version that
-- scored it (after a promotion and --rescore, the new champion's).
with latest as (
    select ingest_date, max(model_version) as model_version
    from {{ ref('stg_predictions') }}
    group by ingest_date
)
select p.*
from {{ ref('stg_predictions') }} p
join latest using (ingest_date, model_version)
