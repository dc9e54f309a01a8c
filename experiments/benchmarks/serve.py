"""Benchmark of the exported policy: in process against SB3, over HTTP against stock MLflow.

Usage::

    concede bench serve               # about 3 minutes
    concede bench serve --quick       # 5 s per HTTP run, a smoke test
    concede bench serve --skip-http   # in process only (about 20 s)

The policy is a MaskablePPO with the default agent's network (net_arch [64, 64]),
trained briefly (``--train-timesteps``) or loaded from ``--model`` (an SB3 ``.zip``);
it is exported with :func:`agents.export.export_policy`. The events are 1,024 states of
the simulator (shoppers in a journey, with the merchant-side context the simulator
knows), so that every guardrail is exercised on realistic input.

In process (one thread: torch and onnxruntime both on 1 thread):

- one event: ``PolicyRuntime.decide`` (validation, consent masking, network,
  guardrails, reason) against SB3 ``model.predict(obs, action_masks=mask)`` on the same
  events, interleaved in blocks; p50 and p99 latencies. Targets: decide p50 <= 20 us,
  p99 <= 100 us, and >= 4x faster than predict at p50.
- 1,024 events as columns: ``decide_batch`` against ``model.predict`` on the 1,024
  observations; decisions per second (median of repeats). Target >= 1,000,000/s.

Over HTTP (``mlflow models serve --env-manager local`` on 127.0.0.1, ``--workers``
uvicorn workers; the venv's ``bin`` first on PATH): our pyfunc (runtime + validation,
``agents.serving.packaging.save_policy_model``) against two stock ways of serving the same
``policy.onnx`` with no validation, both with a ``double`` column signature of the
features: ``stock``, the ``mlflow.onnx`` flavor (its pyfunc answers the 11 scores per
event), and ``plain``, a minimal models-from-code pyfunc answering the argmax action.
The three servers run side by side; the load goes to one at a time, in 10-second
slices interleaved ours, stock, plain, ours... (``--duration`` per server and request
size, in 3 rounds), so that other processes' load falls on all three alike. The ratio
targets must hold against both. The load generator: Python
threads (``--clients``, 32), one keep-alive ``http.client`` connection each, for
``--duration`` seconds (30) and at most ``--max-requests`` requests; one event per
request, then 256 events per request. Targets: ours >= 0.9x stock throughput, p99 <=
1.1x stock (each of the two), no errors; 256 events per request >= 20,000 decisions/s.

Prints a table, then one JSON object with every figure and ratio as the last line.
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import shutil
import tempfile
import threading
import time
import warnings
from collections.abc import Callable
from contextlib import ExitStack
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from sb3_contrib import MaskablePPO

import envs
from agents.export import POLICY_FILE, export_policy
from agents.serving.runtime import PolicyRuntime
from agents.serving.server import served
from agents.serving.simulator_events import Events, simulator_events
from agents.vec_env import ShopperVecEnv
from envs.scenario import Scenario

TARGETS = {
    "decide_p50_us": 20.0,
    "decide_p99_us": 100.0,
    "decide_vs_predict": 4.0,
    "batch_decisions_per_s": 1_000_000.0,
    "http_throughput_vs_stock": 0.9,
    "http_p99_vs_stock": 1.1,
    "http_256_decisions_per_s": 20_000.0,
}
PLAIN_MODEL_CODE = '''
import mlflow
import numpy as np
import onnxruntime as ort


class PlainOnnx(mlflow.pyfunc.PythonModel):
    """The same network, no validation, no guardrails: the argmax of the scores."""

    def load_context(self, context):
        self.session = ort.InferenceSession(
            context.artifacts["onnx"], providers=["CPUExecutionProvider"]
        )

    def predict(self, context, model_input, params=None):
        obs = model_input.to_numpy(dtype=np.float32)
        return self.session.run(None, {"obs": obs})[0].argmax(axis=1)


mlflow.models.set_model(PlainOnnx())
'''


# ---------------------------------------------------------------- the policy and events


def trained_policy(scenario: Scenario, timesteps: int, model_path: str | None) -> MaskablePPO:
    """The default agent's MaskablePPO, loaded or trained briefly on the scenario."""
    if model_path:
        return MaskablePPO.load(model_path, device="cpu")
    env = ShopperVecEnv(scenario, 64, seed=0)
    model = MaskablePPO(
        "MlpPolicy",
        env,
        n_steps=64,
        batch_size=1024,
        n_epochs=2,
        seed=0,
        policy_kwargs={"net_arch": [64, 64]},
        device="cpu",
    )
    return model.learn(timesteps)


