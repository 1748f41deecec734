"""Loads a Chrome trace into the Performance panel of the DevTools bundled with Chromium.

Usage: devtools_load.py CHROMIUM TRACE.json PROFILE_DIR [SCREENSHOT.png]

Chromium runs headless with a fresh profile, no network but loopback, and serves its own
DevTools frontend on a loopback port. The script opens the Performance panel there, hands it the
trace as a file (as "Load profile" does), expands every track, optionally takes a screenshot, and
prints one JSON object: whether the trace loaded, the error if any, the names of the tracks
(groups) the flame chart shows and the title of every entry drawn in them.

Control goes over --remote-debugging-pipe (file descriptors 3 and 4), so no websocket library
is needed.
"""
import base64
import json
import os
import subprocess
import sys
import time

chromium, trace_path, profile = sys.argv[1], sys.argv[2], sys.argv[3]
screenshot = sys.argv[4] if len(sys.argv) > 4 else None
trace_text = open(trace_path, encoding="utf-8").read()

to_chrome_r, to_chrome_w = os.pipe()
from_chrome_r, from_chrome_w = os.pipe()


def child_fds():
    os.dup2(to_chrome_r, 10)
    os.dup2(from_chrome_w, 11)
    os.dup2(10, 3)
    os.dup2(11, 4)


browser = subprocess.Popen(
    [chromium, "--headless", "--no-sandbox", "--disable-gpu",
     "--disable-background-networking", "--disable-component-update", "--disable-sync",
     "--no-first-run", "--no-default-browser-check", "--user-data-dir=" + profile,
     "--window-size=1600,1000", "--remote-debugging-pipe", "--remote-debugging-port=0",
     "about:blank"],
    preexec_fn=child_fds, close_fds=False,
    stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
os.close(to_chrome_r)
os.close(from_chrome_w)
pending = b""
next_id = 0


def call(method, params=None, session=None):
    global next_id, pending
    next_id += 1
    message = {"id": next_id, "method": method, "params": params or {}}
    if session:
        message["sessionId"] = session
    os.write(to_chrome_w, json.dumps(message).encode() + b"\0")
    while True:
        while b"\0" in pending:
            raw, pending = pending.split(b"\0", 1)
            reply = json.loads(raw)
            if reply.get("id") == next_id:
                if "error" in reply:
                    raise RuntimeError(f"{method}: {reply['error']}")
                return reply["result"]
        chunk = os.read(from_chrome_r, 1 << 20)
        if not chunk:
            raise RuntimeError("chromium closed the debugging pipe")
        pending += chunk


def evaluate(session, expression, await_promise=False):
    result = call("Runtime.evaluate", {"expression": expression, "awaitPromise": await_promise,
                                       "returnByValue": True}, session)
    if "exceptionDetails" in result:
        raise RuntimeError(result["exceptionDetails"].get("exception", {}).get("description"))
    return result["result"].get("value")


def wait_for(session, expression, what, timeout=60):
    deadline = time.time() + timeout
    while time.time() < deadline:
        try:
            if evaluate(session, expression, await_promise=True):
                return
        except RuntimeError:
            pass
        time.sleep(0.25)
    raise RuntimeError(f"timed out waiting for {what}")


result = {"loaded": False}
try:
    port = None
    for _ in range(200):
        try:
            port = open(os.path.join(profile, "DevToolsActivePort")).read().split()[0]
            break
        except (OSError, IndexError):
            time.sleep(0.1)
    if port is None:
        raise RuntimeError("chromium did not start its debugging server")
    url = f"http://127.0.0.1:{port}/devtools/devtools_app.html?panel=timeline"
    target = call("Target.createTarget", {"url": url})["targetId"]
    session = call("Target.attachToTarget", {"targetId": target, "flatten": True})["sessionId"]
    module = "./panels/timeline/timeline.js"
    wait_for(session, f"import('{module}').then(T => !!T.TimelinePanel.TimelinePanel.instance())"
             ".catch(() => false)", "the Performance panel")
    evaluate(session, f"""(async () => {{
        const T = await import('{module}');
        const file = new File([{json.dumps(trace_text)}], 'trace.json', {{type: 'application/json'}});
        await T.TimelinePanel.TimelinePanel.instance().loadFromFile(file);
    }})()""", await_promise=True)
    # The flame chart is a canvas: read what it draws from its data provider, once it has.
    wait_for(session, f"import('{module}').then(T => T.TimelinePanel.TimelinePanel.instance()"
             ".getFlameChart().getMainDataProvider().timelineData().groups.length > 0)",
             "the trace's tracks")
    drawn = json.loads(evaluate(session, f"""import('{module}').then(T => {{
        const chart = T.TimelinePanel.TimelinePanel.instance().getFlameChart();
        const main = chart.getMainFlameChart();
        const provider = chart.getMainDataProvider();
        const data = provider.timelineData();
        data.groups.forEach((_, i) => main.expandGroup(i));
        const titles = [];
        for (let i = 0; i < data.entryLevels.length; i++) titles.push(provider.entryTitle(i));
        return JSON.stringify({{groups: data.groups.map(g => g.name), titles}});
    }})""", await_promise=True))
    result.update(drawn)
    result["loaded"] = bool(drawn["groups"])
    time.sleep(1)
    if screenshot:
        # Cosmetics at the fixed window size: close the first-use keyboard help and the
        # annotations sidebar, so that the tracks fill the picture.
        for x, y in ((1571, 77), (16, 40)):
            for kind in ("mousePressed", "mouseReleased"):
                call("Input.dispatchMouseEvent", {"type": kind, "x": x, "y": y,
                                                  "button": "left", "clickCount": 1}, session)
            time.sleep(0.7)
        shot = call("Page.captureScreenshot", {"format": "png"}, session)
        with open(screenshot, "wb") as out:
            out.write(base64.b64decode(shot["data"]))
except RuntimeError as err:
    result["error"] = str(err)
finally:
    browser.kill()
    browser.wait()
print(json.dumps(result))
