#!/bin/sh
# The debug lane's second half, in the guest of make check-debug, after the
# selftests (which include the fail_nth sweep) in the same boot:
#
#   sh guest.sh OPS [SEED]
#
# 1. the fuzzer, OPS operations (SEED replays a run)
# 2. a kmemleak scan: any suspected leak whose report mentions pyalloc fails
#    (others, the kernel's own false positives, are counted and shown)
#
# Prints "PYALLOC-DEBUG: <step> ok|FAILED" per step for debug/check-debug.sh
# and copies the kmemleak report to /out.  Exit status: 0 if both passed.
ops=${1:-1000000}
seed=${2:-}
rc=0

echo "PYALLOC-DEBUG: fuzzer, $ops operations"
if ./pyalloc_fuzz -n "$ops" ${seed:+-s "$seed"}; then
	echo "PYALLOC-DEBUG: fuzzer ok"
else
	echo "PYALLOC-DEBUG: fuzzer FAILED"
	rc=1
fi

kl=/sys/kernel/debug/kmemleak
if [ ! -w $kl ]; then
	echo "PYALLOC-DEBUG: kmemleak FAILED: no $kl"
	exit 1
fi
# kmemleak reports an object only when it is older than 5 s and was
# unreferenced in two scans in a row with unchanged contents.  The module
# stays loaded, so that the backtraces of its objects name it.
sleep 6
echo scan >$kl
sleep 6
echo scan >$kl
cat $kl >/tmp/kmemleak.txt
mkdir -p /out && cp /tmp/kmemleak.txt /out/kmemleak.txt
total=$(grep -c '^unreferenced object' /tmp/kmemleak.txt)
# One report per object: header line, then indented lines up to the next.
mine=$(awk '/^unreferenced object/ { if (r ~ /pyalloc|pya_/) n++; r = "" }
	    { r = r $0 "\n" }
	    END { if (r ~ /pyalloc|pya_/) n++; print n + 0 }' /tmp/kmemleak.txt)
if [ "$mine" != 0 ]; then
	echo "PYALLOC-DEBUG: kmemleak FAILED: $mine of $total suspected leaks are pyalloc's"
	awk '/^unreferenced object/ { if (r ~ /pyalloc|pya_/) printf "%s", r; r = "" }
	     { r = r $0 "\n" }
	     END { if (r ~ /pyalloc|pya_/) printf "%s", r }' /tmp/kmemleak.txt |
		head -n 200
	rc=1
else
	echo "PYALLOC-DEBUG: kmemleak ok ($total suspected leaks, none from pyalloc)"
	[ "$total" = 0 ] || head -n 40 /tmp/kmemleak.txt
fi
exit $rc