# ---------------------------------------------------------------- in process


def _latencies(call: Callable[[int], Any], indices: range) -> np.ndarray:
    out = np.empty(len(indices))
    clock = time.perf_counter_ns
    for j, i in enumerate(indices):
        start = clock()
        call(i)
        out[j] = clock() - start
    return out / 1000.0


def bench_in_process(
    runtime: PolicyRuntime, model: MaskablePPO, events: Events, quick: bool
) -> dict[str, float]:
    """Single-event latencies and batch throughput, ours against SB3, interleaved."""
    n = len(events.obs)
    dicts = [events.event(i) for i in range(n)]
    obs_rows = [events.obs[i : i + 1] for i in range(n)]
    mask_rows = [events.masks[i : i + 1] for i in range(n)]
    expected, _ = model.predict(events.obs, deterministic=True, action_masks=events.masks)
    got = runtime.decide_batch(events.columns).action_index
    if not np.array_equal(got, expected):
        raise AssertionError("the runtime and SB3 disagree on the benchmark's events")

    def ours(i: int) -> Any:
        return runtime.decide(dicts[i % n])

    def sb3(i: int) -> Any:
        i %= n
        return model.predict(obs_rows[i], deterministic=True, action_masks=mask_rows[i])

    rounds = 3 if quick else 8
    ours_lat, sb3_lat = [], []
    for r in range(rounds):
        ours_lat.append(_latencies(ours, range(r * 5000, (r + 1) * 5000)))
        sb3_lat.append(_latencies(sb3, range(r * 500, (r + 1) * 500)))
    mine, theirs = np.concatenate(ours_lat), np.concatenate(sb3_lat)

    def batch_rate(call: Callable[[], Any], repeats: int) -> float:
        times = []
        for _ in range(repeats):
            start = time.perf_counter()
            call()
            times.append(time.perf_counter() - start)
        return n / float(np.median(times))

    repeats = 50 if quick else 200
    rates_ours, rates_sb3 = [], []
    for _ in range(4):
        rates_ours.append(batch_rate(lambda: runtime.decide_batch(events.columns), repeats))
        rates_sb3.append(
            batch_rate(
                lambda: model.predict(events.obs, deterministic=True, action_masks=events.masks),
                repeats // 5,
            )
        )
    return {
        "decide_p50_us": float(np.percentile(mine, 50)),
        "decide_p99_us": float(np.percentile(mine, 99)),
        "predict_p50_us": float(np.percentile(theirs, 50)),
        "predict_p99_us": float(np.percentile(theirs, 99)),
        "decide_vs_predict": float(np.percentile(theirs, 50) / np.percentile(mine, 50)),
        "batch_decisions_per_s": float(np.median(rates_ours)),
        "predict_batch_decisions_per_s": float(np.median(rates_sb3)),
        "batch_vs_predict": float(np.median(rates_ours) / np.median(rates_sb3)),
        "events": n,
    }


# ---------------------------------------------------------------- over HTTP


@dataclass
class LoadResult:
    requests: int
    errors: int
    seconds: float
    requests_per_s: float
    decisions_per_s: float
    p50_ms: float
    p99_ms: float


@dataclass
class LoadSlice:
    """One stretch of load: every request's latency (ms), the errors, the wall time."""

    latencies_ms: np.ndarray
    errors: int
    seconds: float


