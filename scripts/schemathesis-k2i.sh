#!/usr/bin/env bash
# k2i against its own OpenAPI document (schemathesis): a k2i from target/debug (or $K2I) in
# its own UTS namespace, with a throwaway CA, asked as a viewer and as an admin (certificate
# plus a valid bearer token of the same role, so no request is refused for a made-up token).
# Fails on any 5xx, an undocumented status or content type, or a body or header that does
# not match the schema.
#   scripts/schemathesis-k2i.sh [MAX_EXAMPLES]    (default 25 per operation; CI uses that)
set -euo pipefail
cd "$(dirname "$0")/.."
examples="${1:-25}"
bin="${BIN:-$PWD/target/debug}"
k2i="${K2I:-$bin/k2i}"
command -v schemathesis >/dev/null || { echo "schemathesis-k2i: schemathesis is not installed (scripts/setup.sh installs it)" >&2; exit 1; }
work="$(mktemp -d)"
k2i_pid=""
cleanup() { [ -n "$k2i_pid" ] && kill "$k2i_pid" 2>/dev/null; rm -rf "$work"; }
trap cleanup EXIT
"$bin/dcos" certs init --dir "$work" >/dev/null
"$bin/dcos" certs issue --dir "$work" --name node --role host --ip 127.0.0.1 >/dev/null
"$bin/dcos" certs issue --dir "$work" --name watcher --role viewer >/dev/null
viewer_token="$("$bin/dcos" tokens new --file "$work/tokens" --role viewer --name schemathesis-viewer | tail -1)"
admin_token="$("$bin/dcos" tokens new --file "$work/tokens" --role admin --name schemathesis-admin | tail -1)"
# Its own UTS namespace: a write schemathesis makes to kernel.domainname stays there.
unshare --uts "$k2i" --listen 127.0.0.1:0 --cert "$work/node.crt" --key "$work/node.key" --ca "$work/ca.crt" \
  --tokens "$work/tokens" --sysctl-allow 'kernel.domainname' --sample-interval 200ms \
  >"$work/k2i.out" 2>"$work/k2i.err" &
k2i_pid=$!
for _ in $(seq 100); do grep -q https:// "$work/k2i.out" 2>/dev/null && break; sleep 0.1; done
url="$(grep -o 'https://[0-9.:]*' "$work/k2i.out")" || { cat "$work/k2i.err" >&2; exit 1; }
for token in "$viewer_token" "$admin_token"; do
  curl -sf --cacert "$work/ca.crt" -H "Authorization: Bearer $token" "$url/v1/host" >/dev/null \
    || { echo "schemathesis-k2i: the bearer token is not accepted" >&2; exit 1; }
done
status=0
# A watch (`/v1/top?watch=true`) streams until the client closes: the hooks ask for one
# document instead (scripts/schemathesis_hooks.py says why).
export PYTHONPATH="$PWD/scripts${PYTHONPATH:+:$PYTHONPATH}" SCHEMATHESIS_HOOKS=schemathesis_hooks
# One worker: with threads, Python 3.11's ast.parse (which Hypothesis calls to describe its
# strategies) can fail with "AST constructor recursion depth mismatch", a crash of the tool
# that says nothing about k2i.
for who in watcher:"$viewer_token" admin:"$admin_token"; do
  name="${who%%:*}" token="${who#*:}"
  echo "schemathesis-k2i: $url as $name, $examples examples per operation" >&2
  schemathesis run "$url/v1/openapi.json" --tls-verify "$work/ca.crt" \
    --request-cert "$work/$name.crt" --request-cert-key "$work/$name.key" \
    -H "Authorization: Bearer $token" \
    --checks not_a_server_error,status_code_conformance,content_type_conformance,response_schema_conformance,response_headers_conformance \
    --max-examples "$examples" --workers 1 --seed 17 --no-color --warnings off || status=1
done
exit $status
