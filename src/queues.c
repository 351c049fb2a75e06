/*-------------------------------------------------------------------------
 *
 * queues.c
 *	  Queues: create_queue(), alter_queue(), pause_queue(), resume_queue(),
 *	  drop_queue(), grant_queue(), revoke_queue(), and who may use a queue.
 *
 * A run belongs to a queue: its task's (the task id, unless registered
 * with another), or the one trigger() named.  A queue without a row in
 * taskorch.queue has no limit and is never paused.  A queue's
 * concurrency_limit caps the runs executing at once, per concurrency key
 * when runs carry one (concurrency.c enforces it); a paused queue's runs
 * stay QUEUED until it is resumed.
 *
 * Queue names belong to someone (docs/queues.md, "Who may change a queue"):
 *
 *	- a defined queue (a row in taskorch.queue) belongs to the row's owner,
 *	  the role that created it;
 *	- a queue without a definition belongs to the owners of the tasks whose
 *	  queue it is, all of them; a name no task uses belongs to nobody yet.
 *
 * "Acting for" a queue is acts_for() every one of its owners.  Only a role
 * acting for a queue may create its definition (for a name that belongs
 * to nobody: any role, which then owns it), alter, pause, resume, drop,
 * grant or revoke it.  Using a queue (registering a task in it, or
 * trigger() naming it) needs acting for it or, for a defined queue, the
 * privileges of a role it was granted to (its `users`).  A name nobody
 * owns may be taken by registering a task in it, but runs are put into it
 * only by taskorch_admin: everyone else defines it first.  A trigger
 * that leaves the queue to its task's, whatever its role, needs only the
 * right to trigger the task (trigger.c).
 *
 * Races: the owner of an undefined queue is read from the task table and
 * a definition written to the queue table, so create_queue() and
 * register_task() serialize on a lock on the queue name (lock_name()) and then read with a fresh snapshot (taskorch_execute_args_latest),
 * whatever the isolation level: of two roles taking one name, the second
 * sees the first.  Changes of a definition lock its row (FOR UPDATE).
 *
 * Checks run as the caller, writes as the extension owner.  Every refusal
 * happens before anything is written.
 *
 *-------------------------------------------------------------------------
 */
#include "taskorch.h"

#include "catalog/pg_type.h"
#include "fmgr.h"
#include "lib/stringinfo.h"
#include "miscadmin.h"
#include "utils/acl.h"
#include "utils/array.h"
#include "utils/builtins.h"

PG_FUNCTION_INFO_V1(taskorch_create_queue);
PG_FUNCTION_INFO_V1(taskorch_alter_queue);
PG_FUNCTION_INFO_V1(taskorch_pause_queue);
PG_FUNCTION_INFO_V1(taskorch_drop_queue);
PG_FUNCTION_INFO_V1(taskorch_grant_queue);
PG_FUNCTION_INFO_V1(taskorch_revoke_queue);


/* the parameters of the queue statements: each names the fields it uses */
typedef struct QueueArgs
{
	PlanValue	name;
	PlanValue	concurrency_limit;	/* NULL: unlimited */
	PlanValue	owner;
	PlanValue	paused;
	PlanValue	role;			/* granted or revoked */
	PlanValue	grant;			/* true: grant, false: revoke */
} QueueArgs;

/* the columns of the queue statements' results */
typedef struct QueueRow
{
	PlanValue	owner;
	PlanValue	users;
} QueueRow;

static const PlanField name_params[] = {
	PLAN_PARAM(QueueArgs, name, TEXTOID),
};
static const PlanField owner_columns[] = {
	PLAN_COLUMN(QueueRow, owner),
};

static const PlanField create_params[] = {
	PLAN_PARAM(QueueArgs, name, TEXTOID),
	PLAN_PARAM(QueueArgs, concurrency_limit, INT4OID),
	PLAN_PARAM(QueueArgs, owner, OIDOID),
};
static NamedPlan create_plan = {
	.sql = "INSERT INTO taskorch.queue (name, concurrency_limit, owner)"
	" VALUES (:name, :concurrency_limit, :owner::regrole) ON CONFLICT (name) DO NOTHING",
	PLAN_PARAMS(create_params)
};

static NamedPlan owner_plan = {
	.sql = "SELECT owner::oid AS owner FROM taskorch.queue WHERE name = :name FOR UPDATE",
	PLAN_PARAMS(name_params), PLAN_COLUMNS(owner_columns)
};

