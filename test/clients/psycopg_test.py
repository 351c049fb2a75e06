"""psycopg 3 calling taskorch with plain bound parameters, as Python gives
them (str, int, float, datetime, timedelta, lists, Jsonb), no cast in the
SQL.  Run by test/clients.sh, which sets PGHOST, PGPORT, PGUSER, PGDATABASE."""
import json
import time
from datetime import datetime, timedelta, timezone

import psycopg
from psycopg.types.json import Jsonb

count = 0


def ok(cond, what):
    global count
    assert cond, what
    count += 1
    print(f"ok {count} - {what}")


conn = psycopg.connect(autocommit=True)


def one(sql, params=()):
    return conn.execute(sql, params).fetchone()[0]


def retrieve(run_id):
    return one("SELECT taskorch.retrieve(%s)", [run_id])


# every option of trigger(), each a bound parameter
due = datetime.now(timezone.utc) + timedelta(hours=1)
run_id = one(
    """SELECT taskorch.trigger(%s, %s, delay => %s, ttl => %s, idempotency_key => %s,
              idempotency_key_ttl => %s, queue => %s, concurrency_key => %s, priority => %s,
              max_attempts => %s, max_duration => %s, tags => %s, metadata => %s)""",
    ["echo", Jsonb({"to": "b@example.com"}), due, 3600, "welcome-b", timedelta(days=1), "mail",
     "user-8", 10, 5, timedelta(minutes=5), ["welcome", "python"], Jsonb({"source": "psycopg"})])
run = retrieve(run_id)
ok(run["status"] == "DELAYED", "trigger: a datetime as delay makes a DELAYED run")
ok(abs(datetime.fromisoformat(run["delayedUntil"]) - due) < timedelta(seconds=1),
   "trigger: due at the datetime given")
ok(run["payload"] == {"to": "b@example.com"}, "trigger: a Jsonb payload")
ok(run["ttl"] == "01:00:00", "trigger: an int as ttl is seconds")
ok((run["queue"], run["concurrencyKey"], run["priority"]) == ("mail", "user-8", 10),
   "trigger: queue, concurrency_key and priority")
ok(run["maxAttempts"] == 5 and run["idempotencyKey"] == "welcome-b",
   "trigger: max_attempts and idempotency_key")
ok(run["tags"] == ["welcome", "python"], "trigger: a list as tags")
ok(run["metadata"] == {"source": "psycopg"}, "trigger: a Jsonb as metadata")

# other forms of a delay or a duration: a naive datetime, a timedelta, a
# float, a str; options as one object; a debounce object
for delay in [datetime.now() + timedelta(hours=2), timedelta(minutes=90), 90.5, "90 minutes", "1h30m"]:
    r = one("SELECT taskorch.trigger(%s, %s, delay => %s)", ["echo", Jsonb({}), delay])
    ok(retrieve(r)["status"] == "DELAYED", f"trigger: delay {delay!r}")
r = one("SELECT taskorch.trigger(%s, %s, %s)", ["echo", Jsonb({}), Jsonb({"delay": "1h", "maxAttempts": 2})])
ok(retrieve(r)["maxAttempts"] == 2, "trigger: options as a Jsonb object")
d1 = one("SELECT taskorch.trigger(%s, %s, debounce => %s)", ["echo", Jsonb({"n": 1}), Jsonb({"key": "u8", "delay": "5s"})])
d2 = one("SELECT taskorch.trigger(%s, %s, debounce => %s)", ["echo", Jsonb({"n": 2}), Jsonb({"key": "u8", "delay": "5s"})])
ok(d1 == d2, "trigger: a debounce object")

# every argument typed as an ORM types it (SQLAlchemy 2 on psycopg renders
# CAST(%(x)s AS VARCHAR) for a str): JSON in a varchar, a delay in a
# varchar, a ttl as an integer, options as text
r = one("""SELECT taskorch.trigger(%s::varchar, %s::varchar, %s::text, delay => %s::varchar,
                                   ttl => %s::integer, max_duration => %s::interval)""",
        ["echo", '{"typed": true}', '{"tags": ["typed"]}', "1h", 60, timedelta(minutes=1)])
run = retrieve(r)
ok(run["payload"] == {"typed": True} and run["tags"] == ["typed"] and run["status"] == "DELAYED",
   "trigger: every argument typed (varchar JSON, text options, integer ttl)")

# a bad value is an error with its SQLSTATE and a hint
try:
    conn.execute("SELECT taskorch.trigger(%s, %s, ttl => %s)", ["echo", Jsonb({}), -5])
    ok(False, "a negative ttl is refused")
except psycopg.errors.InvalidParameterValue as e:
    ok('invalid ttl "-5"' in str(e) and e.diag.message_hint, "trigger: a negative ttl is refused with 22023")

# batches: a Jsonb list, or a list of Jsonb (a jsonb[])
b = one("SELECT taskorch.batch_trigger(%s, %s)", ["echo", Jsonb([{"payload": {"n": 1}}, {"payload": {"n": 2}}])])
ok(len(one("SELECT taskorch.batch_retrieve(%s)", [b])["runs"]) == 2, "batch_trigger: a Jsonb list of items")
b = one("SELECT taskorch.batch_trigger(%s, %s)", ["echo", [Jsonb({"payload": {"n": 3}}), Jsonb({"payload": {"n": 4}})]])
ok(len(one("SELECT taskorch.batch_retrieve(%s)", [b])["runs"]) == 2, "batch_trigger: a list of Jsonb items")
b = one("SELECT taskorch.batch_trigger(%s)", [[Jsonb({"task": "echo", "payload": {"n": 5}})]])
ok(b.startswith("batch_"), "batch_trigger: mixed tasks")

# list_runs with lists, then reschedule, cancel and replay
rows = conn.execute("SELECT id FROM taskorch.list_runs(task => %s, tags => %s)", [["echo"], ["python"]]).fetchall()
ok([r[0] for r in rows] == [run_id], "list_runs: lists of tasks and tags")
later = datetime.now(timezone.utc) + timedelta(hours=2)
ok(abs(one("SELECT taskorch.reschedule(%s, %s)", [run_id, later]) - later) < timedelta(seconds=1),
   "reschedule: to a datetime")
due2 = one("SELECT taskorch.reschedule(%s, %s)", [run_id, timedelta(minutes=30)])
ok(abs(due2 - datetime.now(timezone.utc) - timedelta(minutes=30)) < timedelta(seconds=5),
   "reschedule: by a timedelta")
ok(one("SELECT taskorch.cancel(%s)", [run_id]) is True, "cancel")
replayed = one("SELECT taskorch.replay(%s)", [run_id])
ok(replayed != run_id and retrieve(replayed)["payload"] == {"to": "b@example.com"}, "replay")

# LISTEN: a run that completes is announced
listener = psycopg.connect(autocommit=True)
seen = []
listener.add_notify_handler(lambda n: seen.append(json.loads(n.payload)))
listener.execute("LISTEN taskorch_runs")
now_id = one("SELECT taskorch.trigger(%s, %s)", ["echo", Jsonb({"hello": "listen"})])
deadline = time.time() + 15
while not any(r["id"] == now_id and r["status"] == "COMPLETED" for m in seen for r in m["runs"]):
    assert time.time() < deadline, "timed out waiting for the notification"
    time.sleep(0.05)
    listener.execute("SELECT 1")  # lets psycopg read what arrived
ok(True, "LISTEN taskorch_runs: the run is announced COMPLETED")
ok(retrieve(now_id)["output"] == {"hello": "listen"}, "retrieve: the output")
print(f"1..{count}")
