-- The upgrade path: 0.1 upgraded to the current version must equal a fresh
-- install of it, keep its data, and run runs afterwards.
CREATE DATABASE upgrade_fresh;
CREATE DATABASE upgrade_old;

\c upgrade_old
CREATE EXTENSION taskorch VERSION '0.1';
CREATE FUNCTION up_echo(payload jsonb) RETURNS jsonb LANGUAGE sql AS $$ SELECT payload $$;
SELECT taskorch.register_task('up-echo', 'up_echo(jsonb)');
-- the library is newer than this schema: its functions that changed refuse
SELECT taskorch.trigger('up-echo', '{"before": "upgrade"}');
-- a run queued under 0.1 (as 0.1's trigger() wrote it) waits: no worker
-- runs a schema of another version
INSERT INTO taskorch.run (task_id, payload, max_attempts, queue, owner, triggered_by, run_at)
VALUES ('up-echo', '{"before": "upgrade"}', 3, 'up-echo', current_user::regrole, current_user::regrole, now());
SELECT pg_sleep(0.5);
SELECT id, status FROM taskorch.runs;
ALTER EXTENSION taskorch UPDATE;
SELECT extversion FROM pg_extension WHERE extname = 'taskorch';
-- after the update, the workers start and run the queued run
DO $$
BEGIN
	FOR i IN 1..1000 LOOP
		EXIT WHEN NOT EXISTS (SELECT FROM taskorch.runs WHERE status = 'QUEUED');
		PERFORM pg_sleep(0.01);
	END LOOP;
END $$;
SELECT id, status, output, tags, metadata, priority FROM taskorch.runs;
SELECT taskorch.trigger('up-echo', delay => '1h') AS delayed \gset
SELECT status FROM taskorch.runs WHERE id = :'delayed';

-- what an object list looks like, to compare the two databases
CREATE FUNCTION pg_temp.schema_fingerprint() RETURNS text LANGUAGE sql AS $$
	SELECT md5(string_agg(d, E'\n' ORDER BY d)) FROM (
		SELECT pg_describe_object(classid, objid, objsubid) AS d
		  FROM pg_depend
		 WHERE refclassid = 'pg_extension'::regclass AND deptype = 'e'
		   AND refobjid = (SELECT oid FROM pg_extension WHERE extname = 'taskorch')
		UNION ALL
		SELECT format('%s.%s %s %s %s', c.relname, a.attnum, a.attname,
					  format_type(a.atttypid, a.atttypmod), a.attnotnull)
			   || coalesce(' default ' || pg_get_expr(ad.adbin, ad.adrelid), '')
		  FROM pg_attribute a JOIN pg_class c ON c.oid = a.attrelid
		  LEFT JOIN pg_attrdef ad ON ad.adrelid = a.attrelid AND ad.adnum = a.attnum
		 WHERE c.relnamespace = 'taskorch'::regnamespace AND a.attnum > 0 AND NOT a.attisdropped
		UNION ALL
		SELECT pg_get_functiondef(p.oid) || coalesce(p.proacl::text, '')
		  FROM pg_proc p WHERE p.pronamespace = 'taskorch'::regnamespace
		UNION ALL
		SELECT c.relname || ' ' || coalesce(pg_get_viewdef(c.oid), '') || coalesce(c.relacl::text, '')
			   || coalesce(c.reloptions::text, '') || c.relrowsecurity
		  FROM pg_class c WHERE c.relnamespace = 'taskorch'::regnamespace
		UNION ALL
		SELECT pg_get_indexdef(i.indexrelid) FROM pg_index i JOIN pg_class c ON c.oid = i.indrelid
		 WHERE c.relnamespace = 'taskorch'::regnamespace
		UNION ALL
		SELECT format('policy %s on %s: %s', polname, polrelid::regclass, pg_get_expr(polqual, polrelid))
		  FROM pg_policy WHERE polrelid::regclass::text LIKE 'taskorch.%'
	) objects $$;
SELECT pg_temp.schema_fingerprint() AS upgraded \gset

\c upgrade_fresh
CREATE EXTENSION taskorch;
CREATE FUNCTION pg_temp.schema_fingerprint() RETURNS text LANGUAGE sql AS $$
	SELECT md5(string_agg(d, E'\n' ORDER BY d)) FROM (
		SELECT pg_describe_object(classid, objid, objsubid) AS d
		  FROM pg_depend
		 WHERE refclassid = 'pg_extension'::regclass AND deptype = 'e'
		   AND refobjid = (SELECT oid FROM pg_extension WHERE extname = 'taskorch')
		UNION ALL
		SELECT format('%s.%s %s %s %s', c.relname, a.attnum, a.attname,
					  format_type(a.atttypid, a.atttypmod), a.attnotnull)
			   || coalesce(' default ' || pg_get_expr(ad.adbin, ad.adrelid), '')
		  FROM pg_attribute a JOIN pg_class c ON c.oid = a.attrelid
		  LEFT JOIN pg_attrdef ad ON ad.adrelid = a.attrelid AND ad.adnum = a.attnum
		 WHERE c.relnamespace = 'taskorch'::regnamespace AND a.attnum > 0 AND NOT a.attisdropped
		UNION ALL
		SELECT pg_get_functiondef(p.oid) || coalesce(p.proacl::text, '')
		  FROM pg_proc p WHERE p.pronamespace = 'taskorch'::regnamespace
		UNION ALL
		SELECT c.relname || ' ' || coalesce(pg_get_viewdef(c.oid), '') || coalesce(c.relacl::text, '')
			   || coalesce(c.reloptions::text, '') || c.relrowsecurity
		  FROM pg_class c WHERE c.relnamespace = 'taskorch'::regnamespace
		UNION ALL
		SELECT pg_get_indexdef(i.indexrelid) FROM pg_index i JOIN pg_class c ON c.oid = i.indrelid
		 WHERE c.relnamespace = 'taskorch'::regnamespace
		UNION ALL
		SELECT format('policy %s on %s: %s', polname, polrelid::regclass, pg_get_expr(polqual, polrelid))
		  FROM pg_policy WHERE polrelid::regclass::text LIKE 'taskorch.%'
	) objects $$;
SELECT pg_temp.schema_fingerprint() = :'upgraded' AS upgrade_equals_fresh_install;

\c contrib_regression
DROP DATABASE upgrade_fresh;
DROP DATABASE upgrade_old;
