"""Event to notification on a deployed fleet host, both alert paths (run.sh step 14).

Run with the checkout's .venv python (it reuses the real-Prometheus test's helpers):
    latency.py serve DIR BIND_IP PORT TARGET
        A webhook receiver on BIND_IP:PORT (every POST appended to DIR/posts.jsonl with its arrival
        time), and Debian's prometheus + prometheus-alertmanager on loopback: Prometheus scrapes
        TARGET's /metrics (the host's nginx) and evaluates `netops alerts rules` every 15 s
        (Debian's packaged prometheus.yml), Alertmanager runs the role's example configuration
        (group_wait 10s) with its webhook receiver pointed at PORT's /am. DIR/ready appears once
        Prometheus has scraped TARGET. Runs until SIGTERM, then stops what it started.
    latency.py wait DIR PATH ALERT STATE SINCE TIMEOUT
        Seconds from SINCE (epoch) to the first POST to PATH, after SINCE, that reports ALERT in
        STATE (netops' payload: "alert"/"state"; Alertmanager's: alertname/status). Exit 1 after
        TIMEOUT seconds without one.
"""

from __future__ import annotations

import http.server
import json
import signal
import subprocess
import sys
import threading
import time
import urllib.request
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[3]))

SCRAPE = "15s"       # Debian's prometheus.yml
GROUP_WAIT = "10s"   # the role's netops_alertmanager_group_wait


def receiver(bind: str, port: int, out: Path) -> http.server.ThreadingHTTPServer:
    lock = threading.Lock()

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_POST(self) -> None:  # noqa: N802 - http.server's naming
            body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
            try:
                doc = json.loads(body)
            except ValueError:
                doc = {"unparsed": body.decode("utf-8", "replace")}
            with lock, out.open("a", encoding="utf-8") as f:
                f.write(json.dumps({"t": time.time(), "path": self.path, "doc": doc}) + "\n")
            self.send_response(200)
            self.end_headers()

        def do_GET(self) -> None:  # noqa: N802 - heartbeat pings, if configured
            self.send_response(200)
            self.end_headers()

        def log_message(self, *args: Any) -> None:
            pass

    server = http.server.ThreadingHTTPServer((bind, port), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server


def serve(dirname: str, bind: str, port: str, target: str) -> int:
    import yaml

    from netops.config import load_settings
    from netops.monitor.alerts import prometheus_rules
    from tests.integration.test_prometheus_alertmanager import (
        ALERTMANAGER,
        AMTOOL,
        PROMETHEUS,
        alertmanager_config,
        free_port,
        http_ok,
        start,
        stop,
        wait_for,
    )

    if None in (PROMETHEUS, ALERTMANAGER, AMTOOL):
        print("error: prometheus, prometheus-alertmanager and amtool are needed (apt-get install prometheus "
              "prometheus-alertmanager)", file=sys.stderr)
        return 1
    tmp = Path(dirname)
    tmp.mkdir(parents=True, exist_ok=True)
    stopping = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stopping.set())
    signal.signal(signal.SIGINT, lambda *_: stopping.set())
    hook = receiver(bind, int(port), tmp / "posts.jsonl")
    procs: list[subprocess.Popen[bytes]] = []
    try:
        am_port, prom_port = free_port(), free_port()
        am_cfg = tmp / "alertmanager.yml"
        am_cfg.write_text(alertmanager_config(f"http://{bind}:{port}/am", GROUP_WAIT, "1m"))
        subprocess.run([str(AMTOOL), "check-config", str(am_cfg)], check=True, capture_output=True, timeout=60)
        procs.append(start([str(ALERTMANAGER), f"--config.file={am_cfg}", f"--storage.path={tmp / 'am'}",
                            f"--web.listen-address=127.0.0.1:{am_port}", "--cluster.listen-address="],
                           tmp / "alertmanager.log"))
        (tmp / "rules.yml").write_text(prometheus_rules(load_settings(env={}, config_path="")))
        (tmp / "prometheus.yml").write_text(yaml.safe_dump({
            "global": {"scrape_interval": SCRAPE, "evaluation_interval": SCRAPE, "scrape_timeout": "10s"},
            "rule_files": [str(tmp / "rules.yml")],
            "alerting": {"alertmanagers": [{"static_configs": [{"targets": [f"127.0.0.1:{am_port}"]}]}]},
            "scrape_configs": [{"job_name": "netops", "metrics_path": "/metrics",
                                "static_configs": [{"targets": [target]}]}]}))
        procs.append(start([str(PROMETHEUS), f"--config.file={tmp / 'prometheus.yml'}",
                            f"--storage.tsdb.path={tmp / 'tsdb'}", f"--web.listen-address=127.0.0.1:{prom_port}"],
                           tmp / "prometheus.log"))
        wait_for("alertmanager ready", lambda: http_ok(f"http://127.0.0.1:{am_port}/-/ready"))
        wait_for("prometheus ready", lambda: http_ok(f"http://127.0.0.1:{prom_port}/-/ready"))

        def scraped() -> bool:
            url = f"http://127.0.0.1:{prom_port}/api/v1/query?query=up"
            with urllib.request.urlopen(url, timeout=5) as r:
                result = json.loads(r.read())["data"]["result"]
            return bool(result) and result[0]["value"][1] == "1"

        wait_for(f"prometheus scrapes {target}", scraped, timeout=90, step=1.0)
        (tmp / "ready").write_text(f"prometheus 127.0.0.1:{prom_port} alertmanager 127.0.0.1:{am_port}\n")
        stopping.wait()
        return 0
    finally:
        for p in reversed(procs):
            stop(p)
        hook.shutdown()
        hook.server_close()


def matches(post: dict[str, Any], path: str, alert: str, state: str) -> bool:
    if post["path"] != path:
        return False
    doc = post["doc"]
    if "alerts" in doc:  # Alertmanager
        return any(a.get("labels", {}).get("alertname") == alert and a.get("status") == state for a in doc["alerts"])
    return bool(doc.get("alert") == alert and doc.get("state") == state)


def wait(dirname: str, path: str, alert: str, state: str, since: str, timeout: str) -> int:
    posts, t0, deadline = Path(dirname) / "posts.jsonl", float(since), time.time() + float(timeout)
    while time.time() < deadline:
        if posts.exists():
            for line in posts.read_text(encoding="utf-8").splitlines():
                post = json.loads(line)
                if post["t"] > t0 and matches(post, path, alert, state):
                    print(f"{post['t'] - t0:.1f}")
                    return 0
        time.sleep(0.2)
    print(f"none in {float(timeout):g} s")
    return 1


def main(argv: list[str]) -> int:
    if len(argv) == 5 and argv[0] == "serve":
        return serve(*argv[1:])
    if len(argv) == 7 and argv[0] == "wait":
        return wait(*argv[1:])
    print(__doc__, file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