static const PlanField definition_columns[] = {
	PLAN_COLUMN(QueueRow, owner),
	PLAN_COLUMN(QueueRow, users),
};
/* a queue's definition: its owner and the roles it was granted to */
static NamedPlan definition_plan = {
	.sql = "SELECT owner::oid AS owner, users::oid[] AS users"
	"  FROM taskorch.queue WHERE name = :name",
	PLAN_PARAMS(name_params), PLAN_COLUMNS(definition_columns)
};

/* the owners of the tasks whose queue it is */
static NamedPlan task_owners_plan = {
	.sql = "SELECT DISTINCT owner::oid AS owner FROM taskorch.task"
	" WHERE queue = :name ORDER BY 1",
	PLAN_PARAMS(name_params), PLAN_COLUMNS(owner_columns)
};

static const PlanField alter_params[] = {
	PLAN_PARAM(QueueArgs, name, TEXTOID),
	PLAN_PARAM(QueueArgs, concurrency_limit, INT4OID),
};
static NamedPlan alter_plan = {
	.sql = "UPDATE taskorch.queue SET concurrency_limit = :concurrency_limit, updated_at = now()"
	" WHERE name = :name",
	PLAN_PARAMS(alter_params)
};

static const PlanField pause_params[] = {
	PLAN_PARAM(QueueArgs, name, TEXTOID),
	PLAN_PARAM(QueueArgs, paused, BOOLOID),
};
static NamedPlan pause_plan = {
	.sql = "UPDATE taskorch.queue SET paused = :paused, updated_at = now() WHERE name = :name",
	PLAN_PARAMS(pause_params)
};

static NamedPlan drop_plan = {
	.sql = "DELETE FROM taskorch.queue WHERE name = :name",
	PLAN_PARAMS(name_params)
};

static const PlanField users_params[] = {
	PLAN_PARAM(QueueArgs, name, TEXTOID),
	PLAN_PARAM(QueueArgs, role, OIDOID),
	PLAN_PARAM(QueueArgs, grant, BOOLOID),
};
static NamedPlan users_plan = {
	.sql = "UPDATE taskorch.queue SET updated_at = now(), users ="
	"   taskorch_internal.role_list(users, :role, :grant)"
	" WHERE name = :name",
	PLAN_PARAMS(users_params)
};

/* Who owns a queue, as queue_owners() reads it. */
typedef struct QueueOwners
{
	bool		defined;		/* it has a row in taskorch.queue */
	Oid			owner;			/* defined: the row's owner */
	List	   *users;			/* defined: Oids it was granted to */
	List	   *task_owners;	/* not defined: Oids of its tasks' owners */
} QueueOwners;

/* A role's name for a message; a dropped role's OID. */
static char *
role_name(Oid role)
{
	char	   *name = GetUserNameFromId(role, true);

	return name ? name : psprintf("with OID %u (dropped)", role);
}

/* "role a" or "roles a, b" */
static char *
roles_text(List *roles)
{
	StringInfoData buf;
	ListCell   *lc;

	initStringInfo(&buf);
	appendStringInfoString(&buf, list_length(roles) > 1 ? "roles " : "role ");
	foreach(lc, roles)
		appendStringInfo(&buf, "%s%s", foreach_current_index(lc) > 0 ? ", " : "",
						 role_name(lfirst_oid(lc)));
	return buf.data;
}

/* Serialize with other transactions taking or changing the owners of `name`. */
static void
lock_queue_name(const char *name)
{
	lock_name(LOCK_QUEUE_NAME, name, strlen(name));
}

/*
 * Read who owns queue `name` (inside SPI): with a snapshot taken now when
 * `latest` (under lock_queue_name()), else the caller's.
 */
