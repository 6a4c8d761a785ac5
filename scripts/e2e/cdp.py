"""A small client of the Chrome DevTools Protocol over one WebSocket.

Starts Chromium headless with --remote-debugging-port=0, reads the port from
DevToolsActivePort, and talks to the browser endpoint with flattened target
sessions: each `Tab` lives in its own browser context (its own cookie jar), so
several people can be signed in at once.
"""

import base64
import json
import os
import subprocess
import time

import websocket


class CDPError(Exception):
    pass


class Browser:
    def __init__(self, chromium, profile_dir, log_path):
        self.profile_dir = profile_dir
        os.makedirs(profile_dir, exist_ok=True)
        port_file = os.path.join(profile_dir, "DevToolsActivePort")
        if os.path.exists(port_file):
            os.remove(port_file)
        args = [
            chromium,
            "--headless=new",
            "--remote-debugging-port=0",
            f"--user-data-dir={profile_dir}",
            "--no-first-run",
            "--no-default-browser-check",
            "--disable-gpu",
            "--disable-extensions",
            "--disable-background-networking",
            "--disable-sync",
            "--disable-dev-shm-usage",
            "--hide-scrollbars",
            "--window-size=1280,900",
            "about:blank",
        ]
        if os.geteuid() == 0:
            # Chromium's sandbox refuses to run as root.
            args.insert(1, "--no-sandbox")
        self.log = open(log_path, "wb")
        self.proc = subprocess.Popen(args, stdout=self.log, stderr=subprocess.STDOUT)
        # For the shell's clean-up, should this process be killed.
        self.pid_file = os.path.join(os.path.dirname(log_path), "chromium.pid")
        with open(self.pid_file, "w") as f:
            f.write(str(self.proc.pid))
        deadline = time.time() + 30
        lines = []
        while time.time() < deadline:
            if self.proc.poll() is not None:
                raise CDPError(f"chromium exited with {self.proc.returncode}; see {log_path}")
            try:
                with open(port_file) as f:
                    lines = f.read().split("\n")
                if len(lines) >= 2 and lines[1]:
                    break
            except FileNotFoundError:
                pass
            time.sleep(0.1)
        else:
            raise CDPError("chromium did not write DevToolsActivePort within 30 s")
        port, path = lines[0].strip(), lines[1].strip()
        self.ws = websocket.create_connection(
            f"ws://127.0.0.1:{port}{path}", timeout=60, suppress_origin=True
        )
        self.next_id = 0
        self.events = []

    def close(self):
        try:
            self.send("Browser.close", timeout=5)
        except Exception:
            pass
        try:
            self.ws.close()
        except Exception:
            pass
        try:
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        os.remove(self.pid_file)
        self.log.close()

    def _recv(self, timeout):
        self.ws.settimeout(max(timeout, 0.01))
        try:
            return json.loads(self.ws.recv())
        except websocket.WebSocketTimeoutException:
            return None

    def send(self, method, params=None, session=None, timeout=60):
        self.next_id += 1
        mid = self.next_id
        msg = {"id": mid, "method": method, "params": params or {}}
        if session:
            msg["sessionId"] = session
        self.ws.send(json.dumps(msg))
        deadline = time.time() + timeout
        while time.time() < deadline:
            m = self._recv(deadline - time.time())
            if m is None:
                continue
            if m.get("id") == mid:
                if "error" in m:
                    raise CDPError(f"{method}: {m['error'].get('message')} {m['error'].get('data', '')}")
                return m.get("result", {})
            if "method" in m:
                self.events.append(m)
        raise CDPError(f"{method}: no answer within {timeout} s")

    def pump(self, seconds):
        """Reads events for up to `seconds`."""
        deadline = time.time() + seconds
        while time.time() < deadline:
            m = self._recv(deadline - time.time())
            if m is not None and "method" in m:
                self.events.append(m)

    def wait_event(self, pred, timeout):
        deadline = time.time() + timeout
        while True:
            for i, e in enumerate(self.events):
                if pred(e):
                    return self.events.pop(i)
            if time.time() >= deadline:
                return None
            self.pump(min(0.25, deadline - time.time()))

    def new_tab(self, width=1280, height=900):
        ctx = self.send("Target.createBrowserContext", {"disposeOnDetach": False})["browserContextId"]
        target = self.send("Target.createTarget", {"url": "about:blank", "browserContextId": ctx})["targetId"]
        session = self.send("Target.attachToTarget", {"targetId": target, "flatten": True})["sessionId"]
        tab = Tab(self, ctx, target, session)
        tab.send("Page.enable")
        tab.send("Runtime.enable")
        tab.send("Log.enable")
        tab.send("Network.enable")
        tab.viewport(width, height)
        return tab


