-- 0004: loads keyed by the file's place in the landing zone (SOURCE/DAY/NAME), not by its absolute
-- path: after the zone moved (ECRM_LANDING changed, another mount point) a changed file replaced
-- nothing and was appended to its earlier load. `file` keeps the path as the loader found it.
-- Earlier rows get the last three parts of their path (the zone's layout is landing/SOURCE/DAY/NAME).
alter table ops.load_ledger add column if not exists file_key text;
update ops.load_ledger
set file_key = array_to_string((string_to_array(file, '/'))[greatest(cardinality(string_to_array(file, '/')) - 2, 1):], '/')
where file_key is null and status <> 'failed';
create index if not exists load_ledger_file_key on ops.load_ledger (source, file_key);
