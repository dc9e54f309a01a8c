"""The decision service's ASGI app (Starlette), one per worker process.

:func:`create_app` reads :class:`~agents.serving.service.settings.ServiceSettings` from
the environment (uvicorn imports it in every worker); :func:`build_app` takes them
directly. See the package docstring for the endpoints and the README for examples.
"""

from __future__ import annotations

import contextlib
import itertools
import logging
import os
import secrets
import socket
import sys
import time
from collections import Counter
from collections.abc import AsyncIterator
from typing import Any

import numpy as np
import orjson
from numpy.typing import NDArray
from starlette.applications import Starlette
from starlette.requests import ClientDisconnect, Request
from starlette.responses import Response
from starlette.routing import Route

from agents.exploration import at_moments, draw_actions
from agents.logs.schema import LogSpec
from agents.serving.runtime import PolicyInputError, PolicyRuntime
from agents.serving.service.bodies import BadRequest, DecideRequest, parse_decide, parse_reward
from agents.serving.service.journal import (
    DECISIONS,
    REWARDS,
    DecisionBlock,
    JournalWriter,
    RewardBlock,
)
from agents.serving.service.metrics import Metrics, exposition, process_exited
from agents.serving.service.settings import ServiceSettings

JSON = "application/json"
SWITCH_INTERVAL = 0.001
log = logging.getLogger("concede.service")


def log_spec(runtime: PolicyRuntime, settings: ServiceSettings) -> LogSpec:
    """The decision log's spec of this deployment: the manifest's names, timestamps and
    every action's probability, exact propensities; with a campaign budget, its
    allowance and the actions it alone withheld."""
    manifest = runtime.manifest
    run = manifest.get("training", {}) if isinstance(manifest.get("training"), dict) else {}
    logger = str(run.get("run_id") or manifest["policy"]["sha256"][:12])
    spec = LogSpec.from_manifest(
        manifest,
        probabilities=True,
        timestamp=True,
        logger=f"decision-service:{logger}",
        exploration=settings.explorer().to_dict(),
        propensities="exact",
    )
    return spec.with_source(withheld=spec.budget_per_1000 is not None)


