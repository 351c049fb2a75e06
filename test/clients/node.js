'use strict';
// node-postgres, knex and kysely calling taskorch with plain bound
// parameters, as JavaScript gives them (strings, numbers, Dates, objects,
// arrays) and no cast in the SQL.  Run by test/clients.sh, which sets
// PGHOST, PGPORT, PGUSER and PGDATABASE, and NODE_PATH to the packages.
const assert = require('node:assert/strict');
const { Client } = require('pg');

let count = 0;
function ok(cond, what) {
	assert.ok(cond, what);
	console.log(`ok ${++count} - ${what}`);
}

async function until(what, check, ms = 15000) {
	const deadline = Date.now() + ms;
	for (;;) {
		const value = await check();
		if (value) return value;
		if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
		await new Promise((r) => setTimeout(r, 50));
	}
}

async function nodePostgres() {
	const c = new Client();
	await c.connect();
	const one = async (sql, params) => (await c.query(sql, params)).rows[0];
	const retrieve = async (id) => (await one('SELECT taskorch.retrieve($1) AS r', [id])).r;

	// every option of trigger(), each a bound parameter
	const due = new Date(Date.now() + 3600e3);
	const { id } = await one(
		`SELECT taskorch.trigger($1, $2, delay => $3, ttl => $4, idempotency_key => $5,
		        idempotency_key_ttl => $6, queue => $7, concurrency_key => $8, priority => $9,
		        max_attempts => $10, max_duration => $11, tags => $12, metadata => $13) AS id`,
		['echo', { to: 'a@example.com' }, due, 3600, 'welcome-a', '1d', 'mail', 'user-7', 10, 5,
			'5m', ['welcome', 'node'], { source: 'node' }]);
	let run = await retrieve(id);
	ok(run.status === 'DELAYED', 'trigger: a Date as delay makes a DELAYED run');
	ok(Math.abs(new Date(run.delayedUntil) - due) < 1000, 'trigger: due at the Date given');
	ok(run.payload.to === 'a@example.com', 'trigger: an object as payload');
	ok(run.ttl === '01:00:00', 'trigger: a number as ttl is seconds');
	ok(run.queue === 'mail' && run.concurrencyKey === 'user-7' && run.priority === 10,
		'trigger: queue, concurrency_key and priority');
	ok(run.maxAttempts === 5 && run.idempotencyKey === 'welcome-a', 'trigger: max_attempts and idempotency_key');
	ok(JSON.stringify(run.tags) === '["welcome","node"]', 'trigger: an array as tags');
	ok(run.metadata.source === 'node', 'trigger: an object as metadata');
	const again = await one('SELECT taskorch.trigger($1, $2, idempotency_key => $3) AS id',
		['echo', { to: 'a@example.com' }, 'welcome-a']);
	ok(again.id === id, 'trigger: the same idempotency key gives the same run');

	// options as one object, a debounce object, a delay in seconds and in words
	const viaOptions = await one('SELECT taskorch.trigger($1, $2, $3) AS id',
		['echo', {}, { delay: '1h', tags: ['opts'], maxAttempts: 2 }]);
	ok((await retrieve(viaOptions.id)).maxAttempts === 2, 'trigger: options as an object');
	const d1 = await one('SELECT taskorch.trigger($1, $2, debounce => $3) AS id',
		['echo', { n: 1 }, { key: 'user-7', delay: '5s' }]);
	const d2 = await one('SELECT taskorch.trigger($1, $2, debounce => $3) AS id',
		['echo', { n: 2 }, { key: 'user-7', delay: '5s' }]);
	ok(d1.id === d2.id, 'trigger: a debounce object');
	for (const delay of [90, '90 minutes', '1h30m']) {
		const r = await one('SELECT taskorch.trigger($1, $2, delay => $3) AS id', ['echo', {}, delay]);
		ok((await retrieve(r.id)).status === 'DELAYED', `trigger: delay ${JSON.stringify(delay)}`);
	}

	// a bad value is an error with its SQLSTATE, naming the value
	await assert.rejects(c.query('SELECT taskorch.trigger($1, $2, delay => $3)', ['echo', {}, 'soon']),
		(e) => e.code === '22023' && /invalid delay "soon"/.test(e.message));
	ok(true, 'trigger: a bad delay is refused with 22023');

	// batches: a JavaScript array of items, one task or mixed
	const b = await one('SELECT taskorch.batch_trigger($1, $2) AS id',
		['echo', [{ payload: { n: 1 } }, { payload: { n: 2 }, options: { tags: ['b'] } }]]);
	const batch = (await one('SELECT taskorch.batch_retrieve($1) AS b', [b.id])).b;
	ok(batch.runs.length === 2, 'batch_trigger: an array of items');
	const mixed = await one('SELECT taskorch.batch_trigger($1) AS id', [[{ task: 'echo', payload: { n: 3 } }]]);
	ok(mixed.id.startsWith('batch_'), 'batch_trigger: an array of items of mixed tasks');
	const withOptions = await one('SELECT taskorch.batch_trigger($1, $2, $3) AS id',
		['echo', [{ payload: {} }], { delay: '1h' }]);
	ok(withOptions.id.startsWith('batch_'), 'batch_trigger: items and options');

	// list_runs with arrays, then cancel, reschedule and replay
	const listed = (await c.query('SELECT id FROM taskorch.list_runs(task => $1, tags => $2)',
		[['echo'], ['welcome']])).rows;
	ok(listed.length === 1 && listed[0].id === id, 'list_runs: arrays of tasks and tags');
	const later = new Date(Date.now() + 7200e3);
	const rescheduled = (await one('SELECT taskorch.reschedule($1, $2) AS t', [id, later])).t;
	ok(Math.abs(rescheduled - later) < 1000, 'reschedule: to a Date');
	await one('SELECT taskorch.reschedule($1, $2)', [id, '30m']);
	ok(Math.abs(new Date((await retrieve(id)).delayedUntil) - Date.now() - 1800e3) < 5000,
		'reschedule: by a duration');
	ok((await one('SELECT taskorch.cancel($1) AS c', [id])).c === true, 'cancel');
	const replayed = (await one('SELECT taskorch.replay($1) AS id', [id])).id;
	ok(replayed !== id && (await retrieve(replayed)).payload.to === 'a@example.com', 'replay');

	// LISTEN: a run that completes is announced
	const listener = new Client();
	await listener.connect();
	const seen = [];
	listener.on('notification', (m) => seen.push(JSON.parse(m.payload)));
	await listener.query('LISTEN taskorch_runs');
	const now = await one('SELECT taskorch.trigger($1, $2) AS id', ['echo', { hello: 'listen' }]);
	await until('the notification', () =>
		seen.some((m) => m.runs.some((r) => r.id === now.id && r.status === 'COMPLETED')));
	ok(true, 'LISTEN taskorch_runs: the run is announced COMPLETED');
	run = await retrieve(now.id);
	ok(run.status === 'COMPLETED' && run.output.hello === 'listen', 'retrieve: the output');
	await listener.end();
	await c.end();
}

