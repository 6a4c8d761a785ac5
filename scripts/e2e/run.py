"""End-to-end scenarios of the portal in headless Chromium (see scripts/e2e.sh).

Prints one line per check (PASS / FAIL / SKIPPED) and a closing count; exits
1 if any check failed. A page whose route does not exist yet (the API's JSON
404) is reported as `SKIPPED: page missing`, never as a pass.
"""

import argparse
import csv
import datetime
from decimal import ROUND_HALF_EVEN, Decimal
import io
import json
import os
import re
import shutil
import subprocess
import sys
import time
import traceback
import urllib.error
import urllib.request

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from cdp import Browser, CDPError  # noqa: E402

PASSWORD = "meterbook-demo"
ADMIN = "admin@northwind.example"
AUDITOR = "auditor@northwind.example"
DANA = "dana@northwind.example"
ERIK = "erik@northwind.example"
ROLES = [ADMIN, AUDITOR, DANA, ERIK]
KEY_RE = re.compile(r"^mbk_[0-9a-f]{16}_[0-9a-f]{64}$")


class Failed(Exception):
    pass


class Run:
    def __init__(self, args):
        self.a = args
        self.base = args.base
        self.n = args.enrollment
        self.passed = self.failed = self.skipped = 0
        self.failures = []
        today = datetime.datetime.now(datetime.timezone.utc).date()  # the server's calendar
        last = today.replace(day=1) - datetime.timedelta(days=1)
        # The last full month: monthly downloads and the advanced report.
        self.period = f"{last.year}{last.month:02d}"
        self.p_first = last.replace(day=1).isoformat()
        self.p_last = last.isoformat()
        self.tabs = {}
        self.shots_dir = os.path.join(args.work, "screenshots")
        os.makedirs(self.shots_dir, exist_ok=True)
        self.shots = []

    # -- reporting ---------------------------------------------------------

    def ok(self, msg):
        self.passed += 1
        print(f"PASS: {msg}", flush=True)

    def fail(self, msg):
        self.failed += 1
        self.failures.append(msg)
        print(f"FAIL: {msg}", flush=True)

    def skip(self, msg):
        self.skipped += 1
        print(f"SKIPPED: {msg}", flush=True)

    def check(self, cond, msg, detail=""):
        if cond:
            self.ok(msg)
        else:
            self.fail(f"{msg}{': ' + detail if detail else ''}")
        return cond

    def scenario(self, name, f):
        print(f"== {name}", flush=True)
        try:
            f()
        except Failed as e:
            self.fail(f"{name}: {e}")
        except (CDPError, OSError, ValueError, KeyError, AssertionError) as e:
            self.fail(f"{name}: {type(e).__name__}: {e}")
            traceback.print_exc(limit=3)

    # -- HTTP and CLI ------------------------------------------------------

    def http(self, path, cookie=None, headers=None, method="GET"):
        """(status, headers, body) without following redirects."""

        class NoRedirect(urllib.request.HTTPRedirectHandler):
            def redirect_request(self, *a, **k):
                return None

        req = urllib.request.Request(self.base + path, method=method)
        if cookie:
            req.add_header("Cookie", f"mb_session={cookie}")
        for k, v in (headers or {}).items():
            req.add_header(k, v)
        opener = urllib.request.build_opener(NoRedirect)
        try:
            with opener.open(req, timeout=60) as r:
                return r.status, r.headers, r.read()
        except urllib.error.HTTPError as e:
            return e.code, e.headers, e.read()

    def cli(self, *args):
        r = subprocess.run(
            [self.a.bin, "--db", self.a.db, *args],
            capture_output=True,
            timeout=120,
        )
        if r.returncode != 0:
            raise Failed(f"meterbook {' '.join(args)} failed: {r.stderr.decode()[-500:]}")
        return r.stdout

    def page_exists(self, path):
        """Whether the portal serves `path` (the admin gets anything but the
        API's JSON 'no such endpoint')."""
        status, headers, _ = self.http(path, cookie=self.cookie(ADMIN))
        return not (status == 404 and not headers.get("content-type", "").startswith("text/html"))

    def require_page(self, path, what):
        if self.page_exists(path):
            return True
        self.skip(f"page missing: {path} ({what})")
        return False

    # -- browser -----------------------------------------------------------

    def tab(self, email):
        return self.tabs[email]

    def cookie(self, email):
        for c in self.tab(email).cookies(self.base):
            if c["name"] == "mb_session":
                return c["value"]
        raise Failed(f"{email} has no mb_session cookie")

    def path(self, suffix=""):
        return f"/portal/e/{self.n}{suffix}"

    def url(self, suffix=""):
        return self.base + self.path(suffix)

    def shot(self, tab, name, width=1280, mobile=False):
        path = os.path.join(self.shots_dir, f"{name}.png")
        png = tab.screenshot(path, width=width, mobile=mobile)
        w = int.from_bytes(png[16:20], "big")
        self.check(png[:8] == b"\x89PNG\r\n\x1a\n" and w == width, f"screenshot {name}.png ({w} px wide, {len(png)} bytes)")
        self.shots.append(path)

    def sign_in(self, email, password=PASSWORD):
        t = self.tab(email)
        t.goto(f"{self.base}/portal")
        if not t.url().endswith("/portal/sign-in"):
            raise Failed(f"/portal did not send a signed-out browser to sign-in: {t.url()}")
        t.type_into("#email", email)
        t.type_into("#password", password)
        t.click_and_wait("form[action='/portal/sign-in'] button[type=submit]")
        return t.url()

    # -- scenarios ---------------------------------------------------------

    def sign_in_each_role(self):
        first = self.tab(ADMIN)
        first.goto(f"{self.base}/portal/sign-in")
        self.check("Sign in to Meterbook" in first.text(), "the sign-in page shows its form")
        self.shot(first, "sign-in")
        # One wrong password through the form (well under the throttle).
        landed = self.sign_in(AUDITOR, "not the password")
        self.check(
            landed.endswith("/portal/sign-in") and "The e-mail or password is not right." in self.tab(AUDITOR).text(),
            "a wrong password is refused with the generic message",
            landed,
        )
        for email in ROLES:
            landed = self.sign_in(email)
            self.check(landed == self.url(), f"{email} signs in through the form and lands on the overview", landed)
            c = [c for c in self.tab(email).cookies(self.base) if c["name"] == "mb_session"]
            self.check(
                len(c) == 1 and c[0]["httpOnly"] and c[0].get("sameSite") == "Lax" and len(c[0]["value"]) == 64,
                f"{email}'s session cookie is HttpOnly, SameSite=Lax",
                json.dumps(c),
            )
            self.check(
                "mb_session" not in (self.tab(email).eval("document.cookie") or ""),
                f"{email}: scripts cannot read the session cookie",
            )

    def overview(self):
        for email in ROLES:
            t = self.tab(email)
            t.goto(self.url())
            text, html = t.text(), t.html()
            enterprise = email in (ADMIN, AUDITOR)
            self.check(t.eval("document.title").startswith("Overview"), f"{email}: overview loads")
            self.check(
                ("Remaining commitment" in text) == enterprise,
                f"{email}: balance figure {'shown' if enterprise else 'absent'}",
            )
            self.check(
                ("Commitment balance trend" in text) == enterprise,
                f"{email}: balance trend {'shown' if enterprise else 'absent'}",
            )
            self.check(
                all(s not in html for s in ["/download/balance", "/download/prices"]) or enterprise,
                f"{email}: no balance or price list links on the overview",
            )
            # The demo lets department administrators see charges, not account owners.
            sees_costs = email != ERIK
            self.check(
                ("Charges this month" in text) == sees_costs,
                f"{email}: charges {'shown' if sees_costs else 'hidden'}",
            )
            # Enterprise administrators see Manage (read-only for the auditor).
            manages = email in (ADMIN, AUDITOR)
            self.check(
                (f'href="/portal/e/{self.n}/manage"' in html) == manages,
                f"{email}: Manage tab {'offered' if manages else 'not offered'}",
            )
            table = t.eval("Array.from(document.querySelectorAll('table tbody th')).map(e => e.textContent)") or []
            if email == DANA:
                self.check(table == ["Research"], "dana's history has only Research", repr(table))
            if email == ERIK:
                self.check(table == ["Operations"], "erik's history has only his account's department", repr(table))
            if email == ADMIN:
                self.check(len(table) >= 4, "the admin's history has every department", repr(table))
        t = self.tab(ADMIN)
        t.goto(self.url())
        self.shot(t, "overview")
        self.shot(t, "overview-phone", width=390, mobile=True)

    def reports_pages(self):
        if not self.require_page(self.path("/reports"), "Reports"):
            return
        for email in ROLES:
            t = self.tab(email)
            t.goto(self.url("/reports"))
            html = t.html()
            enterprise = email in (ADMIN, AUDITOR)
            self.check(t.eval("document.title").startswith("Reports"), f"{email}: reports page loads")
            for kind in ["balance", "prices"]:
                self.check(
                    (f"/download/{kind}?" in html) == enterprise,
                    f"{email}: {kind} download links {'listed' if enterprise else 'absent'}",
                )
            self.check(f"/download/usage?period={self.period}" in html, f"{email}: usage download of {self.period} listed")
            if not enterprise:
                for kind in ["balance", "prices"]:
                    status, _, _ = self.http(f"/portal/e/{self.n}/download/{kind}?period={self.period}&format=csv", self.cookie(email))
                    self.check(status == 403, f"{email}: the {kind} download is refused (403)", str(status))
        self.tab(ADMIN).goto(self.url("/reports"))
        self.shot(self.tab(ADMIN), "reports")

    def monthly_downloads(self):
        if not self.require_page(self.path("/reports"), "Reports (monthly downloads)"):
            return
        t = self.tab(ADMIN)
        t.goto(self.url("/reports"))
        dl = os.path.join(self.a.work, "downloads")
        t.allow_downloads(dl)
        href = f"/portal/e/{self.n}/download/usage?period={self.period}&format=csv"
        t.b.events = [e for e in t.b.events if not e["method"].startswith("Browser.download")]
        clicked = t.eval(
            f"(() => {{ const a = document.querySelector('a[href=\"{href}\"]'); if (!a) return false; a.click(); return true; }})()"
        )
        if not self.check(clicked, f"the admin clicks the usage CSV of {self.period}"):
            return
        begin = t.b.wait_event(lambda e: e["method"] == "Browser.downloadWillBegin", 30)
        if not self.check(begin is not None, "the browser starts a download (Content-Disposition: attachment)"):
            return
        guid = begin["params"]["guid"]
        done = t.b.wait_event(
            lambda e: e["method"] == "Browser.downloadProgress"
            and e["params"]["guid"] == guid
            and e["params"]["state"] in ("completed", "canceled"),
            120,
        )
        if not self.check(done is not None and done["params"]["state"] == "completed", "the download completes"):
            return
        with open(os.path.join(dl, guid), "rb") as f:
            got = f.read()
        want = self.cli("report", "usage", "--enrollment", self.n, "--period", self.period)
        rows = max(0, got.count(b"\n") - 1)
        self.check(
            got == want,
            f"the browser's usage CSV of {self.period} ({begin['params']['suggestedFilename']}, {rows} rows) equals `meterbook report usage`",
            f"{len(got)} vs {len(want)} bytes",
        )
        self.check(rows > 100, f"the usage CSV has rows ({rows})")
        # The other kinds and JSON, fetched with the page's cookie.
        cookie = self.cookie(ADMIN)
        for kind in ["usage", "balance", "prices", "marketplace"]:
            for fmt in ["csv", "json"]:
                status, headers, body = self.http(f"/portal/e/{self.n}/download/{kind}?period={self.period}&format={fmt}", cookie)
                if not self.check(status == 200, f"admin downloads {kind} {fmt}", str(status)):
                    continue
                want = self.cli("report", kind, "--enrollment", self.n, "--period", self.period, "--format", fmt)
                if fmt == "csv":
                    self.check(body == want, f"{kind} CSV equals `meterbook report {kind}`", f"{len(body)} vs {len(want)} bytes")
                else:
                    g, w = json.loads(body), json.loads(want)
                    same = strip_generated(g) == strip_generated(w)
                    self.check(same, f"{kind} JSON equals `meterbook report {kind} --format json` but for generatedAt", first_difference(g, w))

    def scoped_downloads(self):
        if not self.require_page(self.path("/reports"), "Reports (scoped downloads)"):
            return
        path = f"/portal/e/{self.n}/download/usage?period={self.period}&format=csv"
        # erik: only ops-web, and costs read 0 (account owners do not see charges in the demo).
        status, _, body = self.http(path, self.cookie(ERIK))
        if self.check(status == 200, "erik downloads his usage CSV", str(status)):
            rows = list(csv.DictReader(io.StringIO(body.decode())))
            accounts = sorted({r["AccountName"] for r in rows})
            self.check(rows and accounts == ["ops-web"], f"erik's usage CSV has only ops-web rows ({len(rows)})", repr(accounts))
            want = list(csv.DictReader(io.StringIO(self.cli("report", "usage", "--enrollment", self.n, "--period", self.period, "--account", "ops-web").decode())))
            self.check(len(rows) == len(want), "erik's rows are ops-web's rows of the CLI report", f"{len(rows)} vs {len(want)}")
            nonzero = [r["Cost"] for r in rows if float(r["Cost"] or 0) != 0]
            self.check(not nonzero, "erik's costs read 0", repr(nonzero[:3]))
        status, _, body = self.http(path, self.cookie(DANA))
        if self.check(status == 200, "dana downloads her usage CSV", str(status)):
            rows = list(csv.DictReader(io.StringIO(body.decode())))
            depts = sorted({r["DepartmentName"] for r in rows})
            self.check(rows and depts == ["Research"], f"dana's usage CSV has only Research rows ({len(rows)})", repr(depts))
            want = self.cli("report", "usage", "--enrollment", self.n, "--period", self.period, "--department", "Research")
            self.check(body == want, "dana's usage CSV equals `report usage --department Research` (she sees charges)")

    def advanced_report(self):
        if not self.require_page(self.path("/reports"), "Reports (advanced)"):
            return
        t = self.tab(ADMIN)
        t.goto(self.url("/reports"))
        if not t.eval("!!document.querySelector('form.request')"):
            self.skip("page missing: the advanced report form")
            return
        # A date range (the form also offers a billing period, as billed).
        t.eval("document.querySelector('#kind-range').checked = true")
        # Date inputs take their value as ISO text (typing goes by the locale's fields).
        for sel, v in [("#start", self.p_first), ("#end", self.p_last)]:
            t.eval(f"(() => {{ const e = document.querySelector('{sel}'); e.value = '{v}'; e.dispatchEvent(new Event('change', {{bubbles: true}})); }})()")
        invalid = t.eval("Array.from(document.querySelectorAll('form.request :invalid')).map(e => e.name)")
        self.check(not invalid, "the advanced form is valid", repr(invalid))
        t.eval("document.querySelector('#format').value = 'csv'")
        t.eval("document.querySelectorAll('#departments option, #accounts option').forEach(o => o.selected = false)")
        before = t.eval("document.querySelectorAll('#jobs tbody tr').length") or 0
        t.click_and_wait("form.request button[type=submit]")
        notice = t.eval("(document.querySelector('[role=status]') || {}).textContent || ''")
        self.check("requested" in notice, "the advanced report is requested", notice or t.text()[:300])
        rows = t.eval("document.querySelectorAll('#jobs tbody tr').length") or 0
        self.check(rows == before + 1, f"the job list shows the new job ({rows} jobs)")
        # The list refreshes itself (app.js) until the job is ready.
        link = None
        try:
            link = t.wait_for(
                "(document.querySelector('#jobs a[href$=\"/download\"]') || {}).href",
                timeout=90,
                what="a Download link in the job list",
            )
            self.ok("the job list refreshed itself and shows Download")
        except CDPError as e:
            self.fail(f"the job list did not show Download without a reload: {e}")
            t.reload()
            link = t.eval("(document.querySelector('#jobs a[href$=\"/download\"]') || {}).href")
        if not link:
            self.fail("no Download link for the advanced report")
            return
        status, headers, body = self.http(link[len(self.base):], self.cookie(ADMIN))
        if not self.check(status == 200, "the advanced report downloads", str(status)):
            return
        want = self.cli("report", "usage", "--enrollment", self.n, "--from", self.p_first, "--to", self.p_last)
        got_rows = list(csv.DictReader(io.StringIO(body.decode())))
        want_rows = list(csv.DictReader(io.StringIO(want.decode())))
        self.check(
            len(got_rows) == len(want_rows) and len(got_rows) > 0,
            f"the advanced CSV has the rows of `report usage --from {self.p_first} --to {self.p_last}` ({len(got_rows)})",
            f"{len(got_rows)} vs {len(want_rows)}",
        )
        key = lambda r: r.get("RecordId", "") + r.get("IsCorrection", "")  # noqa: E731
        self.check(
            sorted(got_rows, key=key) == sorted(want_rows, key=key),
            "the advanced CSV's rows equal the CLI's",
            first_difference(sorted(got_rows, key=key)[:1], sorted(want_rows, key=key)[:1]),
        )

    def api_keys(self):
        if not self.require_page(self.path("/keys"), "API keys"):
            return
        t = self.tab(ADMIN)
        t.goto(self.url("/keys"))
        self.shot(t, "keys")
        if not self.check(t.eval("!!document.querySelector('form.keyform button[type=submit]')"), "the admin is offered key generation"):
            return
        t.click_and_wait("form.keyform button[type=submit]")
        key = (t.eval("(document.querySelector('#new-key') || {}).textContent || ''") or "").strip()
        if not self.check(KEY_RE.match(key) is not None, "a new key is shown once on the page", key[:24]):
            return
        status, _, body = self.http(f"/v3/enrollments/{self.n}/billingPeriods", headers={"Authorization": f"bearer {key}"})
        self.check(status == 200 and isinstance(json.loads(body), list), "the new key reads /v3/enrollments/8608480/billingPeriods (200)", str(status))
        status, _, _ = self.http(f"/v3/enrollments/{self.n}/billingPeriods", headers={"Authorization": f"bearer {key}x"})
        self.check(status == 401, "a mangled key is refused (401)", str(status))
        # Post/redirect/get: a reload neither shows the key again nor replaces it.
        t.reload()
        self.check(not t.eval("!!document.querySelector('#new-key')"), "a reload does not show the key again")
        status, _, _ = self.http(f"/v3/enrollments/{self.n}/billingPeriods", headers={"Authorization": f"bearer {key}"})
        self.check(status == 200, "the key still works after a reload (200)", str(status))
        # The auditor (read-only) sees keys but no generate form.
        a = self.tab(AUDITOR)
        a.goto(self.url("/keys"))
        status, _, _ = self.http(f"/portal/e/{self.n}/keys", self.cookie(AUDITOR))
        if status == 200:
            self.check(not a.eval("!!document.querySelector('form.keyform')"), "the read-only auditor gets no generate form")
        else:
            self.check(status == 403, "the read-only auditor's keys page is refused", str(status))
        # erik's key carries his scope: no balance.
        e = self.tab(ERIK)
        e.goto(self.url("/keys"))
        html = e.html()
        self.check("ops-web" in html and "Research" not in html, "erik's keys page lists only his account's scope")
        if e.eval("!!document.querySelector('form.keyform button[type=submit]')"):
            e.click_and_wait("form.keyform button[type=submit]")
            ekey = (e.eval("(document.querySelector('#new-key') || {}).textContent || ''") or "").strip()
            if self.check(KEY_RE.match(ekey) is not None, "erik generates a key for ops-web"):
                hdr = {"Authorization": f"bearer {ekey}"}
                status, _, _ = self.http(f"/v3/enrollments/{self.n}/billingPeriods", headers=hdr)
                self.check(status == 200, "erik's key reads billingPeriods (200)", str(status))
                status, _, _ = self.http(f"/v3/enrollments/{self.n}/billingPeriods/{self.period}/balancesummary", headers=hdr)
                self.check(status == 403, "erik's key gets no balance (403)", str(status))
        else:
            self.fail("erik is offered no key generation")

    def usage_page(self):
        if not self.require_page(self.path("/usage"), "Usage"):
            return
        for email in ROLES:
            t = self.tab(email)
            t.goto(self.url("/usage"))
            self.check(t.eval("document.title").startswith("Usage"), f"{email}: usage page loads")
            text = t.text()
            if email == ERIK:
                others = [a for a in ["lab-analytics", "lab-genomics", "ops-data", "mk-campaigns", "fin-apps", "shared-it"] if a in text]
                self.check(not others, "erik's usage page names no other account", repr(others))
            if email == DANA:
                others = [d for d in ["Operations", "Marketing", "Finance", "ops-web"] if d in text]
                self.check(not others, "dana's usage page names no other department", repr(others))
        self.tab(ADMIN).goto(self.url("/usage"))
        self.shot(self.tab(ADMIN), "usage")

    def layout(self):
        """Pages fit the window at phone and desktop widths: nothing scrolls the
        page sideways, the job list's Download link is on screen at 1400 px,
        and chart text is at least 11 px high."""
        t = self.tab(ADMIN)
        fits = "(() => { const d = document.documentElement; return [d.scrollWidth, d.clientWidth]; })()"
        for width in [420, 1400]:
            t.viewport(width, 900)
            for path in ["", "/usage", "/usage?by=service", "/reports", "/keys"]:
                t.goto(self.url(path))
                sw, cw = t.eval(fits) or [0, 0]
                self.check(0 < sw <= cw, f"{path or '/'} fits {width} px (scrollWidth {sw} <= clientWidth {cw})")
                small = t.eval("Array.from(document.querySelectorAll('svg.chart text')).map(e => e.getBoundingClientRect()).filter(r => r.width > 0 && Math.min(r.width, r.height) < 11).length")
                self.check(not small, f"{path or '/'} at {width} px: chart text readable", f"{small} labels under 11 px")
            if width == 1400:
                t.goto(self.url("/reports"))
                off = t.eval("(() => { const a = document.querySelector('#jobs a[href$=\"/download\"]'); if (!a) return null; const r = a.getBoundingClientRect(); const box = a.closest('.scroll'); return [Math.round(r.right), document.documentElement.clientWidth, box.scrollWidth <= box.clientWidth]; })()")
                if off is None:
                    self.skip("no Download link in the job list to place")
                else:
                    self.check(off[0] <= off[1] and off[2], "the job list fits at 1400 px with Download on screen", repr(off))
        t.viewport(1280, 900)

    def month_figures(self, email):
        """This month's figures as `email`'s pages show them: the overview's
        tile, the last bar of its history chart and its table's last column,
        and the Usage page's (default: this month) chart bar, table rows and
        Total row, with its download link. Charges where the role sees them,
        usage records where it does not."""
        t = self.tab(email)
        t.goto(self.url())
        tiles = dict(t.eval("Array.from(document.querySelectorAll('section.figures > .figure')).map(f => [f.querySelector('h2').textContent.trim(), f.querySelector('.value').textContent.trim()])") or [])
        bars = "(() => { const svg = Array.from(document.querySelectorAll('svg.chart')).find(s => /^(Charges|Usage records) by/.test(s.getAttribute('aria-label') || '')); if (!svg) return []; const out = []; let total = null; for (const e of svg.querySelectorAll(':scope > text')) { if (e.getAttribute('fill') === '#333') { total = e.textContent; } else { out.push([e.textContent, total]); total = null; } } return out; })()"
        overview_bars = t.eval(bars) or []
        history = t.eval("Array.from(document.querySelectorAll('details table tbody tr')).map(r => { const c = r.querySelectorAll('td'); return c.length ? c[c.length - 1].textContent.trim() : null; })") or []
        t.goto(self.url("/usage"))
        usage_bars = t.eval(bars) or []
        usage = t.eval("(() => { const f = document.querySelector('table.usage tfoot tr.total'); if (!f) return null; const cells = Array.from(f.querySelectorAll('td.num')).map(c => c.textContent.trim()); const rows = Array.from(document.querySelectorAll('table.usage tbody tr')).map(r => Array.from(r.querySelectorAll('td.num')).map(c => c.textContent.trim())); const a = document.querySelector('a.download[href*=\"/download/usage?\"]'); return {rows: f.dataset.rows, cost: f.dataset.cost || null, cells: cells, parts: rows, download: a ? a.getAttribute('href') : null}; })()")
        return tiles, overview_bars, history, usage_bars, usage

    def figures_agree(self):
        """For every role, this month's figure reads the same on every page and
        in the month's usage download. The enterprise's is the statement's
        (each kind of charge rounded on its own); a department's or account's
        is its download's exact cost rounded once. A role that does not see
        charges reads this month's usage records the same way instead."""
        if not self.require_page(self.path("/usage"), "Usage"):
            return
        for email in ROLES:
            tiles, overview_bars, history, usage_bars, usage = self.month_figures(email)
            if not self.check(usage is not None and usage["download"], f"{email}: the Usage page has a Total row and a download", repr(usage)):
                continue
            period = re.search(r"period=(\d{6})", usage["download"]).group(1)
            status, _, body = self.http(usage["download"].replace("&amp;", "&"), self.cookie(email))
            if not self.check(status == 200, f"{email}: downloads this month's usage ({period})", str(status)):
                continue
            rows = list(csv.DictReader(io.StringIO(body.decode())))
            self.check(
                str(len(rows)) == usage["rows"],
                f"{email}: the download has the Usage page's {usage['rows']} records",
                f"{len(rows)} rows",
            )
            sees_costs = "Charges this month" in tiles
            self.check(sees_costs == (email != ERIK), f"{email}: charges {'shown' if sees_costs else 'hidden'} (the demo's setting)")
            if not sees_costs:
                # Usage records: the tile, the chart, the history, the Usage page, the download.
                shown = {
                    "overview tile": tiles.get("Usage records this month"),
                    "overview chart's last bar": (overview_bars or [[None, None]])[-1][1],
                    "overview history's last column": f"{sum(int(v.replace(',', '')) for v in history if v):,}",
                    "Usage page chart": (usage_bars or [[None, None]])[-1][1],
                    "Usage page Total": usage["cells"][0] if usage["cells"] else None,
                    "usage download": f"{len(rows):,}",
                }
                self.check(len(set(shown.values())) == 1 and None not in shown.values(), f"{email}: this month's usage records read the same everywhere ({shown['overview tile']})", repr(shown))
                nonzero = [r["Cost"] for r in rows if Decimal(r["Cost"] or 0) != 0]
                self.check(not nonzero, f"{email}: the download's costs read 0", repr(nonzero[:3]))
                self.check(usage["cost"] is None, f"{email}: the page carries no exact cost", repr(usage["cost"]))
                continue
            figure = tiles["Charges this month"]
            exp = len(figure.split()[0].partition(".")[2])
            unit = Decimal(1).scaleb(-exp)
            money = lambda v: Decimal(v.split()[0].replace(",", ""))  # noqa: E731
            text = lambda d: f"{d:,.{exp}f}"  # noqa: E731
            exact = sum((Decimal(r["Cost"]) for r in rows), Decimal(0))
            self.check(usage["cost"] is not None and Decimal(usage["cost"]) == exact, f"{email}: the download's cost column adds up to the page's exact cost", f"{exact} vs {usage['cost']}")
            if email in (ADMIN, AUDITOR):
                st = json.loads(self.cli("report", "balance", "--enrollment", self.n, "--period", period, "--format", "json"), parse_float=Decimal)["data"][0]
                statement = st["totalUsage"] + st["azureMarketplaceServiceCharges"]
                # The statement's rule over the download: each kind rounded on its own.
                mp = list(csv.DictReader(io.StringIO(self.cli("report", "marketplace", "--enrollment", self.n, "--period", period).decode())))
                mp_keys = {(r["Date"], r["RecordId"]) for r in mp}
                kinds = {"marketplace": Decimal(0), "separately": Decimal(0), "commitment": Decimal(0)}
                for r in rows:
                    k = "marketplace" if (r["Date"], r["RecordId"]) in mp_keys else "separately" if r["ChargesBilledSeparately"] == "true" else "commitment"
                    kinds[k] += Decimal(r["Cost"])
                rounded = {k: v.quantize(unit, rounding=ROUND_HALF_EVEN) for k, v in kinds.items()}
                self.check(
                    rounded["marketplace"] == st["azureMarketplaceServiceCharges"]
                    and rounded["commitment"] + rounded["separately"] == st["totalUsage"],
                    f"{email}: the download, each kind rounded, is the statement's charges",
                    f"{rounded} vs {st['totalUsage']} + {st['azureMarketplaceServiceCharges']}",
                )
                from_download = sum(rounded.values(), Decimal(0))
            else:
                statement = None
                from_download = exact.quantize(unit, rounding=ROUND_HALF_EVEN)
            parts = lambda cells: sum((money(c) for c in cells if c), Decimal(0))  # noqa: E731
            shown = {
                "overview tile": money(figure),
                "overview chart's last bar": money((overview_bars or [[None, "0"]])[-1][1] or "0"),
                "overview history's last column": parts(history),
                "Usage page chart": money((usage_bars or [[None, "0"]])[-1][1] or "0"),
                "Usage page Total": money(usage["cells"][-1]),
                "Usage page rows": parts([r[-1] for r in usage["parts"] if r]),
                "usage download": from_download,
            }
            if statement is not None:
                shown["statement"] = statement
            self.check(
                len(set(shown.values())) == 1,
                f"{email}: this month's charges read {text(shown['overview tile'])} everywhere ({', '.join(shown)})",
                repr({k: str(v) for k, v in shown.items()}),
            )

    def manage_page(self):
        if not self.require_page(self.path("/manage"), "Manage"):
            return
        for email in [DANA, ERIK]:
            status, _, _ = self.http(f"/portal/e/{self.n}/manage", self.cookie(email))
            self.check(status == 403, f"{email}: manage is refused (403)", str(status))
        # The read-only auditor sees Manage without a form that changes anything.
        a = self.tab(AUDITOR)
        a.goto(self.url("/manage"))
        self.check(a.eval("document.title").startswith("Manage"), "auditor: manage page loads read-only", a.eval("document.title"))
        self.check(not a.eval("!!document.querySelector('main form')"), "auditor: no manage forms")
        t = self.tab(ADMIN)
        t.goto(self.url("/manage"))
        self.check(t.eval("document.title").startswith("Manage"), "admin: manage page loads", t.eval("document.title"))
        self.shot(t, "manage")

    def finance(self):
        """The demo's finance story in the browser: the forecast card and the
        budgets each role may see, cost analysis with its CSV, and (admin)
        the budgets' delivery log and the export that has run."""
        if not self.require_page(self.path("/analysis"), "Cost analysis"):
            return
        for email in ROLES:
            t = self.tab(email)
            t.goto(self.url())
            text = t.text()
            sees_costs = email != ERIK
            forecast = t.eval("!!document.querySelector('section.forecast')")
            self.check(forecast == sees_costs, f"{email}: forecast card {'shown' if sees_costs else 'absent'}")
            # The demo's budgets are the whole enrollment's: enterprise administrators only.
            enterprise = email in (ADMIN, AUDITOR)
            budgets = "Northwind cloud spend, whole term" in text and "Northwind monthly" in text
            self.check(budgets == enterprise, f"{email}: the enrollment's budgets {'listed' if enterprise else 'not listed'}")
            # The last full month (this month may have no usage yet on its first day).
            t.goto(self.url(f"/analysis?groupBy=subscription&granularity=daily&startDate={self.p_first}&endDate={self.p_last}"))
            self.check(t.eval("document.title").startswith("Cost analysis"), f"{email}: cost analysis loads", t.eval("document.title"))
            self.check(t.eval("!!document.querySelector('main svg')"), f"{email}: cost analysis draws its chart")
            link = t.eval("(document.querySelector('a[download]') || {}).getAttribute ? document.querySelector('a[download]').getAttribute('href') : null")
            self.check(bool(link), f"{email}: a Download CSV link", repr(link))
            if link:
                status, headers, body = self.http(link, self.cookie(email))
                body = body.decode("utf-8", "replace")
                self.check(status == 200 and body.splitlines() and "," in body.splitlines()[0], f"{email}: the chart's CSV downloads ({len(body.splitlines())} lines)", f"{status} {body[:200]!r}")
        t = self.tab(ADMIN)
        t.goto(self.url("/manage/budgets"))
        text = t.text()
        self.check("finance@northwind.example" in text and "pending" in text, "admin: the delivery log lists the demo's alerts")
        t.goto(self.url("/manage/exports"))
        text = t.text()
        self.check("Daily usage" in text and "succeeded" in text, "admin: the demo's daily export has run")

    def isolation(self):
        for email in ROLES:
            for path in ["/portal/e/1234567", "/portal/e/1234567/reports", f"/portal/e/1234567/download/usage?period={self.period}"]:
                status, _, _ = self.http(path, self.cookie(email))
                self.check(status == 404, f"{email}: {path} is 404", str(status))

    def sign_out(self):
        t = self.tab(DANA)
        t.goto(self.url())
        old = self.cookie(DANA)
        t.click_and_wait("form[action='/portal/sign-out'] button[type=submit]")
        self.check(t.url().endswith("/portal/sign-in"), "dana signs out with the layout's button", t.url())
        status, headers, _ = self.http(f"/portal/e/{self.n}", old)
        self.check(status == 303 and headers.get("location") == "/portal/sign-in", "dana's old cookie no longer works", str(status))
        self.check(not [c for c in t.cookies(self.base) if c["name"] == "mb_session"], "the browser dropped the cookie")

    def console(self):
        t = self.tab(ADMIN)
        t.goto(self.url())
        # The detector must see a violation: an image from another origin
        # (loopback, never fetched: the policy blocks it first).
        t.eval("(() => { const i = document.createElement('img'); i.src = 'http://127.0.0.2:9/e2e-csp-probe.png'; document.body.appendChild(i); })()")
        t.b.pump(1.0)
        probe = [e for e in t.b.events if e["method"] == "Log.entryAdded" and "e2e-csp-probe" in json.dumps(e)]
        self.check(probe and "Content Security Policy" in json.dumps(probe[0]), "the Content-Security-Policy blocks another origin (and the check sees it)", json.dumps(probe[:1])[:300])
        problems = []
        for e in self.tabs[ADMIN].b.events:
            if "e2e-csp-probe" in json.dumps(e):
                continue
            if e["method"] == "Runtime.exceptionThrown":
                problems.append(e["params"]["exceptionDetails"].get("exception", {}).get("description", "exception"))
            elif e["method"] == "Log.entryAdded":
                entry = e["params"]["entry"]
                if entry["level"] == "error" and "favicon" not in entry.get("url", ""):
                    # 403/404 answers to our own probes are expected; CSP and script errors are not.
                    if entry.get("source") in ("security", "javascript") or "Content Security Policy" in entry.get("text", ""):
                        problems.append(entry.get("text", ""))
        self.check(not problems, "no script errors or Content-Security-Policy violations in the browser", "; ".join(problems[:5]))

    # -- main ----------------------------------------------------------------

    def main(self):
        started = time.time()
        browser = Browser(self.a.chromium, os.path.join(self.a.work, "chromium"), os.path.join(self.a.work, "chromium.log"))
        try:
            for email in ROLES:
                self.tabs[email] = browser.new_tab()
            self.scenario("sign in through the form, each role", self.sign_in_each_role)
            self.scenario("overview figures per role", self.overview)
            self.scenario("usage page per role", self.usage_page)
            self.scenario("this month's figures agree on every page, each role", self.figures_agree)
            self.scenario("reports page per role", self.reports_pages)
            self.scenario("monthly downloads equal the CLI's reports", self.monthly_downloads)
            self.scenario("scoped downloads (dana, erik)", self.scoped_downloads)
            self.scenario("advanced report: request, wait, download", self.advanced_report)
            self.scenario("API keys: generate on the page, use on the API", self.api_keys)
            self.scenario("layout at 420 and 1400 px", self.layout)
            self.scenario("manage page", self.manage_page)
            self.scenario("forecast, budgets, cost analysis, exports", self.finance)
            self.scenario("no other enrollment", self.isolation)
            self.scenario("sign out", self.sign_out)
            self.scenario("browser console", self.console)
        finally:
            browser.close()
        if self.a.screenshots:
            os.makedirs(self.a.screenshots, exist_ok=True)
            for p in self.shots:
                shutil.copy(p, os.path.join(self.a.screenshots, os.path.basename(p)))
            print(f"screenshots written to {self.a.screenshots}: {', '.join(os.path.basename(p) for p in self.shots)}")
        else:
            print(f"screenshots taken ({len(self.shots)}), not saved (E2E_SCREENSHOTS=1 writes docs/screenshots)")
        print(f"e2e: {time.time() - started:.0f} s in the browser")
        for f in self.failures:
            print(f"  failed: {f}")
        print(f"e2e: {self.passed} passed, {self.failed} failed, {self.skipped} skipped")
        return 1 if self.failed else 0


