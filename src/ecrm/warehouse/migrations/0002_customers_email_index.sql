-- 0002: the gate's email_not_shared check joins the day's customers to all customers by the
-- normalized address; without this index PostgreSQL looped over every customer per new customer
-- (> 3 min at 1M customers in benchmarks/bench_day.py; an index probe each with it).
create index if not exists customers_email_normalized on raw.customers ((lower(trim(email))));
