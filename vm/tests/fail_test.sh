#!/bin/sh
# A selftest that fails: vm/selftest.sh checks that the runner reports it.
echo "TAP version 13"
echo "1..1"
echo "not ok 1 deliberately failing"
exit 1
