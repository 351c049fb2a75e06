-- Schedules: cron expressions, their times in time zones, and the runs of
-- their ticks.
SET timezone = 'UTC';

-- cron in words
SELECT c AS cron, taskorch.cron_describe(c) AS description
  FROM unnest(ARRAY['0 9 * * 1-5', '* * * * *', '*/5 * * * *', '0 * * * *', '15 * * * *',
					'30 2 * * *', '0 9,17 * * *', '0 0 1 * *', '0 0 1,15 * *', '0 0 1 * MON',
					'0 0 * * SUN', '0 0 1 1 *', '*/10 * * * * *', '30 0 9 * * *', '0 0 29 2 *',
					'0 */2 * * *', '0 9-17 * * MON-FRI', '*/15 9-17 * * *', '@daily', '@hourly',
					'@weekly', '@monthly', '@yearly', '0 0 * JAN,APR,JUL,OCT *', '0 12 * * 1,3,5',
					'0 12 * * 7', '5/20 * * * *', '0 8-10/2 * * *']) AS c;

-- the next times: steps, lists, ranges, names, seconds, macros
SELECT taskorch.cron_next('*/20 * * * *', 'UTC', 4, '2024-01-01 10:05');
SELECT taskorch.cron_next('0 8-10/2,17 * * *', 'UTC', 4, '2024-01-01 00:00');
SELECT taskorch.cron_next('0 0 * feb,Mar Sat', 'UTC', 3, '2024-01-01');
SELECT taskorch.cron_next('*/15 * * * * *', 'UTC', 5, '2024-01-01 00:00:50');
SELECT taskorch.cron_next('@weekly', 'UTC', 2, '2024-01-01');		-- Sundays
SELECT taskorch.cron_next('5/20 * * * *', 'UTC', 3, '2024-01-01 00:00');
-- day of month and day of week: either, when both are restricted (Vixie);
-- both, when one starts with *
SELECT taskorch.cron_next('0 0 13 * FRI', 'UTC', 4, '2024-09-01');
SELECT taskorch.cron_next('0 0 */10 * FRI', 'UTC', 3, '2024-09-01');
-- leap days and the last days of months
SELECT taskorch.cron_next('0 0 29 2 *', 'UTC', 3, '2024-03-01');
SELECT taskorch.cron_next('0 0 31 * *', 'UTC', 4, '2024-01-31 12:00');
SELECT taskorch.cron_next('0 0 30 2 *', 'UTC', 1, '2024-01-01') AS never;
-- a time zone's offset, and its daylight saving time: in Europe/Paris,
-- 02:30 does not exist on 2024-03-31 (it runs at 03:30, an hour later)
-- and exists twice on 2024-10-27 (it runs once, the second time): one run
-- every day either way
SELECT t AS utc, t AT TIME ZONE 'Europe/Paris' AS paris
  FROM taskorch.cron_next('30 2 * * *', 'Europe/Paris', 3, '2024-03-30 12:00Z') t;
SELECT t AS utc, t AT TIME ZONE 'Europe/Paris' AS paris
  FROM taskorch.cron_next('30 2 * * *', 'Europe/Paris', 3, '2024-10-26 12:00Z') t;
-- every 30 minutes across both changes: no instant twice, none lost but
-- the wall times that do not exist
SELECT t AS utc, t AT TIME ZONE 'Europe/Paris' AS paris
  FROM taskorch.cron_next('*/30 * * * *', 'Europe/Paris', 5, '2024-03-31 00:00Z') t;
SELECT t AS utc, t AT TIME ZONE 'Europe/Paris' AS paris
  FROM taskorch.cron_next('*/30 * * * *', 'Europe/Paris', 5, '2024-10-26 23:00Z') t;
-- America/New_York: 2024-03-10 02:00 -> 03:00, 2024-11-03 02:00 -> 01:00
SELECT t AS utc, t AT TIME ZONE 'America/New_York' AS new_york
  FROM taskorch.cron_next('30 2 * * *', 'America/New_York', 3, '2024-03-09 12:00Z') t;
SELECT t AS utc, t AT TIME ZONE 'America/New_York' AS new_york
  FROM taskorch.cron_next('30 1 * * *', 'America/New_York', 3, '2024-11-02 12:00Z') t;
SELECT t AS utc, t AT TIME ZONE 'America/New_York' AS new_york
  FROM taskorch.cron_next('0 9 * * 1-5', 'America/New_York', 3, '2024-11-01 12:00Z') t;

