-- Every (r_score, f_score) cell 1..5 x 1..5 maps to exactly one segment, and nothing else is mapped.
with

segment_map as (

    select * from {{ ref('rfm_segment_map') }}

),

cells as (

    select
        r.r_score,
        f.f_score

    from generate_series(1, 5) as r (r_score)
    cross join generate_series(1, 5) as f (f_score)

),

cell_counts as (

    select
        cells.r_score,
        cells.f_score,
        count(segment_map.segment) as n_segments

    from cells
    left join segment_map
        on
            cells.r_score = segment_map.r_score
            and cells.f_score = segment_map.f_score
    group by cells.r_score, cells.f_score

),

failures as (

    select
        r_score,
        f_score,
        n_segments,
        'cell not mapped exactly once' as problem

    from cell_counts
    where n_segments <> 1

    union all

    select
        r_score,
        f_score,
        1 as n_segments,
        'score outside 1..5 or empty segment' as problem

    from segment_map
    where
        r_score not between 1 and 5
        or f_score not between 1 and 5
        or coalesce(segment, '') = ''

)

select * from failures
