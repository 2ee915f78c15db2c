-- One row per product of a source (a clothing item of the reviews, an airline of the tweets): its
-- department and class, when it was reviewed, its mean rating, and the sentiment of its current
-- predictions, overall and over the latest 7 ingest days.
with documents as (
    select *
    from {{ ref('stg_documents') }}
    where product_id is not null
),

-- A product's department and class: the pair most of its documents carry (ties: alphabetical).
attributes as (
    select
        source,
        product_id,
        department,
        product_class,
        row_number() over (
            partition by source, product_id
            order by count(*) desc, department nulls last, product_class nulls last
        ) as rank_in_product
    from documents
    group by source, product_id, department, product_class
),

reviewed as (
    select
        source,
        product_id,
        min(ingest_date)                                 as first_seen_date,
        max(ingest_date)                                 as last_seen_date,
        count(*)                                         as n_documents,
        avg(cast(rating as {{ type_double() }}))         as mean_rating
    from documents
    group by source, product_id
),

latest_week as (
    select {{ add_days('max(ingest_date)', -6) }} as first_date
    from {{ ref('stg_documents') }}
),

sentiment as (
    select
        predictions.source,
        predictions.product_id,
        count(*)                                                                     as n_scored,
        sum(case when predictions.predicted_label = 'negative' then 1 else 0 end)     as n_negative,
        sum(case when predictions.predicted_label = 'positive' then 1 else 0 end)     as n_positive,
        sum(case when predictions.predicted_label = 'negative'
                  and predictions.ingest_date >= latest_week.first_date then 1 else 0 end)
                                                                                     as n_negative_last_7_days
    from {{ ref('fct_predictions') }} as predictions
    cross join latest_week
    where predictions.is_current and predictions.product_id is not null
    group by predictions.source, predictions.product_id
)

select
    reviewed.source,
    reviewed.product_id,
    attributes.department,
    attributes.product_class,
    reviewed.first_seen_date,
    reviewed.last_seen_date,
    cast(reviewed.n_documents as bigint)                                     as n_documents,
    reviewed.mean_rating,
    cast(coalesce(sentiment.n_scored, 0) as bigint)                          as n_scored,
    cast(coalesce(sentiment.n_negative, 0) as bigint)                        as n_negative,
    cast(coalesce(sentiment.n_positive, 0) as bigint)                        as n_positive,
    {{ ratio('sentiment.n_negative', 'sentiment.n_scored') }}                as share_negative,
    cast(coalesce(sentiment.n_negative_last_7_days, 0) as bigint)            as n_negative_last_7_days
from reviewed
join attributes
    on  attributes.source = reviewed.source
    and attributes.product_id = reviewed.product_id
    and attributes.rank_in_product = 1
left join sentiment
    on  sentiment.source = reviewed.source
    and sentiment.product_id = reviewed.product_id
