# taskorch: PGXS build.
#
# The SQL scripts are built from parts; sql/parts/README.md says how to add
# a function, a table, or a new version's upgrade.
#   sql/parts/schema/*.sql  what is created once: types, tables, sequences,
#                           indexes, policies, grants on tables
#   sql/parts/code/*.sql    what is applied again by every upgrade: functions,
#                           procedures and views, all CREATE OR REPLACE
#   sql/updates/A--B.sql    the "modfile" of release B: what changed in the
#                           schema since A (new tables and columns, type
#                           changes, data moves, DROP of changed signatures)
# taskorch--$(EXTVERSION).sql is SCHEMA then CODE, in the order listed below;
# taskorch--A--$(EXTVERSION).sql is the modfiles from A on, then CODE.  Each
# earlier version's install script is kept, frozen, as sql/taskorch--A.sql;
# test `upgrade` checks that upgrading gives what a fresh install gives.

EXTENSION  = taskorch
EXTVERSION = 0.2
MODULE_big = taskorch
OBJS = $(patsubst %.c,%.o,$(wildcard src/*.c))

SCHEMA = $(patsubst %,sql/parts/schema/%.sql,\
	preload statuses role_ref arguments registry runs queues batches logs schemas waits composites schedules)
CODE = $(patsubst %,sql/parts/code/%.sql,\
	statuses registry runs trigger manage queues batches logs metadata schemas waits \
	results tracks jobs schedules retention external role_ref operations comments)
UPDATES = $(wildcard sql/updates/*--*.sql)
# every version with a modfile upgrades straight to this one
UPGRADE_FROM = $(foreach f,$(UPDATES),$(firstword $(subst --, ,$(basename $(notdir $(f))))))

DATA_built = taskorch--$(EXTVERSION).sql $(UPGRADE_FROM:%=taskorch--%--$(EXTVERSION).sql)
# the frozen install scripts of earlier versions
DATA = $(wildcard sql/taskorch--*.sql)

# pg_regress suites (sql/NAME.sql + expected/NAME.out); run by test/run-all.
REGRESS = setup statuses registry trigger errors outcomes sql_tasks security roles executing options debounce manage batch logs metadata queues waits schemas hooks tracks transitions schedules retention external stats indexes upgrade
REGRESS_OPTS = --temp-instance=tmp_check --temp-config=test/regress.conf --load-extension=taskorch
# notify first: its expected output names run ids, counted from 1
ISOLATION = notify claim idempotency debounce cancel tokens fanin queuename reschedule schemacycle external
ISOLATION_OPTS = --inputdir=test --outputdir=output_iso --temp-instance=tmp_check_iso --temp-config=test/isolation.conf --load-extension=taskorch

PG_CONFIG ?= pg_config
PG_CPPFLAGS = -Isrc -DTASKORCH_VERSION=\"$(EXTVERSION)\"

# no LLVM bitcode: JIT inlining of these functions is not needed
override with_llvm = no

PGXS := $(shell $(PG_CONFIG) --pgxs)
include $(PGXS)

# -Wunused-parameter is off: the server headers trip it in their inline functions
override CFLAGS += -Wextra -Wno-unused-parameter -Werror=implicit-function-declaration

# $(call assemble,files): the files, each after a line naming it, into $@
assemble = { echo '-- Built by the Makefile from sql/parts and sql/updates: edit those, not this file.'; \
	for f in $(1); do printf '\n-- %s\n' "$$f"; cat "$$f"; done; } > $@.tmp && mv $@.tmp $@
# $(call modfiles_from,A): the modfiles from version A on, in version order
modfiles_from = $(shell printf '%s\n' $(UPDATES) | sort -V | sed -n '\|/$(1)--|,$$p')

taskorch--$(EXTVERSION).sql: $(SCHEMA) $(CODE) Makefile
	@if grep -n '^CREATE ' $(CODE) | grep -v ':CREATE OR REPLACE '; then \
		echo 'code parts are applied again by upgrades: write CREATE OR REPLACE, or move the object to sql/parts/schema' >&2; exit 1; fi
	$(call assemble,$(SCHEMA) $(CODE))

taskorch--%--$(EXTVERSION).sql: $(UPDATES) $(CODE) Makefile
	$(call assemble,$(call modfiles_from,$*) $(CODE))

# every object depends on the one internal header (and the statuses it includes)
$(OBJS): src/taskorch.h src/status.h

# the taskorch command (cli/, docs/cli.md), built and installed with the extension
all: cli
install: install-cli
clean: clean-cli
cli:
	$(MAKE) -C cli PG_CONFIG=$(PG_CONFIG)
install-cli: cli
	$(MAKE) -C cli PG_CONFIG=$(PG_CONFIG) install
clean-cli:
	$(MAKE) -C cli PG_CONFIG=$(PG_CONFIG) clean
.PHONY: cli install-cli clean-cli
