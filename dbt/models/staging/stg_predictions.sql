select
    cast(ingest_date as date)          as ingest_date,
    review_id,
    label                              as predicted_label,
    cast(confidence as double)         as confidence,
    cast(score_negative as double)     as score_negative,
    cast(score_neutral as double)      as score_neutral,
    cast(score_positive as double)     as score_positive,
    model_name,
    cast(model_version as integer)     as model_version,
    run_id
from {{ source('lake', 'predictions') }}
