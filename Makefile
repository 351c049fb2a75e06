# taskorch: PGXS build.
#
# The install script is written once, in sql/taskorch.sql, and copied to the
# versioned name taskorch--$(EXTVERSION).sql at build time.  Every release
# after the first adds a delta script sql/taskorch--A--B.sql.

EXTENSION  = taskorch
EXTVERSION = 0.1
MODULE_big = taskorch
OBJS = $(patsubst %.c,%.o,$(wildcard src/*.c))

DATA_built = taskorch--$(EXTVERSION).sql
DATA = $(wildcard sql/taskorch--*--*.sql)

# pg_regress suites (sql/NAME.sql + expected/NAME.out); run by test/run-all.
REGRESS = setup registry trigger errors outcomes security executing
REGRESS_OPTS = --temp-instance=tmp_check --temp-config=test/regress.conf --load-extension=taskorch
ISOLATION = claim
ISOLATION_OPTS = --inputdir=test --outputdir=output_iso --temp-instance=tmp_check_iso --temp-config=test/isolation.conf --load-extension=taskorch

PG_CONFIG ?= pg_config
PG_CPPFLAGS = -Isrc
EXTRA_CLEAN = taskorch--$(EXTVERSION).sql

# no LLVM bitcode: JIT inlining of these functions is not needed
override with_llvm = no

PGXS := $(shell $(PG_CONFIG) --pgxs)
include $(PGXS)

# -Wunused-parameter is off: the server headers trip it in their inline functions
override CFLAGS += -Wextra -Wno-unused-parameter -Werror=implicit-function-declaration

taskorch--$(EXTVERSION).sql: sql/taskorch.sql
	cp $< $@