class DecisionService:
    """The state of one worker: the runtime, the explorer, the journal, the metrics."""

    def __init__(self, settings: ServiceSettings) -> None:
        self.settings = settings
        self.runtime = PolicyRuntime.load(
            settings.policy,
            max_offers_per_shopper=settings.max_offers_per_shopper,
            disabled=settings.disabled,
        )
        self.names = self.runtime.input_names
        self.actions = self.runtime.action_names
        self._k = len(self.actions)
        self._nf = len(self.runtime.feature_names)
        self.explorer = settings.explorer()
        # the moments' columns among the inputs (features first), and which are gated
        self._moments = self.explorer.columns(self.runtime.feature_names)
        gated = {f["name"] for f in self.runtime.manifest["features"] if f.get("gated")}
        moments = self.explorer.moments or ()
        self._moment_gated = np.array([m in gated for m in moments], dtype=bool)
        self._consent = self.names.index("consent")
        self.token = secrets.token_hex(6)
        self.worker = f"{socket.gethostname()}-{os.getpid()}-{self.token}"
        # each worker its own stream, from the deployment's seed and the worker's token
        self.rng = np.random.default_rng([settings.seed, int(self.token, 16)])
        self._ids = itertools.count()
        self.metrics = Metrics(self.explorer.share)
        self.spec = log_spec(self.runtime, settings)
        self._none_withheld = [False] * self._k
        self.details = [_details(a) for a in self.runtime.manifest["actions"]]
        self.writer = JournalWriter(
            settings.decisions_dir.parent,
            self.worker,
            self.spec,
            rows_per_file=settings.rows_per_file,
            flush_seconds=settings.flush_seconds,
            queue_rows=settings.queue_rows,
            on_written=self._written,
            on_dropped=lambda stream, n: self.metrics.dropped.labels(stream=stream).inc(n),
        )
        label = "epsilon" if settings.exploration == "epsilon" else "softmax temperature"
        at = f" at {' or '.join(moments)}" if moments else ""
        self.exploring = f"exploration ({label} {settings.exploration_value:g}{at})"

    def _at(self, x: NDArray[np.float64], allowed: NDArray[np.bool_]) -> NDArray[np.bool_]:
        """The events ``x`` (inputs in :attr:`names` order) at a moment this deployment
        explores: a moment feature 1 as the policy sees it (a consent-gated one is 0
        without consent), as :func:`agents.exploration.at_moments` decides in the
        simulator."""
        obs = x[:, self._moments]
        obs = np.where(self._moment_gated, obs * x[:, [self._consent]], obs)
        return at_moments(obs, allowed, np.arange(obs.shape[1]))

    def _written(self, stream: str, rows: int) -> None:
        self.metrics.written.labels(stream=stream).inc(rows)
        self.metrics.queue.set(self.writer.queued_rows)

    # ------------------------------------------------------------ /decide
    def decide(self, body: Any) -> dict[str, Any]:
        request = parse_decide(body, self.names, self.settings.max_events)
        if request.n == 1:
            return self._decide_one(request)
        return self._decide_batch(request)

    def _decide_one(self, request: DecideRequest) -> dict[str, Any]:
        """One event: the runtime's one-event path, exploration in plain Python."""
        try:
            d, bits, budget_bits, scores, values = self.runtime.decide_scored(request.event(0))
        except PolicyInputError as err:
            raise BadRequest(400, err.problem, err.field, 0) from None
        k = self._k
        allowed = [bits >> a & 1 == 1 for a in range(k)]
        decided = d.action_index
        at = True
        if self._moments is not None:
            at = bool(self._at(np.array([values], dtype=np.float64), np.array([allowed]))[0])
        probs, chosen = self.explorer.choose_one(decided, allowed, scores, self.rng, at)
        event_id = f"{self.token}-{next(self._ids):x}"
        explored = chosen != decided
        reason = d.reason
        if explored:
            reason = self._explored_reason(chosen, decided, sum(allowed), reason)
            self.metrics.explored.inc()
        else:
            self.metrics.greedy.inc()
        if d.guardrail is not None:
            self.metrics.override_of[d.guardrail].inc()
        journey = request.journeys[0]
        withheld = self._none_withheld
        if budget_bits:
            withheld = [budget_bits >> a & 1 == 1 for a in range(k)]
        block = DecisionBlock(
            [event_id],
            [event_id if journey is None else journey],
            request.steps,
            time.time(),
            [values[: self._nf]],
            [allowed],
            [probs],
            [chosen],
            [explored],
            [withheld],
        )
        logged = self.writer.put(DECISIONS, block)
        answer = {
            "event_id": event_id,
            "action": self.actions[chosen],
            "probability": probs[chosen],
            "explored": explored,
            "reason": reason,
            "concession": self.details[chosen],
            "model_choice": d.model_choice,
            "guardrail": d.guardrail,
        }
        return {"decisions": [answer], "logged": logged}

    def _explored_reason(self, chosen: int, decided: int, n_allowed: int, reason: str) -> str:
        return (
            f"{self.exploring}: drew {self.actions[chosen]} among {n_allowed} allowed "
            f"actions; the policy decided {self.actions[decided]} ({reason})"
        )

    def _decide_batch(self, request: DecideRequest) -> dict[str, Any]:
        x = request.matrix()
        columns = request.columns(self.names, x)
        try:
            d = self.runtime.decide_batch(columns)
        except PolicyInputError as err:
            row = err.row if err.row is not None or err.field is None else 0
            raise BadRequest(400, err.problem, err.field, row) from None
        assert d.allowed is not None
        n = request.n
        decided = d.action_index
        at = None
        if self._moments is not None:
            inputs = x
            if inputs is None:  # values the runtime accepted, not all floats
                inputs = np.column_stack([np.asarray(columns[c], np.float64) for c in self.names])
            at = self._at(inputs, d.allowed)
        probs = self.explorer.mix(decided, d.allowed, d.scores, at)
        chosen = draw_actions(probs, self.rng)
        taken = probs[np.arange(n), chosen].tolist()
        explored = chosen != decided
        # the event ids: the next n numbers of this worker's counter, in hexadecimal
        ids = list(map(f"{self.token}-{{:x}}".format, itertools.islice(self._ids, n)))
        actions = self.actions
        details = self.details
        reasons = d.reason.tolist()
        guardrails = d.guardrail.tolist()
        chosen_list = chosen.tolist()
        explored_list = explored.tolist()
        for i in np.flatnonzero(explored).tolist():
            allowed = int(d.allowed[i].sum())
            reasons[i] = self._explored_reason(chosen_list[i], int(decided[i]), allowed, reasons[i])
        out = [
            {
                "event_id": event_id,
                "action": actions[a],
                "probability": p,
                "explored": was,
                "reason": reason,
                "concession": details[a],
                "model_choice": model,
                "guardrail": rule,
            }
            for event_id, a, p, was, reason, model, rule in zip(
                ids, chosen_list, taken, explored_list, reasons, d.model_choice.tolist(),
                guardrails, strict=True,
            )
        ]  # fmt: skip
        for rule, count in Counter(guardrails).items():
            if rule is not None:
                self.metrics.override_of[rule].inc(count)
        if request.journeys.count(None) == n:  # every event a journey of its own
            journeys = ids
        else:
            journeys = [e if j is None else j for e, j in zip(ids, request.journeys, strict=True)]
        features = x[:, : self._nf] if x is not None else columns
        block = DecisionBlock(
            ids, journeys, request.steps, time.time(), features, d.allowed, probs, chosen,
            explored, d.withheld,
        )  # fmt: skip
        logged = self.writer.put(DECISIONS, block)
        self.metrics.queue.set(self.writer.queued_rows)
        n_explored = int(explored.sum())
        if n_explored:
            self.metrics.explored.inc(n_explored)
        self.metrics.greedy.inc(n - n_explored)
        return {"decisions": out, "logged": logged}

    # ------------------------------------------------------------ /reward
    def reward(self, body: Any) -> dict[str, Any]:
        request = parse_reward(body, self.settings.max_events)
        block = RewardBlock(
            request.event_ids, time.time(), request.reward, request.terms, request.journey_end
        )
        logged = self.writer.put(REWARDS, block)
        self.metrics.rewards.inc(request.n)
        return {"accepted": request.n, "logged": logged}

    def health(self) -> dict[str, Any]:
        manifest = self.runtime.manifest
        return {
            "status": "ok",
            "policy_sha256": manifest["policy"]["sha256"],
            "scenario": (manifest.get("scenario") or {}).get("name"),
            "worker": self.worker,
            "exploration": self.explorer.to_dict(),
            "log_queue_rows": self.writer.queued_rows,
            "log_dropped_rows": self.writer.dropped_rows,
            "log_written_rows": self.writer.written_rows,
        }

    def close(self) -> None:
        self.writer.close()
        if self.writer.dropped_rows:
            log.warning("%d log rows were dropped in all", self.writer.dropped_rows)
        process_exited(os.getpid())