class Tab:
    def __init__(self, browser, ctx, target, session):
        self.b, self.ctx, self.target, self.session = browser, ctx, target, session

    def send(self, method, params=None, timeout=60):
        return self.b.send(method, params, session=self.session, timeout=timeout)

    def close(self):
        try:
            self.b.send("Target.closeTarget", {"targetId": self.target})
            self.b.send("Target.disposeBrowserContext", {"browserContextId": self.ctx})
        except CDPError:
            pass

    def viewport(self, width, height, mobile=False, scale=1):
        self.send(
            "Emulation.setDeviceMetricsOverride",
            {"width": width, "height": height, "deviceScaleFactor": scale, "mobile": mobile},
        )

    def eval(self, expression, timeout=30):
        """The value of a JavaScript expression (promises awaited)."""
        r = self.send(
            "Runtime.evaluate",
            {"expression": expression, "returnByValue": True, "awaitPromise": True},
            timeout=timeout,
        )
        if "exceptionDetails" in r:
            d = r["exceptionDetails"]
            raise CDPError(f"JS error in {expression[:80]!r}: {d.get('exception', {}).get('description', d.get('text'))}")
        return r.get("result", {}).get("value")

    def wait_for(self, expression, timeout=30, what=None):
        """Polls an expression until it is truthy (across navigations)."""
        deadline = time.time() + timeout
        last = None
        while time.time() < deadline:
            try:
                v = self.eval(expression, timeout=10)
                if v:
                    return v
            except CDPError as e:
                # The page is navigating: its context went away.
                last = e
            self.b.pump(0.1)
        raise CDPError(f"timed out waiting for {what or expression} ({last})")

    def _mark(self):
        self.eval("window.__e2e_old = true")

    def _settled(self, timeout):
        self.wait_for(
            "!window.__e2e_old && document.readyState === 'complete'",
            timeout=timeout,
            what="the next page to load",
        )

    def goto(self, url, timeout=30):
        self._mark()
        r = self.send("Page.navigate", {"url": url})
        if r.get("errorText"):
            raise CDPError(f"navigating to {url}: {r['errorText']}")
        self._settled(timeout)

    def reload(self, timeout=30):
        self._mark()
        self.send("Page.reload")
        self._settled(timeout)

    def click_and_wait(self, selector, timeout=30):
        """Clicks an element that submits a form or follows a link, and waits
        for the new page."""
        self._mark()
        found = self.eval(
            f"(() => {{ const e = document.querySelector({json.dumps(selector)}); if (!e) return false; e.click(); return true; }})()"
        )
        if not found:
            raise CDPError(f"no element {selector}")
        self._settled(timeout)

    def type_into(self, selector, text):
        """Focuses a field, clears it, and types as a keyboard would."""
        ok = self.eval(
            f"(() => {{ const e = document.querySelector({json.dumps(selector)}); if (!e) return false; e.focus(); e.select && e.select(); e.value = ''; return true; }})()"
        )
        if not ok:
            raise CDPError(f"no field {selector}")
        self.send("Input.insertText", {"text": text})

    def url(self):
        return self.eval("location.href")

    def html(self):
        return self.eval("document.documentElement.outerHTML")

    def text(self):
        return self.eval("document.body.innerText")

    def cookies(self, url):
        return self.send("Network.getCookies", {"urls": [url]})["cookies"]

    def allow_downloads(self, path):
        os.makedirs(path, exist_ok=True)
        self.b.send(
            "Browser.setDownloadBehavior",
            {"behavior": "allowAndName", "downloadPath": path, "browserContextId": self.ctx, "eventsEnabled": True},
        )

    def screenshot(self, path, width=1280, mobile=False, max_height=4000):
        """A full-page PNG at `width` CSS pixels."""
        self.viewport(width, 900, mobile=mobile)
        self.b.pump(0.2)
        height = self.eval("Math.ceil(document.documentElement.scrollHeight)") or 900
        height = max(300, min(int(height), max_height))
        self.viewport(width, height, mobile=mobile)
        self.b.pump(0.3)
        data = self.send("Page.captureScreenshot", {"format": "png", "captureBeyondViewport": False})["data"]
        png = base64.b64decode(data)
        with open(path, "wb") as f:
            f.write(png)
        self.viewport(1280, 900)
        return png
