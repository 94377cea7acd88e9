"""Schemathesis hooks for scripts/schemathesis-k2i.sh.

`GET /v1/top?watch=true` streams a document per sample until the client closes, and
schemathesis reads every body to its end: a watching case would never end. Each such case
asks for one document instead (`watch=false`); the watch itself is tested end to end in
tests/tests/k2i_api.rs.
"""

import schemathesis

WATCHING = ("true", "1")


def _unwatch(value):
    if isinstance(value, list):
        return [_unwatch(v) for v in value]
    return "false" if str(value) in WATCHING else value


@schemathesis.hook
def before_call(ctx, case, kwargs):
    if case.query and "watch" in case.query:
        case.query["watch"] = _unwatch(case.query["watch"])
