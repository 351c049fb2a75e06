------------------------------------------------------------------------------
-- What \df+, \dv+, \dt+ and \dT+ say of each object of the API: one line
-- each, the page of docs/ that tells the rest.  Test api (pgTAP) checks
-- that every object of the schema taskorch has one.
------------------------------------------------------------------------------
COMMENT ON SCHEMA taskorch IS 'taskorch: durable tasks run by background workers (docs/getting-started.md)';
COMMENT ON SCHEMA taskorch_internal IS 'taskorch''s internals, used by its API: nothing here is an interface';

-- types
COMMENT ON TYPE taskorch.run_status IS 'the status of a run (docs/runs.md)';
COMMENT ON TYPE taskorch.duration IS 'a duration as written: "1h52m18s", "90 minutes", seconds, or an interval (docs/triggering.md)';
COMMENT ON TYPE taskorch.delay IS 'a duration from now, or a point in time: "1h", "2024-12-01T09:00:00Z", a timestamptz (docs/triggering.md)';
COMMENT ON TYPE taskorch.json_input IS 'JSON as a client sends it: jsonb, json, or text holding JSON (docs/clients.md)';
COMMENT ON TYPE taskorch.items IS 'a batch''s items: a JSON array, or an array of JSON values (docs/clients.md)';
COMMENT ON TYPE taskorch.role_ref IS 'a role, by OID and by name, so that a dump restores into another cluster (docs/operations.md)';

-- tables (write through the functions; read the views)
COMMENT ON TABLE taskorch.task IS 'registered tasks; read taskorch.tasks';
COMMENT ON TABLE taskorch.task_name IS 'task ids and the role that first registered each';
COMMENT ON TABLE taskorch.run IS 'one row per run; read taskorch.runs';
COMMENT ON TABLE taskorch.attempt IS 'one row per failed attempt of a run; read taskorch.attempts';
COMMENT ON TABLE taskorch.batch IS 'batches of runs made by one batch_trigger()';
COMMENT ON TABLE taskorch.log IS 'log entries of runs; read taskorch.logs';
COMMENT ON TABLE taskorch.queue IS 'queues defined with create_queue(); read taskorch.queues';
COMMENT ON TABLE taskorch.schema IS 'JSON Schemas defined with define_schema(); read taskorch.schemas';
COMMENT ON TABLE taskorch.composite IS 'tracks and orchestrators: their steps and options';
COMMENT ON TABLE taskorch.waitpoint IS 'what a WAITING run waits for, and its checkpoints';
COMMENT ON TABLE taskorch.wait_token IS 'wait tokens; read taskorch.wait_tokens';
COMMENT ON SEQUENCE taskorch.run_id_seq IS 'the numbers of run ids (run_<n>)';
COMMENT ON SEQUENCE taskorch.batch_id_seq IS 'the numbers of batch ids (batch_<n>)';
COMMENT ON SEQUENCE taskorch.wait_token_id_seq IS 'the numbers of wait token ids (waittoken_<n>)';

-- views
COMMENT ON VIEW taskorch.tasks IS 'registered tasks you can see, with their options (docs/tasks.md)';
COMMENT ON VIEW taskorch.runs IS 'runs you can see: status, attempts, timing, payload, output, error message (docs/runs.md)';
COMMENT ON VIEW taskorch.runs_wide IS 'runs you can see, with every column: options, owner, batch, parent... (docs/runs.md)';
COMMENT ON VIEW taskorch.attempts IS 'failed attempts of the runs you can see (docs/retries.md)';
COMMENT ON VIEW taskorch.logs IS 'log entries of the runs you can see, in the order they happened (docs/logs.md)';
COMMENT ON VIEW taskorch.queues IS 'queues, their limits and what runs in them now (docs/queues.md)';
COMMENT ON VIEW taskorch.schemas IS 'JSON Schemas defined with define_schema() (docs/schemas.md)';
COMMENT ON VIEW taskorch.jobs IS 'jobs (runs of tracks and orchestrators) with their step counts (docs/jobs.md)';
COMMENT ON VIEW taskorch.job_steps IS 'the steps of each job and their status (docs/jobs.md)';
COMMENT ON VIEW taskorch.wait_tokens IS 'wait tokens you made, their state and output (docs/waits.md)';
COMMENT ON VIEW taskorch.database_workers IS 'each database with taskorch: workers wanted, running, and whether its first worker found no slot (docs/operations.md)';
COMMENT ON VIEW taskorch.missing_roles IS 'roles that rows name but that do not exist, after a restore (docs/operations.md)';

