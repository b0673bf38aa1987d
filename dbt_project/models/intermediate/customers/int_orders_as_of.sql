-- Orders placed before the end of run_date, with the status they had at that moment
-- (from the status history), so a later refund does not rewrite an earlier day.
with

orders as (

    select * from {{ ref('stg_shop__orders') }}

),

status_history as (

    select * from {{ ref('stg_shop__order_status_history') }}

),

orders_placed as (

    select * from orders
    where ordered_at < {{ as_of_ts() }}

),

status_ranked as (

    select
        order_id,
        status,
        row_number() over (
            partition by order_id
            order by
                status_changed_at desc,
                case status
                    when 'refunded' then 5
                    when 'cancelled' then 4
                    when 'shipped' then 3
                    when 'paid' then 2
                    else 1
                end desc
        ) as status_rank

    from status_history
    where status_changed_at < {{ as_of_ts() }}

),

latest_status as (

    select
        order_id,
        status

    from status_ranked
    where status_rank = 1

),

statused as (

    select
        orders_placed.order_id,
        orders_placed.customer_id,
        orders_placed.email,
        orders_placed.ordered_at,
        orders_placed.order_date,
        orders_placed.currency,
        orders_placed.total_amount,
        orders_placed.discount_amount,
        orders_placed.coupon_code,
        orders_placed.status as current_status,
        coalesce(
            latest_status.status,
            case
                -- the row we hold was written after run_date: its cancellation/refund is
                -- in the future from run_date's point of view
                when
                    orders_placed.updated_at >= {{ as_of_ts() }}
                    and orders_placed.status in ('cancelled', 'refunded')
                    then 'placed'
                else orders_placed.status
            end
        ) as status

    from orders_placed
    left join latest_status
        on orders_placed.order_id = latest_status.order_id

),

final as (

    select
        order_id,
        customer_id,
        email,
        ordered_at,
        order_date,
        status,
        current_status,
        currency,
        total_amount,
        discount_amount,
        coupon_code,
        status in ('placed', 'paid', 'shipped') as is_valid_order,
        status = 'cancelled' as is_cancelled,
        status = 'refunded' as is_refunded

    from statused

)

select * from final
