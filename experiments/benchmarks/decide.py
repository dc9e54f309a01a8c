"""Benchmark of the decision service against stock MLflow serving of the same network.

Usage::

    concede bench decide              # about 5 minutes
    concede bench decide --quick      # 4 s per run, a smoke test
    concede bench decide --more       # also stock with a signature, our pyfunc

Side by side on loopback, in one run:

- **ours**: ``concede serve`` (``agents.serving.service``) with validation,
  guardrails, epsilon exploration (0.05) and decision logging on (journals in a temporary
  folder), ``--workers`` processes;
- **stock** (the reference): ``mlflow models serve`` of a stock ``mlflow.onnx`` model of the
  same ``policy.onnx`` saved *without* a signature (the fastest stock variant: no per-cell
  schema checks), same number of workers; it answers the 11 scores per event, no
  validation, no guardrails, no log;
- with ``--more``: the stock model *with* a 27-column ``double`` signature, and our
  pyfunc (runtime and validation) under ``mlflow models serve``.

The load generator is Debian's ``wrk`` (C, event loop; ``apt-get install wrk``): 32
connections on 2 threads, POSTing bodies round-robin (a Lua script), ``--duration``
seconds per server and request size, in 3 slices interleaved ours, stock, ours... so that
the load of other processes falls on all alike. One event per request, then 256 events
per request (the same 1,024 simulator states for all; ours as ``{"event": ...}`` /
``{"events": [...]}``, MLflow as ``dataframe_split``). Per server: requests/s (total
over the slices), p50 and p99 (the median of the slices' wrk percentiles), non-2xx
answers and socket errors. Ratios ours/stock are of the same run.

Targets (one event per request): ours >= 3x the requests/s of stock without a signature,
p99 no higher than its p99, no errors; 256 events per request: >= 100,000 decisions/s; in
process, ``PolicyRuntime.decide`` p50 <= 15 us. A missed target is printed as missed.

Prints a table, then one JSON object with every figure, ratio and verdict as its last line.
"""

from __future__ import annotations

import argparse
import json
import re
import shutil
import subprocess
import tempfile
import time
import urllib.request
import warnings
from contextlib import ExitStack
from pathlib import Path
from typing import Any

import numpy as np
import torch

import envs
from agents.export import POLICY_FILE, export_policy
from agents.serving.runtime import PolicyRuntime
from agents.serving.server import served, served_service
from agents.serving.simulator_events import Events, simulator_events
from experiments.benchmarks.serve import (
    bench_in_process,
    request_bodies,
    save_models,
    trained_policy,
)

TARGETS = {
    "throughput_vs_stock": 3.0,
    "p99_vs_stock": 1.0,
    "decisions_per_s_256": 100_000.0,
    "decide_p50_us": 15.0,
}
_UNITS = {"us": 1e-3, "ms": 1.0, "s": 1e3, "m": 60e3, "h": 3600e3}


def service_bodies(
    events: Events, names: tuple[str, ...], per_request: int, count: int
) -> list[bytes]:
    """``count`` ``/decide`` bodies of ``per_request`` events each, round-robin."""
    n = len(events.obs)
    rows = [{c: float(events.columns[c][i]) for c in names} for i in range(n)]
    out = []
    for b in range(count):
        start = (b * per_request) % n
        batch = [rows[(start + j) % n] for j in range(per_request)]
        body = {"event": batch[0]} if per_request == 1 else {"events": batch}
        out.append(json.dumps(body).encode())
    return out


def lua_script(path: Path, url_path: str, bodies: list[bytes]) -> Path:
    """A wrk script POSTing ``bodies`` round-robin to ``url_path``."""
    items = ",\n".join(f"[==[{b.decode()}]==]" for b in bodies)
    path.write_text(
        f"local bodies = {{\n{items}\n}}\n"
        "local i = 0\n"
        'wrk.method = "POST"\n'
        'wrk.headers["Content-Type"] = "application/json"\n'
        "request = function()\n"
        "  i = i + 1\n"
        f'  return wrk.format(nil, "{url_path}", nil, bodies[(i % #bodies) + 1])\n'
        "end\n"
    )
    return path


def _ms(text: str) -> float:
    found = re.fullmatch(r"([\d.]+)(us|ms|s|m|h)", text.strip())
    if found is None:
        raise RuntimeError(f"wrk printed a latency this benchmark cannot read: {text!r}")
    return float(found.group(1)) * _UNITS[found.group(2)]