-- malformed expressions and time zones: 22023, naming the field
\set VERBOSITY terse
SELECT taskorch.cron_next('0 25 * * *');
SELECT taskorch.cron_next('60 * * * *');
SELECT taskorch.cron_next('* * 0 * *');
SELECT taskorch.cron_next('* * * 13 *');
SELECT taskorch.cron_next('* * * * 8');
SELECT taskorch.cron_next('61 * * * * *');
SELECT taskorch.cron_next('* * * FOO *');
SELECT taskorch.cron_next('* * * * MONDAY');
SELECT taskorch.cron_next('5-1 * * * *');
SELECT taskorch.cron_next('*/0 * * * *');
SELECT taskorch.cron_next('1,,2 * * * *');
SELECT taskorch.cron_next('1, * * * *');
SELECT taskorch.cron_next('x * * * *');
SELECT taskorch.cron_next('* * * *');
SELECT taskorch.cron_next('* * * * * * *');
SELECT taskorch.cron_next('@fortnightly');
SELECT taskorch.cron_next('');
SELECT taskorch.cron_next('0 9 * * *', 'Europe/Pariss');
SELECT taskorch.cron_next('0 9 * * *', 'UTC', 1001);
\set VERBOSITY default

-- schedule(): an id; the same deduplication key (of the role) updates it
CREATE TABLE sch_ticks (payload jsonb, at timestamptz DEFAULT clock_timestamp());
GRANT INSERT ON sch_ticks TO PUBLIC;
CREATE FUNCTION sch_tick(payload jsonb) RETURNS jsonb LANGUAGE sql AS $$
	INSERT INTO sch_ticks (payload) VALUES (payload) RETURNING jsonb_build_object('ok', true) $$;
SELECT taskorch.register_task('sch-tick', 'sch_tick(jsonb)');
SELECT taskorch.schedule('sch-tick', '0 9 * * 1-5', 'Europe/Paris', deduplication_key => 'reports-paris',
						 external_id => 'org_7') AS daily \gset
SELECT taskorch.schedule('sch-tick', '0 10 * * 1-5', 'Europe/Paris', deduplication_key => 'reports-paris',
						 external_id => 'org_7') = :'daily' AS same_schedule;
SELECT id = :'daily' AS daily, cron, description, timezone, active, cardinality(next_runs) AS next_runs,
	   external_id, overlap, missed, last_run_id
  FROM taskorch.schedules;
SELECT count(*) AS schedules FROM taskorch.schedule;
-- refused, changing nothing
SELECT taskorch.schedule('no-such-task', '0 9 * * *');
SELECT taskorch.schedule('sch-tick', '0 9 * * *', payload => '[1]');
SELECT taskorch.schedule('sch-tick', '0 9 * * *', options => '{"overlap": "never"}');
SELECT taskorch.schedule('sch-tick', '0 9 * * *', options => '{"missed": 101}');
SELECT taskorch.schedule('sch-tick', '0 9 * * *', options => '{"dealy": "1h"}');
SELECT taskorch.schedule('sch-tick', NULL);
SELECT count(*) AS schedules FROM taskorch.schedule;

-- a schedule with a seconds field fires each second; its runs get
-- Trigger.dev's payload fields, and the schedule's own payload
SELECT taskorch.schedule('sch-tick', '* * * * * *', payload => '{"report": "weekly"}',
						 external_id => 'org_9', options => '{"tags": ["scheduled"]}') AS every_second \gset
SELECT pg_sleep(2.5);
SELECT taskorch.deactivate_schedule(:'every_second');
SELECT wait_for_runs();
SELECT count(*) >= 2 AS ticks, count(DISTINCT payload->>'timestamp') = count(*) AS one_run_per_tick
  FROM sch_ticks;
SELECT payload->>'scheduleId' = :'every_second' AS schedule_id, payload->>'externalId' AS external_id,
	   payload->>'timezone' AS timezone, payload->>'report' AS report,
	   jsonb_array_length(payload->'upcoming') AS upcoming,
	   (payload->>'timestamp')::timestamptz - (payload->>'lastTimestamp')::timestamptz AS since_last
  FROM sch_ticks ORDER BY at DESC LIMIT 1;
SELECT bool_and(tags = '{scheduled}') AS tagged, bool_and(triggered_by::text = current_user) AS triggered_by_owner
  FROM taskorch.runs_wide WHERE task_id = 'sch-tick';
SELECT last_run_id IS NOT NULL AS has_last_run, last_run_status, active, next_runs
  FROM taskorch.schedules WHERE id = :'every_second';
-- run_schedule_now: a run now, the schedule inactive or not
SELECT taskorch.run_schedule_now(:'every_second') AS now_run \gset
SELECT payload->>'scheduleId' = :'every_second' AS of_schedule FROM taskorch.runs WHERE id = :'now_run';

-- a schedule may start a track (or an orchestrator: any task)
SELECT taskorch.define_track('sch-track', '[{"task": "sch-tick", "name": "record"}]');
SELECT taskorch.schedule('sch-track', '0 0 1 1 *', deduplication_key => 'yearly-track') AS track_schedule \gset
SELECT taskorch.run_schedule_now(:'track_schedule') AS track_run \gset
CALL taskorch.wait_for_run(:'track_run') \gset
SELECT status, output->'results'->'record' AS record FROM taskorch.runs WHERE id = :'track_run';
SELECT taskorch.unschedule(:'track_schedule');

