-- ingest_date x champion version x challenger version: how often the shadow challenger agrees with
-- the champion's current predictions, and each one's accuracy where labels are known.
select
    ingest_date,
    max(champion_model_name)                                                            as champion_model_name,
    champion_version,
    max(challenger_model_name)                                                          as challenger_model_name,
    challenger_version,
    cast(count(*) as bigint)                                                            as n_compared,
    cast(sum(case when champion_label = challenger_label then 1 else 0 end) as bigint)  as n_agree,
    {{ ratio('sum(case when champion_label = challenger_label then 1 else 0 end)', 'count(*)') }}
                                                                                        as agreement_rate,
    avg(champion_confidence)                                                            as champion_mean_confidence,
    avg(challenger_confidence)                                                          as challenger_mean_confidence,
    cast(count(true_label) as bigint)                                                   as n_labelled,
    {{ ratio('sum(case when champion_label = true_label then 1 else 0 end)', 'count(true_label)') }}
                                                                                        as champion_accuracy,
    {{ ratio('sum(case when challenger_label = true_label then 1 else 0 end)', 'count(true_label)') }}
                                                                                        as challenger_accuracy
from {{ ref('int_shadow_pairs') }}
group by ingest_date, champion_version, challenger_version
