-- One row per document and model version, with the document's attributes.
select
    p.ingest_date,
    p.review_id,
    d.product_id,
    d.department,
    d.product_class,
    d.rating,
    p.predicted_label,
    p.confidence,
    p.score_negative,
    p.score_neutral,
    p.score_positive,
    p.model_name,
    p.model_version,
    p.run_id
from {{ ref('stg_predictions') }} p
join {{ ref('stg_documents') }} d using (review_id, ingest_date)