-- missed ticks (the server was down five years, through five New Year's
-- Days): the latest only, by default; "missed": N the latest N; "skip" none
TRUNCATE sch_ticks;
SELECT taskorch.schedule('sch-tick', '0 0 1 1 *', deduplication_key => 'm-latest') AS m_latest,
	   taskorch.schedule('sch-tick', '0 0 1 1 *', deduplication_key => 'm-three', options => '{"missed": 3}') AS m_three,
	   taskorch.schedule('sch-tick', '0 0 1 1 *', deduplication_key => 'm-skip', options => '{"missed": "skip"}') AS m_skip \gset
UPDATE taskorch.schedule SET next_tick = (SELECT min(t) FROM taskorch.cron_next('0 0 1 1 *', 'UTC', 1, now() - interval '5 years') t)
 WHERE deduplication_key LIKE 'm-%';
SELECT pg_sleep(1.5);
SELECT wait_for_runs();
SELECT payload->>'scheduleId' AS schedule, count(*) AS runs,
	   max((payload->>'timestamp')::timestamptz) = (SELECT max(t) FROM taskorch.cron_next('0 0 1 1 *', 'UTC', 5, now() - interval '5 years') t
													 WHERE t <= now()) AS latest_tick
  FROM sch_ticks GROUP BY 1 ORDER BY 1;
SELECT id, next_tick > now() AS next_tick_ahead FROM taskorch.schedule WHERE deduplication_key LIKE 'm-%' ORDER BY id;
SELECT taskorch.unschedule(id) FROM taskorch.schedule WHERE deduplication_key LIKE 'm-%';

-- overlap "skip": no run while the last one has not finished
CREATE FUNCTION sch_slow(payload jsonb) RETURNS jsonb LANGUAGE sql AS $$
	SELECT pg_sleep(2.2); INSERT INTO sch_ticks (payload) VALUES (payload) RETURNING '{}'::jsonb $$;
SELECT taskorch.register_task('sch-slow', 'sch_slow(jsonb)');
TRUNCATE sch_ticks;
SELECT taskorch.schedule('sch-slow', '* * * * * *', options => '{"overlap": "skip"}') AS slow \gset
SELECT pg_sleep(4.5);
SELECT taskorch.deactivate_schedule(:'slow');
SELECT wait_for_runs();
-- ticks every second, runs of 2.2 s: each run starts after the last ended
SELECT count(*) BETWEEN 1 AND 2 AS one_at_a_time,
	   bool_and(started_at >= coalesce(previous_end, '-infinity')) AS no_overlap
  FROM (SELECT started_at, lag(finished_at) OVER (ORDER BY started_at) AS previous_end
		  FROM taskorch.runs WHERE task_id = 'sch-slow') r;

-- security: a schedule belongs to its role; others neither see nor change it
CREATE ROLE regress_sch_ann;
CREATE ROLE regress_sch_ben;
GRANT USAGE, CREATE ON SCHEMA public TO regress_sch_ann, regress_sch_ben;
SELECT taskorch.grant_trigger('sch-tick', 'regress_sch_ben');
SET ROLE regress_sch_ann;
CREATE FUNCTION sch_ann(payload jsonb) RETURNS jsonb LANGUAGE sql AS $$ SELECT payload $$;
SELECT taskorch.register_task('sch-ann', 'sch_ann(jsonb)');
SELECT taskorch.schedule('sch-ann', '0 9 * * *', deduplication_key => 'mine') AS ann_schedule \gset
SELECT count(*) AS ann_sees FROM taskorch.schedules;
RESET ROLE;
SET ROLE regress_sch_ben;
SELECT count(*) AS ben_sees FROM taskorch.schedules;
SELECT taskorch.unschedule(:'ann_schedule');
SELECT taskorch.run_schedule_now(:'ann_schedule');
SELECT taskorch.schedule('sch-ann', '0 9 * * *');		-- not his to trigger
-- his own deduplication key is his own
SELECT taskorch.schedule('sch-tick', '0 9 * * *', deduplication_key => 'mine') <> :'ann_schedule' AS own_key;
RESET ROLE;
SELECT count(*) AS admin_sees FROM taskorch.schedules WHERE deduplication_key = 'mine';
-- a tick that can no longer trigger records why and goes on
SET ROLE regress_sch_ann;
SELECT taskorch.grant_trigger('sch-ann', 'regress_sch_ben');
RESET ROLE;
SET ROLE regress_sch_ben;
SELECT taskorch.schedule('sch-ann', '* * * * * *', deduplication_key => 'granted') AS ben_on_ann \gset
RESET ROLE;
SET ROLE regress_sch_ann;
SELECT taskorch.revoke_trigger('sch-ann', 'regress_sch_ben');
RESET ROLE;
SELECT pg_sleep(1.5);
SELECT last_error, active FROM taskorch.schedules WHERE id = :'ben_on_ann';
SELECT taskorch.unschedule(id) FROM taskorch.schedule;
SELECT wait_for_runs();
