-- 0007: discounts (issue 29). An order carries any number of discount codes, each with a type and an
-- amount (Shopify's discount_codes, WooCommerce's coupon lines); older exports carry no discount at all.
--
-- raw.orders.discount_codes: the codes as a JSON array [{"code", "type", "amount"}] in the order the
-- shop listed them (type percentage | fixed_amount | shipping, amount the money taken off, as text
-- with two decimals), normalised by the loader (ecrm.sources.shop.parse_discount_codes). NULL when
-- the file has no discount_codes column or the order no codes; a legacy single coupon_code stays in
-- its own column and becomes one code of unknown type in dbt (stg_shop__order_discounts).
-- discount_amount may now be NULL: a file without the column says nothing about discounts, and 0
-- would claim the order was bought at full price.
-- raw.email_campaigns.discount_code: the code a campaign carries (its holdout gets none), from the
-- ESP's campaign metadata, so the discount marts can compare the campaign's recipients with its holdout.
alter table raw.orders alter column discount_amount drop not null;
alter table raw.orders add column if not exists discount_codes jsonb;
alter table raw.order_lines alter column discount_amount drop not null;
alter table raw.email_campaigns add column if not exists discount_code text;