def summarise(slices: list[LoadSlice], events_per_request: int) -> LoadResult:
    """Throughput over the slices' total time; percentiles over all their requests."""
    flat = np.concatenate([s.latencies_ms for s in slices])
    seconds = sum(s.seconds for s in slices)
    done = len(flat)
    return LoadResult(
        requests=done,
        errors=sum(s.errors for s in slices),
        seconds=seconds,
        requests_per_s=done / seconds,
        decisions_per_s=done * events_per_request / seconds,
        p50_ms=float(np.percentile(flat, 50)) if done else float("nan"),
        p99_ms=float(np.percentile(flat, 99)) if done else float("nan"),
    )


def load(
    port: int,
    bodies: list[bytes],
    clients: int,
    duration: float,
    max_requests: int,
) -> LoadSlice:
    """``clients`` threads POST ``bodies`` round-robin to 127.0.0.1:port/invocations until
    ``duration`` seconds or ``max_requests`` requests; a non-200 answer is an error."""
    stop_at = time.monotonic() + duration
    budget = threading.Semaphore(max_requests)
    latencies: list[list[float]] = [[] for _ in range(clients)]
    errors = [0] * clients
    headers = {"Content-Type": "application/json"}

    def client(k: int) -> None:
        connection = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
        i = k
        while time.monotonic() < stop_at and budget.acquire(blocking=False):
            body = bodies[i % len(bodies)]
            i += clients
            start = time.perf_counter()
            try:
                connection.request("POST", "/invocations", body=body, headers=headers)
                reply = connection.getresponse()
                reply.read()
                ok = reply.status == 200
            except (OSError, http.client.HTTPException):
                ok = False
                connection.close()
                connection = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
            latencies[k].append(time.perf_counter() - start)
            errors[k] += not ok
        connection.close()

    threads = [threading.Thread(target=client, args=(k,), daemon=True) for k in range(clients)]
    started = time.perf_counter()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    seconds = time.perf_counter() - started
    flat = np.concatenate([np.asarray(lat, dtype=float) for lat in latencies]) * 1000.0
    return LoadSlice(flat, sum(errors), seconds)


def request_bodies(events: Events, names: list[str], per_request: int, count: int) -> list[bytes]:
    """``count`` MLflow scoring bodies (``dataframe_split`` with the columns ``names``) of
    ``per_request`` events each, taken round-robin from ``events``."""
    n = len(events.obs)
    rows = [[float(events.columns[c][i]) for c in names] for i in range(n)]
    bodies = []
    for b in range(count):
        start = (b * per_request) % n
        data = [rows[(start + j) % n] for j in range(per_request)]
        payload = {"dataframe_split": {"columns": names, "data": data}}
        bodies.append(json.dumps(payload).encode())
    return bodies


def save_models(policy_dir: Path, runtime: PolicyRuntime, into: Path) -> tuple[Path, Path, Path]:
    """Our pyfunc, the stock ``mlflow.onnx`` model and the plain pyfunc of the same network."""
    import mlflow
    import onnx
    from mlflow.models import ModelSignature
    from mlflow.types import ColSpec, Schema

    from agents.serving.packaging import save_policy_model

    ours = save_policy_model(policy_dir, into / "ours")
    stock = into / "stock"
    signature = ModelSignature(
        inputs=Schema([ColSpec("double", name) for name in runtime.feature_names])
    )
    mlflow.onnx.save_model(
        onnx.load(str(policy_dir / POLICY_FILE)), str(stock), signature=signature
    )
    plain = into / "plain"
    code = into / "plain_model.py"
    code.write_text(PLAIN_MODEL_CODE)
    mlflow.pyfunc.save_model(
        str(plain),
        python_model=str(code),
        artifacts={"onnx": str(policy_dir / POLICY_FILE)},
        signature=signature,
        pip_requirements=["mlflow", "onnxruntime", "numpy"],
    )
    return ours, stock, plain