def _details(action: dict[str, Any]) -> dict[str, Any] | None:
    if action["kind"] == "wait":
        return None
    keys = ("kind", "channel", "magnitude", "unit_cost", "expiry_steps")
    return {k: action[k] for k in keys}


def _json(data: Any, status: int = 200) -> Response:
    return Response(orjson.dumps(data), status_code=status, media_type=JSON)


async def _body(request: Request, limit: int) -> Any:
    """The request's JSON body, with its size, type and nesting checked."""
    kind = request.headers.get("content-type", "")
    if not kind.startswith(JSON):
        raise BadRequest(415, f"send JSON with Content-Type {JSON} (got {kind or 'none'!r})")
    length = request.headers.get("content-length")
    if length is not None:
        if not length.isdigit():
            raise BadRequest(400, "Content-Length is not a number")
        if int(length) > limit:
            raise BadRequest(413, f"the body is {int(length)} bytes; at most {limit}")
    chunks = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise BadRequest(413, f"the body is over {limit} bytes")
        chunks.append(chunk)
    raw = b"".join(chunks)
    if not raw.strip():
        raise BadRequest(400, "the body is empty: send a JSON object")
    try:
        return orjson.loads(raw)
    except orjson.JSONDecodeError as err:
        if "depth" in str(err):
            raise BadRequest(400, f"the body is nested too deeply ({err})") from None
        raise BadRequest(400, f"the body is not valid JSON ({err})") from None


def build_app(settings: ServiceSettings) -> Starlette:
    """The ASGI app of one worker."""
    state: dict[str, DecisionService] = {}

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        # the log writer thread shares the interpreter: hand it back within 1 ms, not 5
        sys.setswitchinterval(SWITCH_INTERVAL)
        state["service"] = DecisionService(settings)
        try:
            yield
        finally:  # uvicorn stopped taking requests and answered those under way
            state["service"].close()

    def endpoint(name: str, method: str) -> Any:
        async def handle(request: Request) -> Response:
            service = state["service"]
            start = time.perf_counter()
            try:
                body = await _body(request, settings.max_body_bytes)
                data = getattr(service, method)(body)
            except BadRequest as err:
                service.metrics.refused(name, err.status)
                return _json(err.to_dict(), err.status)
            except ClientDisconnect:
                service.metrics.refused(name, 499)
                return Response(status_code=400)
            response = _json(data)
            service.metrics.ok[name].inc()
            service.metrics.latency_of[name].observe(time.perf_counter() - start)
            return response

        return handle

    async def health(request: Request) -> Response:
        return _json(state["service"].health())

    async def ping(request: Request) -> Response:
        return Response(b"", media_type=JSON)

    async def metrics(request: Request) -> Response:
        service = state["service"]
        service.metrics.queue.set(service.writer.queued_rows)
        text, kind = exposition()
        return Response(text, media_type=kind)

    return Starlette(
        routes=[
            Route("/decide", endpoint("decide", "decide"), methods=["POST"]),
            Route("/reward", endpoint("reward", "reward"), methods=["POST"]),
            Route("/health", health, methods=["GET"]),
            Route("/ping", ping, methods=["GET"]),
            Route("/metrics", metrics, methods=["GET"]),
        ],
        lifespan=lifespan,
    )


def create_app() -> Starlette:
    """The app of a worker started by uvicorn: settings from the environment."""
    return build_app(ServiceSettings.from_env())