-- tasks
COMMENT ON FUNCTION taskorch.register_task(text, regprocedure, text, integer, taskorch.json_input, taskorch.duration, text, taskorch.json_input, taskorch.json_input, text, text, text, taskorch.duration)
	IS 'register a SQL function as a task, or update it; returns the task id (docs/tasks.md)';
COMMENT ON FUNCTION taskorch.unregister_task(text) IS 'remove a task from the registry; its runs stay (docs/tasks.md)';
COMMENT ON FUNCTION taskorch.grant_trigger(text, regrole) IS 'let a role trigger your task (docs/security.md)';
COMMENT ON FUNCTION taskorch.revoke_trigger(text, regrole) IS 'take back grant_trigger() (docs/security.md)';
COMMENT ON FUNCTION taskorch.is_admin() IS 'whether the current role administers taskorch (member of taskorch_admin)';
COMMENT ON FUNCTION taskorch.run_visible(taskorch.role_ref, taskorch.role_ref)
	IS 'whether the current role sees a run: a member of its owner or of its triggerer, or an admin (the policy of taskorch.run)';
COMMENT ON FUNCTION taskorch.task_visible(taskorch.role_ref, taskorch.role_ref[])
	IS 'whether the current role sees a task: a member of its owner or of a role allowed to trigger it, or an admin (the policy of taskorch.task)';

-- triggering and reading runs
COMMENT ON FUNCTION taskorch.trigger(text, taskorch.json_input, taskorch.json_input, taskorch.delay, taskorch.duration, text, taskorch.duration, text, text, integer, integer, taskorch.duration, text[], taskorch.json_input, text, text, taskorch.json_input)
	IS 'trigger a run of a task with Trigger.dev''s options; returns the run id (docs/triggering.md)';
COMMENT ON FUNCTION taskorch.batch_trigger(text, taskorch.items, taskorch.json_input) IS 'trigger many runs of one task; returns the batch id (docs/triggering.md)';
COMMENT ON FUNCTION taskorch.batch_trigger(text, jsonb, taskorch.json_input) IS 'trigger many runs of one task, items as jsonb; returns the batch id (docs/triggering.md)';
COMMENT ON FUNCTION taskorch.batch_trigger(taskorch.items, taskorch.json_input) IS 'trigger runs of several tasks, each item naming its task; returns the batch id (docs/triggering.md)';
COMMENT ON FUNCTION taskorch.batch_trigger_query(text, text, taskorch.json_input) IS 'trigger a run for each row of a query, streamed; returns the batch id (docs/triggering.md)';
COMMENT ON FUNCTION taskorch.check_items_query(text, text) IS 'raise an error unless the query''s rows can be the items of a batch of the task';
COMMENT ON FUNCTION taskorch.batch_retrieve(text) IS 'a batch and its runs, in item order (docs/triggering.md)';
COMMENT ON FUNCTION taskorch.retrieve(text) IS 'a run as Trigger.dev''s runs.retrieve() gives it (docs/runs.md)';
COMMENT ON FUNCTION taskorch.result(text) IS 'the Result object {ok, id, output | error} of a finished run; NULL before (docs/runs.md)';
COMMENT ON FUNCTION taskorch.idempotency_key(text, text) IS 'an idempotency key scoped to the current run, attempt, or global (docs/triggering.md)';
COMMENT ON FUNCTION taskorch.idempotency_key_reset(text, text, text) IS 'make an idempotency key free again; returns how many runs it named (docs/triggering.md)';
COMMENT ON FUNCTION taskorch.finished(taskorch.run_status) IS 'whether a run in this status has finished (docs/runs.md)';
COMMENT ON FUNCTION taskorch.succeeded(taskorch.run_status) IS 'whether this status is COMPLETED (docs/runs.md)';
COMMENT ON FUNCTION taskorch.failed(taskorch.run_status) IS 'whether a run in this status has failed (docs/runs.md)';
COMMENT ON FUNCTION taskorch.queued(taskorch.run_status) IS 'whether a run in this status waits to start (docs/runs.md)';
COMMENT ON FUNCTION taskorch.failed_statuses() IS 'the statuses of failed runs (docs/runs.md)';

