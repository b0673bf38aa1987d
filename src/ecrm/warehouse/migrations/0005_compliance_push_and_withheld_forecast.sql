-- 0004: what a blocked gate and an untrusted forecast leave behind (docs/mailer.md, docs/quality.md).
--
-- mailer.sync_runs.mode: `full` (the published audiences' diff) or `compliance_only` (the removals a
-- person is owed -- unsubscribed, complained, hard-bounced, consent withdrawn -- sent on a day whose
-- gate blocked the publish: removals only, read from what was loaded, never an add or an update).
alter table mailer.sync_runs add column if not exists mode text not null default 'full';
comment on column mailer.sync_runs.mode is 'full | compliance_only (ecrm.mailer.sync)';
create or replace view mailer.member_history as
select r.day, r.target, r.adapter, c.run_id, c.audience, c.action, c.result, c.reason, c.error,
       c.email_hash, c.customer_id, c.segment, c.sent_at, r.status as run_status, r.dry_run, r.mode as run_mode
from mailer.sync_changes as c
inner join mailer.sync_runs as r on r.run_id = c.run_id and r.audience = c.audience;

-- ops.quality_results.withheld: what a failed check withheld instead of blocking the publish
-- (`forecast`: its meta.withholds; the row is then recorded with blocking = false).
alter table ops.quality_results add column if not exists withheld text;

-- ops.publish_runs.withheld: what the day's publish left out and why, e.g.
-- {"forecast": {"reason": "...", "checks": [...], "audiences": {"high_value_at_risk": 41}}}
-- (the audiences kept at their last published members, frozen, with how many).
alter table ops.publish_runs add column if not exists withheld jsonb;