def strip_generated(v):
    """A JSON value without any `generatedAt` member."""
    if isinstance(v, dict):
        return {k: strip_generated(x) for k, x in v.items() if k != "generatedAt"}
    if isinstance(v, list):
        return [strip_generated(x) for x in v]
    return v


def first_difference(a, b, path="$"):
    a, b = strip_generated(a), strip_generated(b)
    if type(a) is not type(b):
        return f"{path}: {str(a)[:80]} vs {str(b)[:80]}"
    if isinstance(a, dict):
        for k in sorted(set(a) | set(b)):
            if k not in a or k not in b:
                return f"{path}.{k}: only on one side"
            d = first_difference(a[k], b[k], f"{path}.{k}")
            if d:
                return d
        return ""
    if isinstance(a, list):
        if len(a) != len(b):
            return f"{path}: {len(a)} vs {len(b)} items"
        for i, (x, y) in enumerate(zip(a, b)):
            d = first_difference(x, y, f"{path}[{i}]")
            if d:
                return d
        return ""
    return "" if a == b else f"{path}: {str(a)[:80]} vs {str(b)[:80]}"


if __name__ == "__main__":
    p = argparse.ArgumentParser()
    p.add_argument("--base", required=True)
    p.add_argument("--bin", required=True)
    p.add_argument("--db", required=True)
    p.add_argument("--enrollment", required=True)
    p.add_argument("--chromium", required=True)
    p.add_argument("--work", required=True)
    p.add_argument("--screenshots", default="")
    sys.exit(Run(p.parse_args()).main())