def wrk(port: int, script: Path, connections: int, seconds: float) -> dict[str, float]:
    """One wrk run: requests, seconds, p50/p99 (ms), non-2xx answers, socket errors."""
    out = subprocess.run(
        [
            "wrk",
            "-t2",
            f"-c{connections}",
            f"-d{max(1, round(seconds))}s",
            "--timeout",
            "10s",
            "--latency",
            "-s",
            str(script),
            f"http://127.0.0.1:{port}",
        ],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    done = re.search(r"(\d+) requests in ([\d.]+)(us|ms|s|m)", out)
    if done is None:
        raise RuntimeError(f"wrk printed no result:\n{out}")
    scale = {"us": 1e-6, "ms": 1e-3, "s": 1.0, "m": 60.0}[done.group(3)]
    non2xx = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    sockets = re.search(
        r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", out
    )
    return {
        "requests": float(done.group(1)),
        "seconds": float(done.group(2)) * scale,
        "p50_ms": _ms(re.search(r"^\s*50%\s+(\S+)", out, re.M).group(1)),  # type: ignore[union-attr]
        "p99_ms": _ms(re.search(r"^\s*99%\s+(\S+)", out, re.M).group(1)),  # type: ignore[union-attr]
        "non_2xx": float(non2xx.group(1)) if non2xx else 0.0,
        "socket_errors": float(sum(map(int, sockets.groups()))) if sockets else 0.0,
    }


def summarise(slices: list[dict[str, float]], per_request: int) -> dict[str, float]:
    requests = sum(s["requests"] for s in slices)
    seconds = sum(s["seconds"] for s in slices)
    return {
        "requests": requests,
        "seconds": seconds,
        "requests_per_s": requests / seconds,
        "decisions_per_s": requests * per_request / seconds,
        "p50_ms": float(np.median([s["p50_ms"] for s in slices])),
        "p99_ms": float(np.median([s["p99_ms"] for s in slices])),
        "errors": sum(s["non_2xx"] + s["socket_errors"] for s in slices),
    }


def service_log_figures(port: int) -> dict[str, float]:
    """Decisions answered, log rows written and dropped, from the service's /metrics."""
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=30) as reply:
        text = reply.read().decode()

    def total(name: str) -> float:
        return sum(float(v) for v in re.findall(rf"^{name}(?:{{[^}}]*}})? (\S+)$", text, re.M))

    return {
        "decisions": total("concede_decisions_total"),
        "log_written_rows": total("concede_log_written_rows_total"),
        "log_dropped_rows": total("concede_log_dropped_rows_total"),
        "log_queue_rows": total("concede_log_queue_rows"),
    }


def bench_http(
    policy_dir: Path,
    runtime: PolicyRuntime,
    events: Events,
    *,
    connections: int,
    duration: float,
    workers: int,
    more: bool,
    rounds: int = 3,
) -> dict[str, Any]:
    work = Path(tempfile.mkdtemp(prefix="bench-decide-"))
    try:
        import mlflow
        import onnx

        stock = work / "stock"
        mlflow.onnx.save_model(onnx.load(str(policy_dir / POLICY_FILE)), str(stock))
        models: dict[str, Path] = {"stock": stock}
        if more:
            ours_pyfunc, stock_sig, _ = save_models(policy_dir, runtime, work / "more")
            models |= {"stock_signature": stock_sig, "ours_pyfunc": ours_pyfunc}
        results: dict[str, Any] = {}
        with ExitStack() as stack:
            service = stack.enter_context(
                served_service(
                    policy_dir, work / "logs", workers, work / "ours.log", ["--explore", "0.05"]
                )
            )
            ports = {"ours": service.port}
            for label, folder in models.items():
                ports[label] = stack.enter_context(served(folder, workers, work / f"{label}.log"))
            for per_request in (1, 256):
                count = 256 if per_request == 1 else 8
                scripts = {}
                for label in ports:
                    if label == "ours":
                        bodies = service_bodies(events, runtime.input_names, per_request, count)
                        path = "/decide"
                    else:
                        names = runtime.input_names if label == "ours_pyfunc" else None
                        bodies = request_bodies(
                            events, list(names or runtime.feature_names), per_request, count
                        )
                        path = "/invocations"
                    scripts[label] = lua_script(work / f"{label}-{per_request}.lua", path, bodies)
                for label, port in ports.items():  # warm-up
                    wrk(port, scripts[label], connections, min(3.0, duration))
                slices: dict[str, list[dict[str, float]]] = {label: [] for label in ports}
                for _ in range(rounds):
                    for label, port in ports.items():
                        slices[label].append(
                            wrk(port, scripts[label], connections, duration / rounds)
                        )
                for label, parts in slices.items():
                    results[f"{label}_{per_request}"] = summarise(parts, per_request)
                    results[f"{label}_{per_request}"]["slices"] = parts
            time.sleep(1.0)
            results["ours_log"] = service_log_figures(service.port)
        for per_request in (1, 256):
            o, s = results[f"ours_{per_request}"], results[f"stock_{per_request}"]
            results[f"throughput_vs_stock_{per_request}"] = (
                o["requests_per_s"] / s["requests_per_s"]
            )
            results[f"p50_vs_stock_{per_request}"] = o["p50_ms"] / s["p50_ms"]
            results[f"p99_vs_stock_{per_request}"] = o["p99_ms"] / s["p99_ms"]
        results |= {"connections": connections, "workers": workers, "duration_s": duration}
        results["rounds"] = rounds
        return results
    finally:
        shutil.rmtree(work, ignore_errors=True)


