#!/bin/sh
# A command-line agent for tests/test_cli.py, wrapped by `nngc join/work --exec 'sh tests/cli_agent.sh'`:
# the request arrives as text on stdin, its kind in $NNGC_KIND (and a vote's options, as
# JSON, in $NNGC_OPTIONS); the answer is what it prints. "fail" makes it exit 3.
read -r request
case "$request" in
    fail) echo "cannot do $request" >&2; exit 3 ;;
esac
case "$NNGC_KIND" in
    vote) echo yes ;;
    *) echo "sh got $request" ;;
esac
