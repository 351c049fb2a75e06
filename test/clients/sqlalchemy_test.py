"""SQLAlchemy (Debian's, on psycopg2) calling taskorch: func.taskorch.*
and text() with bound parameters, no cast in the SQL.  JSON values are
bound with the JSONB type, as SQLAlchemy binds JSON anywhere.  Run by
test/clients.sh, which sets PGHOST, PGPORT, PGUSER, PGDATABASE."""
from datetime import datetime, timedelta, timezone

from sqlalchemy import bindparam, create_engine, func, select, text, type_coerce
from sqlalchemy.dialects.postgresql import JSONB

count = 0


def ok(cond, what):
    global count
    assert cond, what
    count += 1
    print(f"ok {count} - {what}")


engine = create_engine("postgresql+psycopg2://", future=True)
with engine.begin() as conn:
    # func: positional arguments (task, payload, options)
    run_id = conn.execute(select(func.taskorch.trigger(
        "echo", type_coerce({"to": "c@example.com"}, JSONB),
        type_coerce({"delay": "1h", "tags": ["sqlalchemy"]}, JSONB)))).scalar_one()
    run = conn.execute(select(func.taskorch.retrieve(run_id))).scalar_one()
    ok(run["status"] == "DELAYED" and run["tags"] == ["sqlalchemy"], "func.taskorch.trigger with options")

    # text(): named arguments, each a bound parameter
    trigger = text("""SELECT taskorch.trigger(:task, :payload, delay => :delay, ttl => :ttl,
                                              max_duration => :max_duration, tags => :tags,
                                              metadata => :metadata)""").bindparams(
        bindparam("payload", type_=JSONB), bindparam("metadata", type_=JSONB))
    due = datetime.now(timezone.utc) + timedelta(hours=3)
    for delay in [due, timedelta(minutes=5), 30, "1h"]:
        r = conn.execute(trigger, dict(task="echo", payload={"n": 1}, delay=delay, ttl=3600,
                                       max_duration=timedelta(minutes=2), tags=["sa"],
                                       metadata={"via": "text"})).scalar_one()
        ok(conn.execute(select(func.taskorch.retrieve(r))).scalar_one()["status"] == "DELAYED",
           f"text(): delay {delay!r}")

    batch = conn.execute(select(func.taskorch.batch_trigger(
        "echo", type_coerce([{"payload": {"n": 1}}, {"payload": {"n": 2}}], JSONB)))).scalar_one()
    ok(len(conn.execute(select(func.taskorch.batch_retrieve(batch))).scalar_one()["runs"]) == 2,
       "func.taskorch.batch_trigger")
    listed = conn.execute(text("SELECT id FROM taskorch.list_runs(task => :task, tags => :tags)"),
                          dict(task=["echo"], tags=["sqlalchemy"])).scalars().all()
    ok(listed == [run_id], "list_runs with lists")
    ok(conn.execute(select(func.taskorch.reschedule(run_id, timedelta(hours=2)))).scalar_one() is not None,
       "reschedule by a timedelta")
    ok(conn.execute(select(func.taskorch.cancel(run_id))).scalar_one() is True, "cancel")
    ok(conn.execute(select(func.taskorch.replay(run_id))).scalar_one() != run_id, "replay")
print(f"1..{count}")