-- managing runs
COMMENT ON FUNCTION taskorch.cancel(text) IS 'cancel a run that has not finished; returns whether it did (docs/run-management.md)';
COMMENT ON FUNCTION taskorch.reschedule(text, taskorch.delay) IS 'give a DELAYED run a new due time; returns it (docs/run-management.md)';
COMMENT ON FUNCTION taskorch.replay(text) IS 'trigger a new run with a finished run''s payload and options; returns its id (docs/run-management.md)';
COMMENT ON FUNCTION taskorch.list_runs(text[], text[], text[], text, timestamptz, timestamptz, integer, text)
	IS 'runs by status, task, tags, batch and creation time, a page at a time (docs/run-management.md)';
COMMENT ON FUNCTION taskorch.cancel_runs(text[], text[], text[], text, timestamptz, timestamptz)
	IS 'cancel every unfinished run that matches; returns how many (docs/run-management.md)';
COMMENT ON FUNCTION taskorch.replay_runs(text[], text[], text[], text, timestamptz, timestamptz)
	IS 'replay every finished run that matches (by default the failed ones); returns the new ids (docs/run-management.md)';
COMMENT ON PROCEDURE taskorch.wait_for_run(text, interval, jsonb) IS 'wait, outside a transaction, until a run has finished; gives its Result (docs/runs.md)';
COMMENT ON PROCEDURE taskorch.run_and_wait(text, taskorch.json_input, taskorch.json_input, interval, jsonb) IS 'trigger, commit and wait_for_run() (docs/runs.md)';

-- queues
COMMENT ON FUNCTION taskorch.create_queue(text, integer) IS 'define a queue you own, with a concurrency limit (docs/queues.md)';
COMMENT ON FUNCTION taskorch.alter_queue(text, integer) IS 'change a queue''s concurrency limit (docs/queues.md)';
COMMENT ON FUNCTION taskorch.drop_queue(text) IS 'remove a queue no task uses (docs/queues.md)';
COMMENT ON FUNCTION taskorch.pause_queue(text, boolean) IS 'stop starting runs of a queue (docs/queues.md)';
COMMENT ON FUNCTION taskorch.resume_queue(text) IS 'start the runs of a paused queue again (docs/queues.md)';
COMMENT ON FUNCTION taskorch.grant_queue(text, regrole) IS 'let a role put runs in your queue (docs/queues.md)';
COMMENT ON FUNCTION taskorch.revoke_queue(text, regrole) IS 'take back grant_queue() (docs/queues.md)';

-- inside a task
COMMENT ON FUNCTION taskorch.current_run() IS 'inside a task: the run being executed (id, task, attempt, payload...); NULL outside';
COMMENT ON FUNCTION taskorch.abort(text, text) IS 'inside a task: fail the run at once, without retrying (docs/retries.md)';
COMMENT ON FUNCTION taskorch.log(text, text, jsonb) IS 'inside a task: a log entry of the run (docs/logs.md)';
COMMENT ON FUNCTION taskorch.metadata() IS 'inside a task: the run''s metadata (docs/runs.md)';
COMMENT ON FUNCTION taskorch.metadata_set(text, jsonb) IS 'inside a task: set a key of the run''s metadata';
COMMENT ON FUNCTION taskorch.metadata_del(text) IS 'inside a task: remove a key of the run''s metadata';
COMMENT ON FUNCTION taskorch.metadata_replace(jsonb) IS 'inside a task: replace the run''s metadata';
COMMENT ON FUNCTION taskorch.metadata_append(text, jsonb) IS 'inside a task: append to a list in the run''s metadata';
COMMENT ON FUNCTION taskorch.metadata_remove(text, jsonb) IS 'inside a task: remove a value from a list in the run''s metadata';
COMMENT ON FUNCTION taskorch.metadata_increment(text, numeric) IS 'inside a task: add to a number in the run''s metadata';

