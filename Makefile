# taskorch: PGXS build.
#
# The install script of the current version is written once, in
# sql/taskorch.sql, and copied to taskorch--$(EXTVERSION).sql at build time.
# Each earlier version's install script is kept, frozen, as
# sql/taskorch--A.sql, and every release adds an upgrade script
# sql/taskorch--A--B.sql; test `upgrade` checks that upgrading gives what
# a fresh install gives.

EXTENSION  = taskorch
EXTVERSION = 0.2
MODULE_big = taskorch
OBJS = $(patsubst %.c,%.o,$(wildcard src/*.c))

DATA_built = taskorch--$(EXTVERSION).sql
# the frozen scripts of earlier versions, and the upgrades between versions
DATA = $(wildcard sql/taskorch--*.sql)

# pg_regress suites (sql/NAME.sql + expected/NAME.out); run by test/run-all.
REGRESS = setup registry trigger errors outcomes security roles executing options debounce manage batch logs metadata queues waits schemas hooks tracks upgrade
REGRESS_OPTS = --temp-instance=tmp_check --temp-config=test/regress.conf --load-extension=taskorch
# notify first: its expected output names run ids, counted from 1
ISOLATION = notify claim idempotency debounce cancel tokens fanin queuename reschedule schemacycle
ISOLATION_OPTS = --inputdir=test --outputdir=output_iso --temp-instance=tmp_check_iso --temp-config=test/isolation.conf --load-extension=taskorch

PG_CONFIG ?= pg_config
PG_CPPFLAGS = -Isrc -DTASKORCH_VERSION=\"$(EXTVERSION)\"
EXTRA_CLEAN = taskorch--$(EXTVERSION).sql

# no LLVM bitcode: JIT inlining of these functions is not needed
override with_llvm = no

PGXS := $(shell $(PG_CONFIG) --pgxs)
include $(PGXS)

# -Wunused-parameter is off: the server headers trip it in their inline functions
override CFLAGS += -Wextra -Wno-unused-parameter -Werror=implicit-function-declaration

taskorch--$(EXTVERSION).sql: sql/taskorch.sql
	cp $< $@

# every object depends on the one internal header
$(OBJS): src/taskorch.h
