# Checks that every ```output block of a docs page appears, in order, in what
# psql printed when the page's examples ran.  Usage:
#   awk -f doc-output.awk page.md psql-output
# Both sides are compared after normalising what may differ between runs
# of the same example: psql's "psql:FILE:LINE: " before an error, run ids
# (run_N), table rule widths, and runs of spaces.  Prints each block that is missing and exits 1 if any is.
function norm(line) {
	sub(/^psql:[^ ]*:[0-9]+: /, "", line)
	gsub(/run_[0-9]+/, "run_N", line)
	gsub(/batch_[0-9]+/, "batch_N", line)
	gsub(/waittoken_[0-9_]+/, "waittoken_N", line)
	if (line ~ /^[-+]+$/)
		return "---"
	gsub(/[ \t]+/, " ", line)
	sub(/^ /, "", line)
	sub(/ $/, "", line)
	return line
}
FNR == 1 { file++ }
file == 1 && /^```output$/ { inblock = 1; nblocks++; nl[nblocks] = 0; next }
file == 1 && /^```/ { inblock = 0; next }
file == 1 && inblock {
	l = norm($0)
	if (l != "")
		block[nblocks, ++nl[nblocks]] = l
	next
}
file == 2 {
	l = norm($0)
	if (l != "")
		out[++nout] = l
}
END {
	status = 0
	pos = 1
	for (b = 1; b <= nblocks; b++) {
		found = 0
		for (start = pos; start + nl[b] - 1 <= nout && !found; start++) {
			ok = 1
			for (i = 1; i <= nl[b] && ok; i++)
				if (out[start + i - 1] != block[b, i])
					ok = 0
			if (ok) {
				found = 1
				pos = start + nl[b]
			}
		}
		if (!found) {
			status = 1
			print "  output shown in block " b " was not printed (in order):"
			for (i = 1; i <= nl[b]; i++)
				print "    " block[b, i]
		}
	}
	exit status
}