-- durable waits
COMMENT ON FUNCTION taskorch.wait_for(taskorch.duration) IS 'inside a task: suspend the run for a duration, holding no worker (docs/waits.md)';
COMMENT ON FUNCTION taskorch.wait_until(timestamptz) IS 'inside a task: suspend the run until a time (docs/waits.md)';
COMMENT ON FUNCTION taskorch.trigger_and_wait(text, taskorch.json_input, taskorch.json_input) IS 'inside a task: run a child and wait for its Result (docs/waits.md)';
COMMENT ON FUNCTION taskorch.trigger_and_wait_unwrap(text, taskorch.json_input, taskorch.json_input) IS 'inside a task: a child''s output, or its failure raised (docs/waits.md)';
COMMENT ON FUNCTION taskorch.batch_trigger_and_wait(text, taskorch.items) IS 'inside a task: run children of one task and wait for their Results (docs/waits.md)';
COMMENT ON FUNCTION taskorch.batch_trigger_and_wait(taskorch.items) IS 'inside a task: run children of several tasks and wait for their Results (docs/waits.md)';
COMMENT ON FUNCTION taskorch.batch_trigger_and_wait_query(text, text) IS 'inside a task: a child for each row of a query, then wait for them (docs/waits.md)';
COMMENT ON FUNCTION taskorch.create_wait_token(taskorch.duration, text, text[]) IS 'a token that a task can wait for and anyone of your role complete (docs/waits.md)';
COMMENT ON FUNCTION taskorch.wait_for_token(text) IS 'inside a task: wait until the token is completed or times out (docs/waits.md)';
COMMENT ON FUNCTION taskorch.complete_wait_token(text, taskorch.json_input) IS 'complete a wait token with an output, resuming who waits (docs/waits.md)';

-- tracks, orchestrators, jobs
COMMENT ON FUNCTION taskorch.define_track(text, jsonb, boolean, boolean, text, jsonb, jsonb, text, text, text, text)
	IS 'define a track: steps run one after the other, as a task (docs/tracks.md)';
COMMENT ON FUNCTION taskorch.define_orchestrator(text, jsonb, jsonb, boolean, text, jsonb, jsonb, text, text, text, text)
	IS 'define an orchestrator: tracks and tasks run in parallel, as a task (docs/orchestrators.md)';
COMMENT ON FUNCTION taskorch.run_track(jsonb) IS 'the function a track''s runs execute (docs/tracks.md)';
COMMENT ON FUNCTION taskorch.run_orchestrator(jsonb) IS 'the function an orchestrator''s runs execute (docs/orchestrators.md)';
COMMENT ON FUNCTION taskorch.traverse(text, text, integer, integer) IS 'inside a task: the traverse pattern, a task over a query''s rows a page at a time (docs/orchestrators.md)';
COMMENT ON FUNCTION taskorch.fill_template(jsonb, jsonb, jsonb) IS 'a step''s declarative input: "$.prev..." and "$.input..." replaced by their values (docs/tracks.md)';
COMMENT ON FUNCTION taskorch.job(text) IS 'a job as a record of its steps'' status and times (docs/jobs.md)';

-- JSON Schemas
COMMENT ON FUNCTION taskorch.define_schema(text, jsonb, text) IS 'define a named JSON Schema for payloads and outputs (docs/schemas.md)';
COMMENT ON FUNCTION taskorch.drop_schema(text) IS 'remove a JSON Schema no task uses (docs/schemas.md)';
COMMENT ON FUNCTION taskorch.check_schema(jsonb) IS 'raise an error unless the JSON Schema is well formed and supported (docs/schemas.md)';
COMMENT ON FUNCTION taskorch.validate(jsonb, jsonb) IS 'the failures of a value against a JSON Schema; {} when it matches (docs/schemas.md)';

-- operations
COMMENT ON FUNCTION taskorch.workers() IS 'the background workers: database, pid, what each runs (docs/operations.md)';
COMMENT ON FUNCTION taskorch.executing_runs() IS 'the runs executing right now, from shared memory (docs/operations.md)';
COMMENT ON FUNCTION taskorch.run_pending(integer) IS 'execute due runs in this session, as the workers would (docs/operations.md)';

