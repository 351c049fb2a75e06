#!/usr/bin/env bash
# Packaging: META.json is valid PGXN metadata whose version is the
# extension's (taskorch.control, Makefile), and the install script it names
# is the one the build makes.
set -euo pipefail
top=$(cd "$(dirname "$0")/.." && pwd)
ext=$(sed -n 's/^EXTVERSION *= *//p' "$top/Makefile")
control=$(sed -n "s/^default_version = '\(.*\)'/\1/p" "$top/taskorch.control")
/usr/bin/python3 - "$top/META.json" "$ext" "$control" "$top" <<'PY'
import json, os, sys
meta_path, ext, control, top = sys.argv[1:]
meta = json.load(open(meta_path))
for key in ("name", "abstract", "version", "maintainer", "license", "provides", "meta-spec"):
    assert key in meta, f"META.json lacks {key}"
short = ".".join(meta["version"].split(".")[:2])
assert short == ext == control, f"versions differ: META.json {meta['version']}, Makefile {ext}, control {control}"
provided = meta["provides"]["taskorch"]
assert provided["version"] == meta["version"], "provides.taskorch.version is not the version"
assert provided["file"] == f"taskorch--{ext}.sql", f"provides.taskorch.file is {provided['file']}"
assert os.path.exists(os.path.join(top, provided["docfile"])), "docfile missing"
assert meta["prereqs"]["runtime"]["requires"]["PostgreSQL"].startswith("15."), "PostgreSQL requirement"
print(f"packaging: META.json {meta['version']} agrees with the Makefile and taskorch.control ({ext})")
PY
