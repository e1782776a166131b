-- Unsuppressed cells must satisfy min <= p10 <= p25 <= median <= p75 <= p90 <= max, and
-- suppressed cells must not leak any statistic. Returns the offending rows.
select *
from {{ ref('mart_price_distribution') }}
where (
        not suppressed
        and not (
            min_value <= p10_value
            and p10_value <= p25_value
            and p25_value <= median_value
            and median_value <= p75_value
            and p75_value <= p90_value
            and p90_value <= max_value
        )
    )
    or (
        suppressed
        and coalesce(median_value, p10_value, p25_value, p75_value, p90_value, min_value, max_value) is not null
    )
    or (not suppressed and median_value is null)
