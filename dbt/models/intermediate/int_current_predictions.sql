-- The predictions analysts see: for each ingest_date, those of the newest model version that
-- scored it (after a promotion and rescore, the new champion's).
with latest as (
    select ingest_date, max(model_version) as model_version
    from {{ ref('stg_predictions') }}
    group by ingest_date
)

select predictions.*
from {{ ref('stg_predictions') }} as predictions
join latest
    on  latest.ingest_date = predictions.ingest_date
    and latest.model_version = predictions.model_version