-- schedules
COMMENT ON TABLE taskorch.schedule IS 'schedules; read taskorch.schedules';
COMMENT ON SEQUENCE taskorch.schedule_id_seq IS 'the numbers of schedule ids (sched_<n>)';
COMMENT ON VIEW taskorch.schedules IS 'schedules you may see: cron in words, next runs in their time zone, last run (docs/schedules.md)';
COMMENT ON FUNCTION taskorch.schedule(text, text, text, taskorch.json_input, text, text, taskorch.json_input, boolean)
	IS 'run a task on a cron expression in a time zone; returns the schedule id (docs/schedules.md)';
COMMENT ON FUNCTION taskorch.unschedule(text) IS 'remove a schedule (docs/schedules.md)';
COMMENT ON FUNCTION taskorch.activate_schedule(text, boolean) IS 'start (or with false, stop) a schedule''s ticks (docs/schedules.md)';
COMMENT ON FUNCTION taskorch.deactivate_schedule(text) IS 'stop a schedule''s ticks until activate_schedule() (docs/schedules.md)';
COMMENT ON FUNCTION taskorch.run_schedule_now(text) IS 'a run of the schedule now, as a tick would make it; returns its id (docs/schedules.md)';
COMMENT ON FUNCTION taskorch.cron_next(text, text, integer, timestamptz) IS 'the next times a cron expression names in a time zone (docs/schedules.md)';
COMMENT ON FUNCTION taskorch.cron_describe(text) IS 'a cron expression in words (docs/schedules.md)';
COMMENT ON FUNCTION taskorch.purge(taskorch.duration, text) IS 'remove the finished runs you may see that are older than a duration (or their retention); returns how many (docs/operations.md)';

-- external tasks (docs/external-tasks.md)
COMMENT ON FUNCTION taskorch.register_external_task(text, text, int, taskorch.json_input, taskorch.duration, taskorch.json_input, taskorch.json_input, text, text, text, text, taskorch.duration) IS 'register a task whose runs workers outside the server claim (docs/external-tasks.md)';
COMMENT ON FUNCTION taskorch.grant_execute(text, regrole) IS 'let a role claim the runs of an external task (docs/external-tasks.md)';
COMMENT ON FUNCTION taskorch.revoke_execute(text, regrole) IS 'take back grant_execute() (docs/external-tasks.md)';
COMMENT ON FUNCTION taskorch.claim_runs(text[], int, taskorch.duration) IS 'claim due runs of external tasks under a lease (docs/external-tasks.md)';
COMMENT ON FUNCTION taskorch.heartbeat(text, taskorch.duration) IS 'extend a lease; says whether the run was canceled (docs/external-tasks.md)';
COMMENT ON FUNCTION taskorch.complete_run(text, taskorch.json_input) IS 'complete a claimed run with its output (docs/external-tasks.md)';
COMMENT ON FUNCTION taskorch.fail_run(text, taskorch.json_input, bool) IS 'fail the attempt of a claimed run: retried per its task, or not (docs/external-tasks.md)';
COMMENT ON FUNCTION taskorch.complete_runs(taskorch.json_input) IS 'several outcomes of claimed runs in one transaction, each on its own (docs/external-tasks.md)';
COMMENT ON FUNCTION taskorch.release_run(text) IS 'give a claimed run back unfinished, no attempt spent (docs/external-tasks.md)';
COMMENT ON FUNCTION taskorch.lease_log(text, text, text, taskorch.json_input) IS 'a log entry of a claimed run (docs/external-tasks.md)';
COMMENT ON FUNCTION taskorch.lease_metadata(text) IS 'the metadata of a claimed run (docs/external-tasks.md)';
COMMENT ON FUNCTION taskorch.lease_metadata_replace(text, taskorch.json_input) IS 'replace the metadata of a claimed run (docs/external-tasks.md)';
COMMENT ON FUNCTION taskorch.lease_metadata_set(text, text, jsonb) IS 'set one key of the metadata of a claimed run (docs/external-tasks.md)';

-- statistics (docs/operations.md)
COMMENT ON VIEW taskorch.stats IS 'per task, queue and database: runs waiting now, runs/s and latency percentiles over the last minute (docs/operations.md)';
COMMENT ON FUNCTION taskorch.stats_reset() IS 'start this database''s taskorch.stats totals and minute again (docs/operations.md)';