static void
queue_owners(const char *name, bool latest, QueueOwners *qo)
{
	QueueArgs	args = {.name = pv_text(name)};
	QueueRow	row;
	int			n;

	memset(qo, 0, sizeof(QueueOwners));
	n = latest ? taskorch_execute_args_latest(&definition_plan, &args, 1) :
		taskorch_execute_args(&definition_plan, &args, true, 1);
	if (n > 0)
	{
		Datum	   *roles;
		int			nroles;

		taskorch_read_row(&definition_plan, 0, &row);
		qo->defined = true;
		qo->owner = DatumGetObjectId(row.owner.datum);
		deconstruct_array(DatumGetArrayTypeP(row.users.datum),
						  OIDOID, sizeof(Oid), true, TYPALIGN_INT, &roles, NULL, &nroles);
		for (int i = 0; i < nroles; i++)
			qo->users = lappend_oid(qo->users, DatumGetObjectId(roles[i]));
		return;
	}
	n = latest ? taskorch_execute_args_latest(&task_owners_plan, &args, 0) :
		taskorch_execute_args(&task_owners_plan, &args, true, 0);
	for (int i = 0; i < n; i++)
	{
		taskorch_read_row(&task_owners_plan, i, &row);
		qo->task_owners = lappend_oid(qo->task_owners, DatumGetObjectId(row.owner.datum));
	}
}

/* An owner of the queue the current user does not act for, or InvalidOid. */
static Oid
foreign_owner(const QueueOwners *qo)
{
	ListCell   *lc;

	if (qo->defined)
		return acts_for(qo->owner) ? InvalidOid : qo->owner;
	foreach(lc, qo->task_owners)
		if (!acts_for(lfirst_oid(lc)))
			return lfirst_oid(lc);
	return InvalidOid;
}

/* Was a defined queue granted to a role whose privileges the current user has? */
static bool
granted(const QueueOwners *qo)
{
	ListCell   *lc;

	foreach(lc, qo->users)
		if (has_privs_of_role(GetUserId(), lfirst_oid(lc)))
			return true;
	return false;
}

/*
 * Refuse unless the current user may put runs into queue `name`, which
 * is not the task's own (trigger(), batch items, a wait's children,
 * replay()).  Caller is inside SPI.
 */
void
queue_check_trigger(const char *name)
{
	QueueOwners qo;
	Oid			other;

	if (is_taskorch_admin())
		return;
	queue_owners(name, false, &qo);
	other = foreign_owner(&qo);
	if (qo.defined && (!OidIsValid(other) || granted(&qo)))
		return;
	if (!qo.defined && qo.task_owners != NIL && !OidIsValid(other))
		return;
	if (qo.defined)
		ereport(ERROR,
				errcode(ERRCODE_INSUFFICIENT_PRIVILEGE),
				errmsg("permission denied to use queue \"%s\"", name),
				errdetail("The queue is owned by role %s.", role_name(other)),
				errhint("Its owner can allow you with taskorch.grant_queue('%s', <role>); without the queue option a run goes to its task's queue.",
						name));
	if (qo.task_owners != NIL)
		ereport(ERROR,
				errcode(ERRCODE_INSUFFICIENT_PRIVILEGE),
				errmsg("permission denied to use queue \"%s\"", name),
				errdetail("The queue is not defined; it is the queue of tasks owned by role %s.",
						  role_name(other)),
				errhint("Use a queue of your own (taskorch.create_queue()), or leave out the queue option: a run then goes to its task's queue."));
	ereport(ERROR,
			errcode(ERRCODE_INSUFFICIENT_PRIVILEGE),
			errmsg("permission denied to use queue \"%s\"", name),
			errdetail("The queue is not defined and no task uses it: no role owns it yet."),
			errhint("Define it with taskorch.create_queue('%s') first; the role that defines a queue owns it.",
					name));
}

/*
 * Refuse unless the current user may register task `task` with queue
 * `name`: a queue it acts for, one granted to it, or a name nobody owns
 * yet (the task's owner then owns it).  Holds the queue name's lock to
 * the end of the transaction.  Caller is inside SPI.
 */
void
queue_check_register(const char *task, const char *name)
{
	QueueOwners qo;
	Oid			other;

	lock_queue_name(name);
	if (is_taskorch_admin())
		return;
	queue_owners(name, true, &qo);
	other = foreign_owner(&qo);
	if (!OidIsValid(other) || (qo.defined && granted(&qo)))
		return;
	if (qo.defined)
		ereport(ERROR,
				errcode(ERRCODE_INSUFFICIENT_PRIVILEGE),
				errmsg("permission denied to register task \"%s\" in queue \"%s\"", task, name),
				errdetail("The queue is owned by role %s.", role_name(other)),
				errhint("Its owner can allow you with taskorch.grant_queue('%s', <role>); or register the task with queue => a queue of your own.",
						name));
	ereport(ERROR,
			errcode(ERRCODE_INSUFFICIENT_PRIVILEGE),
			errmsg("permission denied to register task \"%s\" in queue \"%s\"", task, name),
			errdetail("The queue is not defined; it is the queue of tasks owned by role %s.",
					  role_name(other)),
			errhint("Register the task with queue => a queue of your own."));
}