def verdicts(inproc: dict[str, float], http: dict[str, Any]) -> dict[str, bool]:
    return {
        "throughput_vs_stock": http["throughput_vs_stock_1"] >= TARGETS["throughput_vs_stock"],
        "p99_vs_stock": http["p99_vs_stock_1"] <= TARGETS["p99_vs_stock"],
        "no_errors": http["ours_1"]["errors"] == 0 and http["ours_256"]["errors"] == 0,
        "decisions_per_s_256": http["ours_256"]["decisions_per_s"]
        >= TARGETS["decisions_per_s_256"],
        "decide_p50_us": inproc["decide_p50_us"] <= TARGETS["decide_p50_us"],
        "no_log_rows_dropped": http["ours_log"]["log_dropped_rows"] == 0,
    }


def print_table(inproc: dict[str, float], http: dict[str, Any], met: dict[str, bool]) -> None:
    print(
        f"wrk, {http['connections']} connections, {http['duration_s']:.0f} s per server and "
        f"request size in {http['rounds']} interleaved slices, {http['workers']} workers each"
    )
    print(
        f"{'server':<34} {'req/s':>9} {'decisions/s':>12} {'p50 ms':>8} {'p99 ms':>8} {'errors':>7}"
    )
    labels = {
        "ours": "decision service (ours)",
        "stock": "stock mlflow.onnx, no signature",
        "stock_signature": "stock mlflow.onnx, signature",
        "ours_pyfunc": "our pyfunc, mlflow serve",
    }
    for per_request in (1, 256):
        for label, what in labels.items():
            r = http.get(f"{label}_{per_request}")
            if r is None:
                continue
            name = f"{what}, {per_request}/req"
            print(
                f"{name:<34} {r['requests_per_s']:>9,.0f} {r['decisions_per_s']:>12,.0f} "
                f"{r['p50_ms']:>8.2f} {r['p99_ms']:>8.2f} {r['errors']:>7.0f}"
            )
    for per_request in (1, 256):
        print(
            f"ours vs stock, {per_request}/request: requests/s "
            f"{http[f'throughput_vs_stock_{per_request}']:.2f}x, p50 "
            f"{http[f'p50_vs_stock_{per_request}']:.2f}x, p99 "
            f"{http[f'p99_vs_stock_{per_request}']:.2f}x"
        )
    log = http["ours_log"]
    print(
        f"ours logged {log['log_written_rows']:,.0f} of {log['decisions']:,.0f} decisions "
        f"(dropped {log['log_dropped_rows']:,.0f})"
    )
    print(
        f"in process: decide p50 {inproc['decide_p50_us']:.1f} us, p99 "
        f"{inproc['decide_p99_us']:.1f} us; decide_batch {inproc['batch_decisions_per_s']:,.0f}/s"
    )
    for name, ok in met.items():
        target = TARGETS.get(name)
        shown = "" if target is None else f" ({target:g})"
        print(f"target {name}{shown}: {'met' if ok else 'MISSED'}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="concede bench decide", description=__doc__.splitlines()[0]
    )
    parser.add_argument("--scenario", default="default")
    parser.add_argument("--model", default=None, help="an SB3 MaskablePPO .zip to export")
    parser.add_argument("--train-timesteps", type=int, default=4096)
    parser.add_argument("--connections", type=int, default=32)
    parser.add_argument("--duration", type=float, default=30.0, help="seconds per server and size")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument(
        "--more", action="store_true", help="also stock with a signature, our pyfunc"
    )
    parser.add_argument("--quick", action="store_true", help="short runs, for a smoke test")
    args = parser.parse_args(argv)
    if shutil.which("wrk") is None:
        print("wrk is not installed: apt-get install wrk")
        return 2
    warnings.filterwarnings("ignore", module="mlflow")
    torch.set_num_threads(1)
    scenario = envs.load_scenario(args.scenario)
    model = trained_policy(scenario, args.train_timesteps, args.model)
    with tempfile.TemporaryDirectory() as tmp:
        policy_dir = export_policy(model, scenario, Path(tmp) / "policy")
        runtime = PolicyRuntime.load(policy_dir)
        events = simulator_events(scenario, runtime.feature_names, 1024)
        inproc = bench_in_process(runtime, model, events, quick=True)
        http = bench_http(
            policy_dir,
            runtime,
            events,
            connections=args.connections,
            duration=4.0 if args.quick else args.duration,
            workers=args.workers,
            more=args.more,
        )
    met = verdicts(inproc, http)
    print_table(inproc, http, met)
    print(json.dumps({"in_process": inproc, "http": http, "targets": TARGETS, "met": met}))
    return 0
