{#
  Generic test: every row's `columns` values exist as `to_columns` in `to` (a composite foreign key).
  The model is read through a subquery: with a `where` config dbt hands it over as one, aliased.
#}
{% test relationships_on(model, columns, to, to_columns) %}
select {% for c in columns %}child.{{ c }}{{ ', ' if not loop.last }}{% endfor %}
from (select * from {{ model }}) as child
where not exists (
    select 1
    from {{ to }} as parent
    where {% for c in columns %}parent.{{ to_columns[loop.index0] }} = child.{{ c }}{{ ' and ' if not loop.last }}{% endfor %}
)
{% endtest %}
