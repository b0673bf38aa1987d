-- Every segment an audience targets must be a segment the RFM map can produce.
with

audiences as (

    select * from {{ ref('audiences') }}

),

segment_map as (

    select * from {{ ref('rfm_segment_map') }}

),

final as (

    select audiences.*
    from audiences
    left join segment_map
        on audiences.segment = segment_map.segment
    where segment_map.segment is null

)

select * from final