async function knexClient() {
	const knex = require('knex')({ client: 'pg', connection: {} });
	const r = await knex.raw('SELECT taskorch.trigger(?, ?, delay => ?, tags => ?) AS id',
		['echo', { via: 'knex' }, '10m', ['knex']]);
	ok(r.rows[0].id.startsWith('run_'), 'knex: trigger with bound options');
	const b = await knex.raw('SELECT taskorch.batch_trigger(?, ?) AS id', ['echo', [{ payload: { n: 1 } }]]);
	ok(b.rows[0].id.startsWith('batch_'), 'knex: batch_trigger with an array');
	await knex.destroy();
}

async function kyselyClient() {
	const { Kysely, PostgresDialect, sql } = require('kysely');
	const { Pool } = require('pg');
	const db = new Kysely({ dialect: new PostgresDialect({ pool: new Pool() }) });
	const payload = { via: 'kysely' };
	const { rows } = await sql`SELECT taskorch.trigger(${'echo'}, ${payload}, ttl => ${600}) AS id`.execute(db);
	ok(rows[0].id.startsWith('run_'), 'kysely: trigger with bound options');
	await db.destroy();
}

(async () => {
	await nodePostgres();
	await knexClient();
	await kyselyClient();
	console.log(`1..${count}`);
})().catch((e) => {
	console.error('not ok -', e);
	process.exit(1);
});