def bench_http(
    policy_dir: Path,
    runtime: PolicyRuntime,
    events: Events,
    *,
    clients: int,
    duration: float,
    workers: int,
    max_requests: int,
    rounds: int = 3,
) -> dict[str, Any]:
    """Ours against stock and plain, one event per request, then 256.

    The three servers run side by side, idle but for the one under load: each gets
    ``duration`` seconds of load per request size, in ``rounds`` slices interleaved with
    the others' (ours, stock, plain, ours, ...), so that the load of other processes on the
    machine falls on all three alike."""
    work = Path(tempfile.mkdtemp(prefix="bench-serve-"))
    try:
        models = save_models(policy_dir, runtime, work)
        dirs = dict(zip(("ours", "stock", "plain"), models, strict=True))
        names = {
            "ours": list(runtime.input_names),
            "stock": list(runtime.feature_names),
            "plain": list(runtime.feature_names),
        }
        results: dict[str, Any] = {}
        with ExitStack() as stack:
            ports = {
                label: stack.enter_context(served(folder, workers, work / f"{label}.log"))
                for label, folder in dirs.items()
            }
            for per_request in (1, 256):
                count = 1024 if per_request == 1 else 16
                bodies = {k: request_bodies(events, names[k], per_request, count) for k in ports}
                for label, port in ports.items():  # warm-up
                    load(port, bodies[label], clients, min(3.0, duration), max_requests)
                slices: dict[str, list[LoadSlice]] = {label: [] for label in ports}
                for _ in range(rounds):
                    for label, port in ports.items():
                        slices[label].append(
                            load(port, bodies[label], clients, duration / rounds, max_requests)
                        )
                for label, parts in slices.items():
                    results[f"{label}_{per_request}"] = asdict(summarise(parts, per_request))
        o1 = results["ours_1"]
        for other in ("stock", "plain"):
            ref = results[f"{other}_1"]
            results[f"throughput_vs_{other}"] = o1["requests_per_s"] / ref["requests_per_s"]
            results[f"p99_vs_{other}"] = o1["p99_ms"] / ref["p99_ms"]
            results[f"p50_vs_{other}"] = o1["p50_ms"] / ref["p50_ms"]
        results["clients"], results["workers"], results["duration_s"] = clients, workers, duration
        results["rounds"] = rounds
        return results
    finally:
        shutil.rmtree(work, ignore_errors=True)


# ---------------------------------------------------------------- report


def _verdicts(inproc: dict[str, float], http: dict[str, Any] | None) -> dict[str, bool]:
    met = {
        "decide_p50_us": inproc["decide_p50_us"] <= TARGETS["decide_p50_us"],
        "decide_p99_us": inproc["decide_p99_us"] <= TARGETS["decide_p99_us"],
        "decide_vs_predict": inproc["decide_vs_predict"] >= TARGETS["decide_vs_predict"],
        "batch_decisions_per_s": inproc["batch_decisions_per_s"]
        >= TARGETS["batch_decisions_per_s"],
    }
    if http is not None:
        met["http_throughput_vs_stock"] = (
            min(http["throughput_vs_stock"], http["throughput_vs_plain"])
            >= TARGETS["http_throughput_vs_stock"]
        )
        met["http_p99_vs_stock"] = (
            max(http["p99_vs_stock"], http["p99_vs_plain"]) <= TARGETS["http_p99_vs_stock"]
        )
        met["http_errors"] = http["ours_1"]["errors"] == 0 and http["ours_256"]["errors"] == 0
        met["http_256_decisions_per_s"] = (
            http["ours_256"]["decisions_per_s"] >= TARGETS["http_256_decisions_per_s"]
        )
    return met


