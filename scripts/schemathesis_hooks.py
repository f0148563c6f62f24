"""Schemathesis hooks for scripts/schemathesis.sh: make generated requests behave like a
well-behaved client where the document cannot say what the server requires, and nowhere else.

* Idempotency-Key: a valid key is made unique per request. Hypothesis generates the same few
  keys ("0", "00"…) with different bodies, and the server rightly answers 422 to a key reused
  with another order (covered by the API's own tests), which the positive-data check would
  report as a valid request rejected. Invalid keys are left alone: they must still get a 4xx.
* cursor: a non-empty cursor is dropped. A cursor is an opaque token the server issued; no
  string generated from its schema is one, and any other is rightly a 400. The empty cursor
  (invalid by the document) is kept.
"""

import re
import uuid

import schemathesis

VALID_KEY = re.compile(r"[!-~]{1,255}")


@schemathesis.hook
def before_call(context, case, kwargs):
    # Every phase sends through here (the map_* hooks are not applied to the coverage phase).
    # Schemathesis revalidates the case after this hook, so its checks judge what is sent.
    headers = case.headers or {}
    for name in list(headers):
        if name.lower() == "idempotency-key":
            key = headers[name]
            if isinstance(key, str) and VALID_KEY.fullmatch(key):
                headers[name] = key[:222] + "-" + uuid.uuid4().hex
    query = case.query or {}
    cursor = query.get("cursor")
    if isinstance(cursor, str) and cursor != "":
        del query["cursor"]
