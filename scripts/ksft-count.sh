#!/bin/sh
# Count the kselftest harness's test cases in a VM console log: prints
# "PASSED FAILED SKIPPED".  A test program that failed without reporting a
# failing case (a crash, a timeout) counts as one failure.
#
#   scripts/ksft-count.sh LOG
exec awk '
	/^# (ok|not ok) [0-9]+ / {
		if ($2 == "not") { f++; pf++ }
		else if ($0 ~ /# SKIP/) s++
		else p++
		next
	}
	/^not ok [0-9]+ selftests: / { if (!pf) f++; pf = 0; next }
	/^ok [0-9]+ selftests: .*# SKIP/ { if (!pf) s++; pf = 0; next }
	/^ok [0-9]+ selftests: / { pf = 0; next }
	END { printf "%d %d %d\n", p, f, s }' "$1"
