"""Schemathesis hooks for scripts/schemathesis.sh.

Report requests get a date range inside the demo enrollment's term: the fuzzer
draws startDate and endDate from years 1 to 9999, and the server rightly refuses
a range outside the term (or longer than 36 months), so nearly no generated
request would reach the report code; a request for a billing period (the
body's other shape) gets one inside the term likewise; made-up account and department names
are refused alike, so they become names the demo has. The shape of the body
(which fields, how many names, the format) stays generated.
"""

import os

import schemathesis

START = os.environ["ST_START_DATE"]
END = os.environ["ST_END_DATE"]
PERIOD = os.environ["ST_BILLING_PERIOD"]
DEPARTMENTS = ["Research", "Operations", "Marketing", "Finance"]
ACCOUNTS = ["lab-analytics", "ops-web", "mk-campaigns", "fin-apps", "shared-it"]


def known(names, pool):
    """The same number of names, each mapped onto one the demo has."""
    if not isinstance(names, list):
        return names
    return [pool[sum(map(ord, str(n))) % len(pool)] for n in names]


@schemathesis.hook
def map_body(context, body):
    op = context.operation
    if op is not None and op.method.upper() == "POST" and op.path.endswith("/reports") and isinstance(body, dict):
        if "billingPeriod" in body:
            body = dict(body, billingPeriod=PERIOD)
        else:
            body = dict(body, startDate=START, endDate=END)
        if "departments" in body:
            body["departments"] = known(body["departments"], DEPARTMENTS)
        if "accounts" in body:
            body["accounts"] = known(body["accounts"], ACCOUNTS)
    return body