static char *
queue_arg(FunctionCallInfo fcinfo)
{
	char	   *name;

	require_arg(fcinfo, 0, "queue name", "Pass a queue name such as 'paid-users'.");
	name = text_to_cstring(PG_GETARG_TEXT_PP(0));
	check_name("queue", name);
	return name;
}

/* NULL (unlimited) or a positive limit from argument argno. */
static PlanValue
limit_arg(FunctionCallInfo fcinfo, int argno)
{
	int32		limit;

	if (PG_ARGISNULL(argno))
		return PV_NULL;
	limit = PG_GETARG_INT32(argno);
	if (limit < 1)
		ereport(ERROR,
				errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				errmsg("concurrency_limit must be at least 1, not %d", limit),
				errhint("Pass NULL for a queue without a limit, or pause_queue() to stop it."));
	return pv_int4(limit);
}

/* Lock the queue's row and check the caller may change it (inside SPI). */
static void
lock_own_queue(const char *name)
{
	QueueArgs	args = {.name = pv_text(name)};
	QueueRow	row;
	Oid			owner;

	if (taskorch_execute_args(&owner_plan, &args, false, 1) == 0)
	{
		QueueOwners qo;

		queue_owners(name, false, &qo);
		if (qo.task_owners != NIL)
			ereport(ERROR,
					errcode(ERRCODE_UNDEFINED_OBJECT),
					errmsg("queue \"%s\" does not exist", name),
					errdetail("It has no definition; it is the queue of tasks owned by %s.",
							  roles_text(qo.task_owners)),
					errhint("The owners of those tasks may define it with taskorch.create_queue()."));
		ereport(ERROR,
				errcode(ERRCODE_UNDEFINED_OBJECT),
				errmsg("queue \"%s\" does not exist", name),
				errhint("Create it with taskorch.create_queue(); taskorch.queues lists the queues."));
	}
	taskorch_read_row(&owner_plan, 0, &row);
	owner = DatumGetObjectId(row.owner.datum);
	if (!acts_for(owner))
		ereport(ERROR,
				errcode(ERRCODE_INSUFFICIENT_PRIVILEGE),
				errmsg("permission denied for queue \"%s\"", name),
				errdetail("The queue is owned by role %s.", role_name(owner)),
				errhint("Only its owner, a member of its role, or taskorch_admin may change it."));
}

static void create_queue(const char *name, PlanValue limit);

/*
 * SQL: taskorch.create_queue(name, concurrency_limit) -> name.  The caller
 * must act for the owners of the tasks whose queue it is, if any; it owns
 * the definition.
 */
Datum
taskorch_create_queue(PG_FUNCTION_ARGS)
{
	char	   *name = queue_arg(fcinfo);
	PlanValue	limit = limit_arg(fcinfo, 1);

	SPI_connect();
	lock_queue_name(name);
	create_queue(name, limit);
	SPI_finish();
	PG_RETURN_TEXT_P(cstring_to_text(name));
}

/*
 * Define queue `name` with `limit`, owned by the caller, who must act for
 * the owners of the tasks whose queue it is.  Caller is inside SPI and
 * holds the name's lock.
 */
static void
create_queue(const char *name, PlanValue limit)
{
	QueueArgs	args = {0};
	QueueOwners qo;
	Oid			other;

	args.name = pv_text(name);
	args.concurrency_limit = limit;
	args.owner = pv_oid(GetUserId());
	queue_owners(name, true, &qo);
	other = foreign_owner(&qo);
	if (qo.defined)
		ereport(ERROR,
				errcode(ERRCODE_DUPLICATE_OBJECT),
				errmsg("queue \"%s\" already exists", name),
				errdetail("It is owned by role %s.", role_name(qo.owner)),
				OidIsValid(other) ?
				errhint("Choose another name: only its owner, a member of its role, or taskorch_admin may change it.") :
				errhint("Change its limit with taskorch.alter_queue()."));
	if (OidIsValid(other))
		ereport(ERROR,
				errcode(ERRCODE_INSUFFICIENT_PRIVILEGE),
				errmsg("permission denied to create queue \"%s\"", name),
				errdetail("It is the queue of tasks owned by role %s.", role_name(other)),
				errhint("Only the owners of the tasks whose queue it is (or members of their roles, or taskorch_admin) may define it; choose another name."));
	if (taskorch_execute_args(&create_plan, &args, false, 0) == 0)
		ereport(ERROR,
				errcode(ERRCODE_DUPLICATE_OBJECT),
				errmsg("queue \"%s\" already exists", name),
				errhint("Change its limit with taskorch.alter_queue()."));
}

