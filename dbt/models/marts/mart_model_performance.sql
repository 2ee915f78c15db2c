-- ingest_date x model version x how it scored (champion or shadow): accuracy and macro-F1 against
-- the labels. F1 per class is 2TP / (2TP + FP + FN), 0 when the class was never right; the macro
-- average runs over the classes present in the labels or the predictions (as scikit-learn does).
with labelled as (
    select * from {{ ref('int_labelled_predictions') }}
),

classes as (
    select distinct scored_as, ingest_date, model_version, class_label
    from (
        select scored_as, ingest_date, model_version, predicted_label as class_label from labelled
        union all
        select scored_as, ingest_date, model_version, true_label as class_label from labelled
    ) as both_sides
),

per_class as (
    select
        classes.scored_as,
        classes.ingest_date,
        classes.model_version,
        classes.class_label,
        sum(case when labelled.predicted_label = classes.class_label
                  and labelled.true_label = classes.class_label then 1 else 0 end)   as true_positives,
        sum(case when labelled.predicted_label = classes.class_label
                  and labelled.true_label <> classes.class_label then 1 else 0 end)  as false_positives,
        sum(case when labelled.predicted_label <> classes.class_label
                  and labelled.true_label = classes.class_label then 1 else 0 end)   as false_negatives
    from classes
    join labelled
        on  labelled.scored_as = classes.scored_as
        and labelled.ingest_date = classes.ingest_date
        and labelled.model_version = classes.model_version
    group by 1, 2, 3, 4
),

f1 as (
    select
        *,
        {{ ratio('2 * true_positives', '2 * true_positives + false_positives + false_negatives') }} as f1
    from per_class
),

overall as (
    select
        scored_as,
        ingest_date,
        model_version,
        max(model_name)                                                 as model_name,
        count(*)                                                        as n_labelled,
        sum(case when predicted_label = true_label then 1 else 0 end)   as n_correct
    from labelled
    group by 1, 2, 3
),

by_model as (
    select
        scored_as,
        ingest_date,
        model_version,
        avg(f1)                                                         as macro_f1,
        max(case when class_label = 'negative' then f1 end)             as f1_negative,
        max(case when class_label = 'neutral' then f1 end)              as f1_neutral,
        max(case when class_label = 'positive' then f1 end)             as f1_positive
    from f1
    group by 1, 2, 3
),

current_version as (
    select ingest_date, max(model_version) as model_version
    from {{ ref('stg_predictions') }}
    group by ingest_date
)

select
    overall.ingest_date,
    overall.model_name,
    overall.model_version,
    overall.scored_as,
    coalesce(overall.scored_as = 'champion' and overall.model_version = current_version.model_version, false)
                                                                        as is_current,
    cast(overall.n_labelled as bigint)                                  as n_labelled,
    cast(overall.n_correct as bigint)                                   as n_correct,
    {{ ratio('overall.n_correct', 'overall.n_labelled') }}              as accuracy,
    by_model.macro_f1,
    by_model.f1_negative,
    by_model.f1_neutral,
    by_model.f1_positive
from overall
join by_model
    on  by_model.scored_as = overall.scored_as
    and by_model.ingest_date = overall.ingest_date
    and by_model.model_version = overall.model_version
left join current_version
    on  current_version.ingest_date = overall.ingest_date
