-- Every status change the regression suites made (recorded since test
-- `statuses`) is a row of the transition table (src/status.c): no module
-- writes a status the lifecycle does not allow.
SELECT wait_for_runs();
SELECT count(*) > 0 AS recorded FROM status_seen;
-- changes not in the table (none)
SELECT s.from_status, s.to_status, count(*)
  FROM status_seen s
 WHERE NOT EXISTS (SELECT FROM taskorch_internal.status_transitions() t
				   WHERE t.from_status IS NOT DISTINCT FROM s.from_status
					 AND t.to_status = s.to_status)
 GROUP BY 1, 2 ORDER BY 1, 2;
-- the statuses the suites wrote
SELECT array_agg(DISTINCT to_status::taskorch.run_status ORDER BY to_status::taskorch.run_status)
	   AS written
  FROM status_seen;
DROP TRIGGER status_seen ON taskorch.run;
DROP TABLE status_seen;
DROP FUNCTION status_seen_record();
