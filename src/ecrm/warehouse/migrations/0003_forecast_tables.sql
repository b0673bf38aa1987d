-- 0003: the forecast's tables (docs/predictions.md). ecrm.predict writes them between the build's
-- two dbt invocations; dbt reads them as the source `predictions` (models/staging/predictions), so
-- they must exist before the first build, which a table created by the forecast's first run did not
-- guarantee (a first `dbt run` of a fresh warehouse failed on the missing source).
create schema if not exists marts;
create table if not exists marts.fct_clv_model_fits (
    fit_date            date not null,
    model               text not null check (model in ('bgnbd', 'gamma_gamma')),
    parameters          jsonb not null,
    time_unit           text not null,
    log_likelihood      double precision not null,
    customers           integer not null,
    distinct_summaries  integer not null,
    converged           boolean not null,
    calibration_start   date,
    calibration_end     date not null,
    penalizer           double precision not null default 0,
    primary key (fit_date, model)
);
create table if not exists marts.fct_customer_predictions_daily (
    snapshot_date          date not null,
    customer_id            text not null,
    repeat_purchases       integer not null,
    p_alive                double precision not null,
    expected_orders_30d    double precision not null,
    expected_orders_90d    double precision not null,
    expected_orders_365d   double precision not null,
    expected_order_value   double precision not null,
    clv_12m                double precision not null,
    churn_risk             text not null check (churn_risk in ('low', 'medium', 'high')),
    expected_next_order_date date,
    fit_date               date not null,
    primary key (snapshot_date, customer_id)
);
create table if not exists marts.fct_clv_forecast_daily (
    snapshot_date             date not null,
    horizon_days              integer not null,
    expected_active_customers double precision not null,
    expected_orders           double precision not null,
    expected_orders_low       double precision not null,
    expected_orders_high      double precision not null,
    expected_revenue          double precision not null,
    customers                 integer not null,
    primary key (snapshot_date, horizon_days)
);
create table if not exists marts.fct_clv_backtest_runs (
    snapshot_date      date primary key,
    status             text not null check (status in ('done', 'skipped')),
    skipped_reason     text,
    calibration_start  date,
    calibration_end    date,
    holdout_days       integer not null,
    customers          integer not null,
    parameters         jsonb,
    converged          boolean
);
create table if not exists marts.fct_clv_backtest (
    snapshot_date                 date not null,
    calibration_repeat_purchases  integer not null,
    customers                     integer not null,
    predicted_orders_mean         double precision not null,
    actual_orders_mean            double precision not null,
    primary key (snapshot_date, calibration_repeat_purchases)
);

-- warehouses whose forecast created these tables before this migration: the first version of the
-- fits table kept the fit's duration (a rerun must give the same table; it is in ops.stage_runs)
-- and had no penalizer
alter table marts.fct_clv_model_fits drop column if exists fit_seconds;
alter table marts.fct_clv_model_fits add column if not exists penalizer double precision not null default 0;
