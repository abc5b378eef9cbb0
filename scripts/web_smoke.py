#!/usr/bin/env python3
"""Loads the page (scripts/web.sh smoke) in headless Chromium through chromedriver's
WebDriver protocol (the standard library only), lets it train both panels, and checks the
page's own status element and the browser console. Optionally saves a screenshot.

Exits 0 when the page says it trained and the console holds no error, 1 otherwise."""

import argparse
import base64
import json
import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.request


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class WebDriver:
    def __init__(self, base):
        self.base = base
        self.session = None

    def call(self, method, path, body=None, timeout=60):
        data = None if body is None else json.dumps(body).encode()
        request = urllib.request.Request(self.base + path, data=data, method=method,
                                         headers={"Content-Type": "application/json"})
        with urllib.request.urlopen(request, timeout=timeout) as response:
            return json.loads(response.read() or b"{}").get("value")

    def start(self, capabilities):
        value = self.call("POST", "/session", {"capabilities": {"alwaysMatch": capabilities}})
        self.session = value["sessionId"]

    def do(self, method, path, body=None, timeout=60):
        return self.call(method, f"/session/{self.session}{path}", body, timeout)

    def script(self, source):
        return self.do("POST", "/execute/sync", {"script": source, "args": []})


def main():
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--url", required=True)
    parser.add_argument("--capabilities", required=True, help="webdriver.json (Chromium's flags)")
    parser.add_argument("--steps", type=int, default=6, help="steps per panel")
    parser.add_argument("--every", type=int, default=3, help="draw every N steps")
    parser.add_argument("--batch", type=int, default=64, help="images per step")
    parser.add_argument("--test", type=int, default=1000, help="test images drawn")
    parser.add_argument("--source", default="mnist", choices=["mnist", "faces"])
    parser.add_argument("--screenshot", help="PNG to write after training")
    parser.add_argument("--timeout", type=float, default=900, help="seconds to wait for the training")
    args = parser.parse_args()

    with open(args.capabilities) as f:
        capabilities = json.load(f)
    capabilities["goog:loggingPrefs"] = {"browser": "ALL"}
    driver_path = os.environ.get("CHROMEDRIVER") or shutil.which("chromedriver")
    if not driver_path:
        sys.exit("web_smoke: no chromedriver (apt-get install chromium chromium-driver)")
    port = free_port()
    driver = subprocess.Popen([driver_path, f"--port={port}"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        web = WebDriver(f"http://127.0.0.1:{port}")
        for _ in range(100):
            try:
                web.call("GET", "/status", timeout=2)
                break
            except OSError:
                time.sleep(0.1)
        web.start(capabilities)
        web.do("POST", "/window/rect", {"width": 1180, "height": 1020})
        started = time.time()
        query = (f"?auto&steps={args.steps}&every={args.every}&batch={args.batch}&test={args.test}"
                 f"&source={args.source}")
        web.do("POST", "/url", {"url": args.url + query}, timeout=120)
        state = None
        while time.time() - started < args.timeout:
            state = web.script("return document.body.dataset.state")
            if state in ("trained", "error", "no-webgpu"):
                break
            time.sleep(1)
        elapsed = time.time() - started
        status = web.script("return document.querySelector('#status').textContent")
        stats = web.script("return [...document.querySelectorAll('.stats')].map(p => p.textContent)")
        adapter = web.script("return document.querySelector('#adapter').textContent")
        # Whether each canvas has anything drawn on it.
        drawn = web.script("return [...document.querySelectorAll('canvas')].map(c => "
                           "c.getContext('2d').getImageData(0, 0, c.width, c.height).data.some(v => v !== 0))")
        if args.screenshot:
            png = base64.b64decode(web.do("GET", "/screenshot"))
            os.makedirs(os.path.dirname(os.path.abspath(args.screenshot)), exist_ok=True)
            with open(args.screenshot, "wb") as f:
                f.write(png)
        log = web.do("POST", "/se/log", {"type": "browser"}) or []
        web.do("DELETE", "")
    finally:
        driver.terminate()
        driver.wait()

    errors = [entry["message"] for entry in log if entry.get("level") == "SEVERE"]
    print(f"web_smoke: state {state!r} after {elapsed:.1f} s: {status}")
    print(f"web_smoke: {adapter}")
    for line in stats:
        print(f"web_smoke: {line}")
    for message in errors:
        print(f"web_smoke: console error: {message}")
    if args.screenshot:
        print(f"web_smoke: screenshot {args.screenshot}")
    ok = state == "trained" and not errors and all(drawn)
    if not all(drawn):
        print(f"web_smoke: a plot was not drawn ({drawn})")
    sys.exit(0 if ok else 1)


if __name__ == "__main__":
    main()
