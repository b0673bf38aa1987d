-- 0009: a finished stage wakes what waits for it. Every insert or update of ops.stage_runs sends
-- NOTIFY ecrm_stage_runs '<stage> <run_date>', delivered when the stage's transaction commits (never
-- for one that rolls back). The Airflow sensors' trigger (ecrm.orchestration.StagesDoneTrigger)
-- LISTENs and re-checks at once instead of polling every few seconds (issue 27: a day's wall time
-- within 1.5x its work on a Celery cluster). A row written by hand wakes the waiters too.
create or replace function ops.notify_stage_run() returns trigger language plpgsql as $$
begin
    perform pg_notify('ecrm_stage_runs', new.stage || ' ' || new.run_date::text);
    return null;
end
$$;

drop trigger if exists stage_runs_notify on ops.stage_runs;
create trigger stage_runs_notify after insert or update on ops.stage_runs
    for each row execute function ops.notify_stage_run();