/*
 * Trigger.dev's trigger(..., {queue: {name, concurrencyLimit}}): queue
 * `name` is defined with `limit` (0: none) if it has no definition, or
 * given that limit if it has one; either needs the rights of
 * create_queue() or alter_queue().  Caller is inside SPI.
 */
void
queue_set_limit_inline(const char *name, int32 limit)
{
	QueueArgs	args = {0};
	QueueOwners qo;

	args.name = pv_text(name);
	args.concurrency_limit = limit > 0 ? pv_int4(limit) : PV_NULL;
	lock_queue_name(name);
	queue_owners(name, true, &qo);
	if (!qo.defined)
	{
		create_queue(name, args.concurrency_limit);
		return;
	}
	lock_own_queue(name);
	taskorch_execute_args(&alter_plan, &args, false, 0);
	taskorch_wake_at_commit();
}

/* SQL: taskorch.alter_queue(name, concurrency_limit) */
Datum
taskorch_alter_queue(PG_FUNCTION_ARGS)
{
	char	   *name = queue_arg(fcinfo);
	QueueArgs	args = {0};

	args.name = pv_text(name);
	args.concurrency_limit = limit_arg(fcinfo, 1);
	SPI_connect();
	lock_own_queue(name);
	taskorch_execute_args(&alter_plan, &args, false, 0);
	SPI_finish();
	taskorch_wake_at_commit();	/* a higher limit may let runs start */
	PG_RETURN_VOID();
}

/* SQL: taskorch.pause_queue(name, paused): pause_queue() and resume_queue() */
Datum
taskorch_pause_queue(PG_FUNCTION_ARGS)
{
	char	   *name = queue_arg(fcinfo);
	QueueArgs	args = {0};

	require_arg(fcinfo, 1, "paused", "Pass true to pause the queue, false to resume it (or call resume_queue()).");
	args.name = pv_text(name);
	args.paused = pv_bool(PG_GETARG_BOOL(1));
	SPI_connect();
	lock_own_queue(name);
	taskorch_execute_args(&pause_plan, &args, false, 0);
	SPI_finish();
	if (!PG_GETARG_BOOL(1))
		taskorch_requeued_at_commit();	/* its runs may lie behind the workers' marks */
	PG_RETURN_VOID();
}

/* SQL: taskorch.drop_queue(name): its runs go on, without limit */
Datum
taskorch_drop_queue(PG_FUNCTION_ARGS)
{
	char	   *name = queue_arg(fcinfo);
	QueueArgs	args = {.name = pv_text(name)};

	SPI_connect();
	lock_own_queue(name);
	taskorch_execute_args(&drop_plan, &args, false, 0);
	SPI_finish();
	taskorch_requeued_at_commit();
	PG_RETURN_VOID();
}

static Datum
change_users(FunctionCallInfo fcinfo, bool grant)
{
	char	   *name = queue_arg(fcinfo);
	QueueArgs	args = {0};

	require_arg(fcinfo, 1, "role", "Pass a role name, e.g. 'app_user'.");
	args.name = pv_text(name);
	args.role = pv_datum(PG_GETARG_DATUM(1));
	args.grant = pv_bool(grant);
	SPI_connect();
	lock_own_queue(name);
	taskorch_execute_args(&users_plan, &args, false, 0);
	SPI_finish();
	PG_RETURN_VOID();
}

/*
 * SQL: taskorch.grant_queue(queue, role): the role (and its members) may
 * register tasks in the queue and trigger runs into it.
 */
Datum
taskorch_grant_queue(PG_FUNCTION_ARGS)
{
	return change_users(fcinfo, true);
}

/*
 * SQL: taskorch.revoke_queue(queue, role).  Runs already in the queue stay,
 * and so do the role's tasks registered in it.
 */
Datum
taskorch_revoke_queue(PG_FUNCTION_ARGS)
{
	return change_users(fcinfo, false);
}
