-- Bad input to trigger() and retrieve(): a clear error, and nothing changes.
CREATE FUNCTION err_task(payload jsonb) RETURNS jsonb LANGUAGE sql AS $$ SELECT payload $$;
SELECT taskorch.register_task('err-task', 'err_task(jsonb)');
SELECT count(*) AS runs_before FROM taskorch.run \gset
\set VERBOSITY default
\set SHOW_CONTEXT never

SELECT taskorch.trigger('no-such-task', '{}');
SELECT taskorch.trigger(NULL, '{}');
SELECT taskorch.trigger('err-task', NULL);
SELECT taskorch.trigger('err-task', '[1, 2]');
SELECT taskorch.trigger('err-task', '"text"');
SELECT taskorch.trigger('err-task', '42');
SELECT taskorch.trigger('err-task', 'null');

-- payload size limit (taskorch.max_payload_size, default 10MB)
SHOW taskorch.max_payload_size;
SET taskorch.max_payload_size = '1kB';
SELECT taskorch.trigger('err-task', jsonb_build_object('blob', repeat('x', 2000)));
SELECT taskorch.trigger('err-task', jsonb_build_object('small', repeat('x', 100))) IS NOT NULL AS small_ok;
RESET taskorch.max_payload_size;
SET taskorch.max_payload_size = 100;

-- retrieve of unknown or malformed ids
SELECT taskorch.retrieve('run_999999999');
SELECT taskorch.retrieve('nonsense');

-- run_pending() arguments
SELECT taskorch.run_pending(-1);

-- filters, tags, queue and hook arguments refused as a whole
SELECT taskorch.cancel_runs(status => ARRAY['bogus']);
SELECT taskorch.replay_runs(status => ARRAY['FAILED', 'bogus']);
SELECT taskorch.trigger('err-task', tags => ARRAY[['a', 'b'], ['c', 'd']]);
SELECT taskorch.pause_queue('err-task', NULL);
CREATE ROLE regress_err_other;
CREATE FUNCTION err_other_echo(payload jsonb) RETURNS jsonb LANGUAGE sql AS $$ SELECT payload $$;
GRANT EXECUTE ON FUNCTION err_other_echo(jsonb) TO regress_err_other;
SET ROLE regress_err_other;
SELECT taskorch.register_task('err-other', 'err_other_echo(jsonb)', on_success => 'err-task');
RESET ROLE;

-- only the one good trigger above made a run
SELECT wait_for_runs();
SELECT count(*) - :runs_before AS new_runs FROM taskorch.run;
