-- Debounce, on Trigger.dev's timeline: delay 5s, maxDelay 30s, a trigger
-- every 2 seconds.  taskorch.test_clock fixes the time trigger() counts
-- from (in 2099, so no worker takes the runs meanwhile).
CREATE FUNCTION deb_echo(payload jsonb) RETURNS jsonb LANGUAGE sql AS $$ SELECT payload $$;
SELECT taskorch.register_task('deb-echo', 'deb_echo(jsonb)');
SELECT taskorch.register_task('deb-other', 'deb_echo(jsonb)');
CREATE TABLE timeline (at int, run text, due text);
CREATE FUNCTION trigger_at(secs int, debounce jsonb DEFAULT '{"key": "chat-123", "delay": "5s", "maxDelay": "30s"}')
RETURNS text LANGUAGE plpgsql AS $$
DECLARE
	run text;
BEGIN
	PERFORM set_config('taskorch.test_clock',
					   (timestamptz '2099-01-01 00:00:00+00' + secs * interval '1 second')::text, true);
	run := taskorch.trigger('deb-echo', jsonb_build_object('trigger', secs / 2 + 1), debounce => debounce);
	INSERT INTO timeline
	SELECT secs, r.id, CASE WHEN r.status = 'DELAYED'
							THEN extract(epoch FROM r.delayed_until - '2099-01-01 00:00:00+00')::int || 's'
							ELSE r.status::text END
	  FROM taskorch.run r WHERE r.id = run;
	RETURN run;
END $$;

SELECT trigger_at(s) FROM generate_series(0, 30, 2) s \g /dev/null
-- each trigger, the run it landed on (A or B) and when that run is now due
SELECT t.at || 's' AS time, 'Trigger ' || (t.at / 2 + 1) AS event,
	   CASE WHEN t.run = (SELECT run FROM timeline ORDER BY at LIMIT 1) THEN 'Run A' ELSE 'Run B' END AS run,
	   t.due AS scheduled_for
  FROM timeline t ORDER BY t.at;
-- at 28s run A was queued (it executes), and run B took over
SELECT CASE WHEN id = (SELECT run FROM timeline ORDER BY at LIMIT 1) THEN 'Run A' ELSE 'Run B' END AS run,
	   status, payload, extract(epoch FROM created_at - '2099-01-01 00:00:00+00') AS created_at_s
  FROM taskorch.runs WHERE task_id = 'deb-echo' ORDER BY created_at;
SELECT count(*) AS runs_made FROM taskorch.run WHERE task_id = 'deb-echo';

-- leading (the default) keeps the first trigger's data; trailing takes the last's
SELECT taskorch.cancel_runs(task => ARRAY['deb-echo']) IS NOT NULL AS cleared;
SELECT trigger_at(0, '{"key": "lead", "delay": "5s"}') AS lead \gset
SELECT trigger_at(2, '{"key": "lead", "delay": "5s"}') = :'lead' AS same_run;
SELECT payload FROM taskorch.runs WHERE id = :'lead';
SELECT trigger_at(0, '{"key": "trail", "delay": "5s", "mode": "trailing"}') AS trail \gset
SELECT trigger_at(2, '{"key": "trail", "delay": "5s", "mode": "trailing"}') = :'trail' AS same_run;
SELECT payload FROM taskorch.runs WHERE id = :'trail';

-- keys are per task
SET taskorch.test_clock = '2099-01-01 00:00:00+00';
SELECT taskorch.trigger('deb-other', debounce => '{"key": "lead", "delay": "5s"}') <> :'lead' AS other_task_other_run;
-- idempotency wins over debounce
SELECT taskorch.trigger('deb-echo', idempotency_key => 'idem', debounce => '{"key": "d1", "delay": "5s"}') AS idem \gset
SELECT taskorch.trigger('deb-echo', idempotency_key => 'idem', debounce => '{"key": "d2", "delay": "5s"}') = :'idem' AS idempotency_wins;
-- the options object takes it too
SELECT taskorch.trigger('deb-echo', '{}', '{"debounce": {"key": "lead", "delay": "5s"}}') = :'lead' AS from_options;

-- once the run has left DELAYED, the key makes a new run
SELECT taskorch.cancel(:'lead') AS canceled;
SELECT taskorch.trigger('deb-echo', debounce => '{"key": "lead", "delay": "5s"}') <> :'lead' AS new_run;

-- refusals
SELECT taskorch.trigger('deb-echo', debounce => '{"key": "k"}');
SELECT taskorch.trigger('deb-echo', debounce => '{"delay": "5s"}');
SELECT taskorch.trigger('deb-echo', debounce => '{"key": "k", "delay": "500ms"}');
SELECT taskorch.trigger('deb-echo', debounce => '{"key": "k", "delay": "5s", "mode": "middle"}');
SELECT taskorch.trigger('deb-echo', debounce => '{"key": "k", "delay": "5s", "wait": 1}');
SELECT taskorch.trigger('deb-echo', debounce => '"k"');
SELECT taskorch.trigger('deb-echo', delay => '1h', debounce => '{"key": "k", "delay": "5s"}');
RESET taskorch.test_clock;
SELECT taskorch.cancel_runs(task => ARRAY['deb-echo', 'deb-other']) IS NOT NULL AS cleared;
