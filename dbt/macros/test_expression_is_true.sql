{# Generic test: the rows for which `expression` is false (dbt_utils is not reachable offline). #}
{% test expression_is_true(model, expression, column_name=none) %}
select *
from {{ model }}
where not ({{ expression }})
{% endtest %}
