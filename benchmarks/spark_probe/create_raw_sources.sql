{% macro create_raw_sources() %}
  {% set ddl = [
    "create database if not exists raw",
    "create database if not exists ops",
    "create database if not exists mailer",
    "create database if not exists marts",
    "create table if not exists raw.customers (customer_id string, email string, first_name string, country string, signed_up_at timestamp, updated_at timestamp, accepts_marketing boolean, _file string, _line int, _load_id bigint) using parquet",
    "create table if not exists raw.orders (order_id string, customer_id string, email string, created_at timestamp, updated_at timestamp, status string, currency string, total_amount decimal(12,2), discount_amount decimal(12,2), coupon_code string, _file string, _line int, _load_id bigint) using parquet",
    "create table if not exists raw.order_status_history (order_id string, status string, updated_at timestamp, _load_id bigint) using parquet",
    "create table if not exists raw.order_lines (order_id string, line_number int, product_id string, product_name string, category string, quantity int, unit_price decimal(12,2), discount_amount decimal(12,2), updated_at timestamp, _file string, _line int, _load_id bigint) using parquet",
    "create table if not exists raw.web_requests (requested_at timestamp, remote_addr string, remote_user string, method string, path string, query_string string, protocol string, status int, bytes_sent bigint, referrer string, user_agent string, is_bot boolean, is_static boolean, utm_source string, utm_medium string, utm_campaign string, customer_token string, order_id string, _file string, _line int, _load_id bigint) using parquet",
    "create table if not exists raw.email_events (event_id string, event string, email string, occurred_at timestamp, campaign_id string, customer_id string, is_machine_open boolean, bounce_type string, reason string, url string, _file string, _line int, _load_id bigint) using parquet",
    "create table if not exists raw.email_campaigns (campaign_id string, name string, sent_at timestamp, audience string, variant string, _file string, _line int, _load_id bigint) using parquet",
    "create table if not exists ops.secrets (name string, value binary, fingerprint string, origin string, created_at timestamp, updated_at timestamp) using parquet",
    "create table if not exists mailer.member_history (day date, target string, adapter string, run_id bigint, audience string, action string, result string, reason string, error string, email_hash string, customer_id string, segment string, sent_at timestamp, run_status string, dry_run boolean, run_mode string) using parquet",
    "create table if not exists marts.fct_customer_predictions_daily (snapshot_date date, customer_id string, repeat_purchases int, p_alive double, expected_orders_30d double, expected_orders_90d double, expected_orders_365d double, expected_order_value double, clv_12m double, churn_risk string, expected_next_order_date date, fit_date date) using parquet",
    "insert overwrite ops.secrets select 'visitor_id', unhex(sha2('probe', 512)), 'fp', 'probe', current_timestamp(), current_timestamp()",
    "insert overwrite raw.customers values ('c1','a@example.com','Ann','DE', timestamp'2026-01-01 10:00:00', timestamp'2026-01-01 10:00:00', true, 'f', 1, 1), ('c2','b@example.com','Bob','FR', timestamp'2026-01-02 10:00:00', timestamp'2026-01-02 10:00:00', false, 'f', 2, 1)",
    "insert overwrite raw.orders values ('o1','c1','a@example.com', timestamp'2026-06-01 10:00:00', timestamp'2026-06-01 10:00:00','paid','EUR', 50.00, 0.00, null, 'f', 1, 2), ('o2','c2','b@example.com', timestamp'2026-06-02 10:00:00', timestamp'2026-06-02 10:00:00','shipped','EUR', 80.00, 5.00, 'X', 'f', 2, 2)",
    "insert overwrite raw.order_lines values ('o1',1,'p1','P1','cat',1,50.00,0.00, timestamp'2026-06-01 10:00:00','f',1,2), ('o2',1,'p2','P2','cat',2,42.50,5.00, timestamp'2026-06-02 10:00:00','f',2,2)",
    "insert overwrite raw.order_status_history values ('o1','paid', timestamp'2026-06-01 10:00:00', 2), ('o2','shipped', timestamp'2026-06-02 10:00:00', 2)",
    "insert overwrite raw.email_campaigns values ('k1','Summer', timestamp'2026-06-01 08:00:00','vip', null, 'f', 1, 3)",
    "insert overwrite raw.email_events values ('e1','delivered','a@example.com', timestamp'2026-06-01 08:01:00','k1','c1', false, null, null, null, 'f', 1, 4), ('e2','click','a@example.com', timestamp'2026-06-01 09:00:00','k1','c1', false, null, null, 'https://shop/x?ct=tok&email=a@example.com', 'f', 2, 4)",
    "insert overwrite raw.web_requests values (timestamp'2026-06-01 09:00:05','10.0.0.1',null,'GET','/products/p1','ct=tok&email=a%40example.com','HTTP/1.1',200,1234,'https://mail.example.com/','Mozilla/5.0',false,false,'esp','email','k1','tok',null,'f',1,5), (timestamp'2026-06-01 09:02:00','10.0.0.1',null,'GET','/checkout/complete','order=o1','HTTP/1.1',200,999,'https://shop/products/p1','Mozilla/5.0',false,false,null,null,null,null,'o1','f',2,5)",
    "insert overwrite marts.fct_customer_predictions_daily values (date'2026-06-03','c1',0,0.9,0.1,0.3,1.0,50.0,50.0,'low',date'2026-09-01',date'2026-06-03'), (date'2026-06-03','c2',0,0.3,0.05,0.1,0.4,80.0,30.0,'high',null,date'2026-06-03')"
  ] %}
  {% for s in ddl %}
    {% do run_query(s) %}
    {{ log("ok: " ~ s[:70], info=True) }}
  {% endfor %}
{% endmacro %}