def print_table(inproc: dict[str, float], http: dict[str, Any] | None) -> None:
    print(f"{'in process (1 thread)':<44} {'p50':>10} {'p99':>10} {'decisions/s':>14}")
    print(
        f"{'decide, one event':<44} {inproc['decide_p50_us']:>8.1f}us "
        f"{inproc['decide_p99_us']:>8.1f}us {1e6 / inproc['decide_p50_us']:>14,.0f}"
    )
    print(
        f"{'SB3 predict, one event (reference)':<44} {inproc['predict_p50_us']:>8.1f}us "
        f"{inproc['predict_p99_us']:>8.1f}us {1e6 / inproc['predict_p50_us']:>14,.0f}"
    )
    print(
        f"{'decide_batch, 1,024 events':<44} {'':>10} {'':>10} "
        f"{inproc['batch_decisions_per_s']:>14,.0f}"
    )
    print(
        f"{'SB3 predict, 1,024 events (reference)':<44} {'':>10} {'':>10} "
        f"{inproc['predict_batch_decisions_per_s']:>14,.0f}"
    )
    print(
        f"decide vs predict (p50): {inproc['decide_vs_predict']:.1f}x; "
        f"batch vs predict: {inproc['batch_vs_predict']:.1f}x"
    )
    if http is None:
        return
    print()
    print(
        f"HTTP, {http['clients']} clients, {http['duration_s']:.0f} s per server in "
        f"{http['rounds']} interleaved rounds, --workers {http['workers']}"
    )
    print(
        f"{'server':<30} {'req/s':>9} {'decisions/s':>12} {'p50 ms':>8} {'p99 ms':>8} {'errors':>7}"
    )
    for per_request in (1, 256):
        for label, what in (
            ("ours", "ours (validated)"),
            ("stock", "stock mlflow.onnx"),
            ("plain", "plain pyfunc"),
        ):
            r = http[f"{label}_{per_request}"]
            name = f"{what}, {per_request}/request"
            print(
                f"{name:<30} {r['requests_per_s']:>9,.0f} {r['decisions_per_s']:>12,.0f} "
                f"{r['p50_ms']:>8.1f} {r['p99_ms']:>8.1f} {r['errors']:>7}"
            )
    for other in ("stock", "plain"):
        print(
            f"ours vs {other}, 1 event/request: throughput "
            f"{http[f'throughput_vs_{other}']:.2f}x, p99 {http[f'p99_vs_{other}']:.2f}x"
        )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="concede bench serve", description=__doc__.splitlines()[0]
    )
    parser.add_argument("--scenario", default="default")
    parser.add_argument("--model", default=None, help="an SB3 MaskablePPO .zip to export")
    parser.add_argument("--train-timesteps", type=int, default=16_384)
    parser.add_argument("--clients", type=int, default=32)
    parser.add_argument("--duration", type=float, default=30.0, help="seconds per HTTP run")
    parser.add_argument("--workers", type=int, default=2, help="uvicorn workers per server")
    parser.add_argument("--max-requests", type=int, default=1_000_000)
    parser.add_argument("--skip-http", action="store_true")
    parser.add_argument("--quick", action="store_true", help="short runs, for a smoke test")
    args = parser.parse_args(argv)
    os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")
    warnings.filterwarnings("ignore", module="mlflow")
    torch.set_num_threads(1)
    scenario = envs.load_scenario(args.scenario)
    model = trained_policy(scenario, args.train_timesteps, args.model)
    with tempfile.TemporaryDirectory() as tmp:
        policy_dir = export_policy(model, scenario, Path(tmp) / "policy")
        runtime = PolicyRuntime.load(policy_dir)
        events = simulator_events(scenario, runtime.feature_names, 1024)
        inproc = bench_in_process(runtime, model, events, args.quick)
        http = None
        if not args.skip_http:
            http = bench_http(
                policy_dir,
                runtime,
                events,
                clients=args.clients,
                duration=6.0 if args.quick else args.duration,
                workers=args.workers,
                max_requests=args.max_requests,
            )
    print_table(inproc, http)
    met = _verdicts(inproc, http)
    print(json.dumps({"in_process": inproc, "http": http, "targets": TARGETS, "met": met}))
    return 0
