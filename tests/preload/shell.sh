# SPDX-License-Identifier: LGPL-2.1-or-later
# A dash script with subshells, pipelines, command substitution, here
# documents, functions and loops: tests/preload/run.sh runs it on glibc and
# on the drop-in malloc and compares the output byte for byte.  Forks
# everywhere: a subshell's assignments must never reach its parent.
set -u

x=1; (x=2; echo "subshell x=$x"); echo "parent x=$x"

count() { n=0; while read -r _; do n=$((n + 1)); done; echo "$n"; }
i=0
while [ $i -lt 60 ]; do
	v=$(printf 'item-%05d' $i | tr 0-9 a-j)
	list="${list:-} $v"
	i=$((i + 1))
done
echo "words: $(echo $list | tr ' ' '\n' | count)"
echo "sorted tail: $(echo $list | tr ' ' '\n' | sort -r | head -n 3 | tr '\n' ' ')"

f() { local_v="f$1"; echo "$local_v" | sed 's/f/F/'; }
for k in 1 2 3 4 5; do r=$(f $k); printf '%s ' "$r"; done; echo

big=$(i=0; while [ $i -lt 1000 ]; do echo "line $i $((i * i % 97))"; i=$((i + 1)); done)
echo "big: $(echo "$big" | wc -l) lines, sum $(echo "$big" | awk '{s += $3} END {print s}')"
echo "$big" | grep -c ' 0$'

cat <<HERE | while read -r a b; do echo "$b $a"; done
one 1
two 2
three $x
HERE

( ( ( y=nested; echo "$y" ) | tr a-z A-Z ) ; echo "y=${y:-unset}" )
set -- a b c; shift; echo "$# $*"
echo "$(echo "$(echo "$(echo deep)")")"
: > /tmp/shell-preload-test.$$
for j in 1 2 3; do echo "$j" >> /tmp/shell-preload-test.$$ & done; wait
sort /tmp/shell-preload-test.$$ | tr '\n' ,; echo
rm -f /tmp/shell-preload-test.$$
