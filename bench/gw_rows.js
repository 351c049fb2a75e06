'use strict';
// bench/gw_rows.js: graphile-worker 0.17.3 in its batched mode (as the
// anchor's gw_bench.js runs it), draining N jobs whose task inserts one row,
// as taskorch's "task inserts a row" burn-down does.  A graphile-worker task
// writes through the pool (helpers.query): its row commits on its own,
// before the job's completion; a taskorch run's row commits with its outcome.
// Env: ANCHORS_DIR (the anchors: common.js), N [100000], CONCURRENCY [8],
//      PGHOST, PGPORT, PGUSER.  Prints {"jobs_per_s_drained": ...}.
const path = require('path');
const { Pool } = require('pg');
const { run, runMigrations, makeWorkerUtils, Logger } = require('graphile-worker');
const { conn, nowMs, sleep, resetDb, monitor } = require(path.join(process.env.ANCHORS_DIR, 'common.js'));

const N = +(process.env.N || 100000);
const CONC = +(process.env.CONCURRENCY || 8);
const DB = 'gwrows';
const logger = new Logger(() => (level, message) => {
  if (level === 'error' || level === 'warning') console.error(`[gw ${level}] ${message}`);
});

async function main() {
  await resetDb(DB);
  const pool = new Pool({ ...conn, database: DB, max: CONC + 2 });
  pool.on('error', (e) => console.error('[pool error]', e.message));
  const mon = await monitor(DB);
  await runMigrations({ pgPool: pool, logger });
  await mon.client.query('CREATE TABLE gw_rows (id bigserial PRIMARY KEY, payload jsonb NOT NULL)');
  const utils = await makeWorkerUtils({ pgPool: pool, logger });
  for (let i = 0; i < N; i += 1000) {
    const specs = [];
    for (let j = i; j < Math.min(N, i + 1000); j++) specs.push({ identifier: 'insert_row', payload: { i: j } });
    await utils.addJobs(specs);
  }
  await mon.client.query('ANALYZE graphile_worker._private_jobs');
  const t0 = nowMs();
  const runner = await run({
    pgPool: pool, logger, concurrency: CONC, noHandleSignals: true, pollInterval: 2000,
    preset: { worker: { localQueue: { size: Math.max(CONC + 1, 100) }, completeJobBatchDelay: 0, failJobBatchDelay: 0 } },
    taskList: {
      insert_row: async (payload, helpers) => {
        await helpers.query('INSERT INTO gw_rows (payload) VALUES ($1)', [payload]);
      },
    },
  });
  while (await mon.scalar('SELECT count(*)::int FROM graphile_worker._private_jobs') > 0) await sleep(20);
  const seconds = (nowMs() - t0) / 1000;
  const rows = await mon.scalar('SELECT count(*)::int FROM gw_rows');
  await runner.stop();
  await utils.release();
  await mon.end();
  await pool.end();
  if (rows !== N) throw new Error(`${rows} rows inserted for ${N} jobs`);
  console.log(JSON.stringify({ jobs_per_s_drained: Math.round(N / seconds) }));
}

main().catch((e) => { console.error(e); process.exit(1); });
