"""Ask an OpenAI-compatible chat-completions endpoint to judge one call.

httpx rather than the ``openai`` client, for one concrete reason: like webhook deliveries, a judge
request must go to the address ``url_guard`` vetted (a DNS answer that changes between check and
connect must not redirect it into a private network), which needs the request aimed at that address
with the original Host header; the ``openai`` client builds its own requests from ``base_url``. Its
retries would also hide the ``Retry-After`` and attempt counts this module records.

Judge endpoints on private or loopback addresses are refused unless their host (or a CIDR holding the
address) is in ``LOOPWATCH_EVALUATOR_ALLOWED_HOSTS``: the same SSRF rules as webhooks otherwise.
Retries (429, 408, 5xx, timeouts, connection errors) follow the webhook sender: the server's
``Retry-After`` when given, else exponential backoff with full jitter, via tenacity. A circuit breaker
per endpoint stops calling an endpoint that keeps failing; the evaluations it holds back stay pending.
The API key is read from the environment at call time, sent as a bearer token, never logged or stored.
"""

from __future__ import annotations

import asyncio
import ipaddress
import os
import re
import time
from collections.abc import Sequence
from dataclasses import dataclass, field

import httpx
import orjson
import structlog
from loopwatch_sdk.retry_after import retry_after_seconds
from tenacity import AsyncRetrying, RetryCallState, retry_if_exception, stop_after_attempt, wait_random_exponential

from schemas.channels import UnsafeTargetError, parse_target
from schemas.evaluators import BooleanOutput, JudgeEndpoint, LabelOutput, ScoreOutput
from streams.delivery.url_guard import IPAddress, literal_address, refusal_reason, resolve_target

log = structlog.get_logger(__name__)

USER_AGENT = "loopwatch-evaluator/1"
MAX_RETRY_AFTER = 60.0
_POOL = 16  # connections per httpx pool (see JudgeClient._client)
SYSTEM_PROMPT = (
    "You are an impartial evaluator of AI responses. Follow the instructions and answer with a single JSON object."
)
_JSON_OBJECT = re.compile(r"\{.*\}", re.DOTALL)
Output = ScoreOutput | BooleanOutput | LabelOutput


class JudgeError(Exception):
    """The judge gave no usable answer. ``retryable``: a later try may succeed (outage, rate limit)."""

    def __init__(self, message: str, *, retryable: bool = False, retry_after: float | None = None) -> None:
        super().__init__(message)
        self.retryable = retryable
        self.retry_after = retry_after
        self.attempts = 1  # how many requests the evaluation made (set when the last one failed)


class BreakerOpenError(Exception):
    """The endpoint's circuit breaker is open: not called now, the evaluation stays pending."""


@dataclass(frozen=True, slots=True)
class Verdict:
    """A parsed judge answer with the usage it cost."""

    score: float | None
    label: str
    explanation: str
    input_tokens: int
    output_tokens: int
    latency_ms: float
    attempts: int


class AllowedHosts:
    """``LOOPWATCH_EVALUATOR_ALLOWED_HOSTS``: comma-separated host names and CIDRs (or single addresses)."""

    def __init__(self, spec: str) -> None:
        self.hosts: set[str] = set()
        self.networks: list[ipaddress.IPv4Network | ipaddress.IPv6Network] = []
        for item in (part.strip() for part in spec.split(",")):
            if not item:
                continue
            try:
                self.networks.append(ipaddress.ip_network(item, strict=False))
            except ValueError:
                self.hosts.add(item.lower().rstrip("."))

    def permits(self, host: str, address: IPAddress) -> bool:
        return host.lower().rstrip(".") in self.hosts or any(address in network for network in self.networks)


def vet_endpoint(base_url: str, allowed: AllowedHosts) -> list[IPAddress]:
    """Resolve the judge's host; raise ``UnsafeTargetError`` if an address is private and not allowed."""
    addresses = resolve_target(base_url, allow_private=True)
    host = parse_target(base_url).host
    for address in addresses:
        reason = refusal_reason(address)
        if reason is not None and not allowed.permits(host, address):
            raise UnsafeTargetError(
                f"judge host {host!r} resolves to {reason}; judge endpoints on private networks are refused "
                "(add the host or its network to LOOPWATCH_EVALUATOR_ALLOWED_HOSTS to allow it)"
            )
    return addresses


def response_format(output: Output) -> dict[str, object]:
    """The structured-output request (OpenAI ``json_schema``) for an output type."""
    properties: dict[str, object] = {"explanation": {"type": "string"}}
    if isinstance(output, ScoreOutput):
        properties["score"] = {"type": "number", "minimum": output.min, "maximum": output.max}
        answer = "score"
    elif isinstance(output, BooleanOutput):
        properties["verdict"] = {"type": "boolean"}
        answer = "verdict"
    else:
        properties["label"] = {"type": "string", "enum": list(output.labels)}
        answer = "label"
    schema = {
        "type": "object",
        "properties": properties,
        "required": ["explanation", answer],
        "additionalProperties": False,
    }
    return {"type": "json_schema", "json_schema": {"name": "evaluation", "strict": True, "schema": schema}}


def _boolean(value: object) -> bool | None:
    if isinstance(value, bool):
        return value
    if isinstance(value, str) and value.strip().lower() in ("true", "yes", "false", "no"):
        return value.strip().lower() in ("true", "yes")
    if isinstance(value, (int, float)) and value in (0, 1):
        return bool(value)
    return None


def parse_answer(content: str, output: Output) -> tuple[float | None, str, str]:
    """(score, label, explanation) from the judge's message; ``JudgeError`` when it is not usable.

    Reads plain JSON, or the first ``{...}`` in the text (models that wrap JSON in prose or code
    fences). A value outside the output's range or labels is an error, never clamped or guessed.
    """
    try:
        answer = orjson.loads(content)
    except orjson.JSONDecodeError:
        found = _JSON_OBJECT.search(content)
        try:
            answer = orjson.loads(found[0]) if found else None
        except orjson.JSONDecodeError:
            answer = None
    if not isinstance(answer, dict):
        raise JudgeError(f"the judge's answer is not a JSON object: {content[:200]!r}")
    explanation = str(answer.get("explanation") or answer.get("reason") or "")[:4000]
    if isinstance(output, ScoreOutput):
        score = answer.get("score")
        if isinstance(score, bool) or not isinstance(score, (int, float)):
            raise JudgeError(f"the judge's answer has no numeric 'score': {content[:200]!r}")
        if not output.min <= score <= output.max:
            raise JudgeError(f"the judge's score {score} is outside [{output.min:g}, {output.max:g}]")
        return float(score), "", explanation
    if isinstance(output, BooleanOutput):
        verdict = _boolean(answer.get("verdict", answer.get("score")))
        if verdict is None:
            raise JudgeError(f"the judge's answer has no true/false 'verdict': {content[:200]!r}")
        return float(verdict), "", explanation
    label = answer.get("label")
    if not isinstance(label, str) or label not in output.labels:
        raise JudgeError(f"the judge's label {label!r} is not one of {', '.join(output.labels)}")
    return None, label, explanation


@dataclass
class Breaker:
    """Closed → open after ``threshold`` failures in a row; after ``cooldown`` one trial call (half-open)
    closes it on success or opens it again on failure."""

    threshold: int
    cooldown: float
    failures: int = 0
    opened_at: float | None = None
    trial: bool = False

    @property
    def state(self) -> str:
        if self.opened_at is None:
            return "closed"
        return "half_open" if time.monotonic() - self.opened_at >= self.cooldown else "open"

    def admit(self) -> bool:
        state = self.state
        if state == "closed":
            return True
        if state == "half_open" and not self.trial:
            self.trial = True
            return True
        return False

    def succeeded(self) -> None:
        self.failures, self.opened_at, self.trial = 0, None, False

    def failed(self) -> None:
        self.failures += 1
        if self.trial or self.failures >= self.threshold:
            self.opened_at, self.trial = time.monotonic(), False


@dataclass
class _Endpoint:
    breaker: Breaker
    slots: asyncio.Semaphore
    attempts: int = 0  # attempts made (metrics, tests)
    retries: int = 0


@dataclass
class JudgeClient:
    """One per process: pooled connections, and a breaker and a concurrency bound per endpoint."""

    allowed: AllowedHosts
    max_attempts: int = 4
    backoff_seconds: float = 1.0
    concurrency: int = 8
    breaker_threshold: int = 5
    breaker_seconds: float = 30.0
    _clients: list[httpx.AsyncClient] = field(default_factory=list)
    _turn: int = 0
    _endpoints: dict[str, _Endpoint] = field(default_factory=dict)

    def _client(self) -> httpx.AsyncClient:
        """One of several small connection pools, in turn. httpcore assigns each queued request by
        scanning every connection of its pool: one pool with a connection per request in flight (128)
        cost ~30 ms of CPU per request (profiled); pools of ``_POOL`` connections keep that scan short."""
        if not self._clients:
            pools = max(1, -(-self.concurrency // _POOL))
            limits = httpx.Limits(max_connections=_POOL, max_keepalive_connections=_POOL)
            tls = httpx.create_ssl_context()  # one for all pools: loading the CA bundle costs ~20 ms of CPU each
            self._clients = [httpx.AsyncClient(follow_redirects=False, limits=limits, verify=tls) for _ in range(pools)]
        self._turn = (self._turn + 1) % len(self._clients)
        return self._clients[self._turn]

    def endpoint(self, base_url: str) -> _Endpoint:
        found = self._endpoints.get(base_url)
        if found is None:
            found = _Endpoint(
                Breaker(self.breaker_threshold, self.breaker_seconds), asyncio.Semaphore(self.concurrency)
            )
            self._endpoints[base_url] = found
        return found

    def breaker_states(self) -> dict[str, str]:
        return {url: endpoint.breaker.state for url, endpoint in self._endpoints.items()}

    async def aclose(self) -> None:
        for client in self._clients:
            await client.aclose()

    async def judge(self, judge: JudgeEndpoint, prompt: str, output: Output) -> Verdict:
        """Ask once (with retries). Raises ``JudgeError`` (final) or ``BreakerOpenError`` (try later)."""
        endpoint = self.endpoint(judge.base_url)
        key = ""
        if judge.api_key_env:
            key = os.environ.get(judge.api_key_env, "")
            if not key:
                raise JudgeError(f"environment variable {judge.api_key_env} (the judge's API key) is not set")
        body = orjson.dumps(
            {
                "model": judge.model,
                "temperature": 0,
                "messages": [{"role": "system", "content": SYSTEM_PROMPT}, {"role": "user", "content": prompt}],
                "response_format": response_format(output),
            }
        )
        attempts = 0

        def wait(state: RetryCallState) -> float:
            exc = state.outcome.exception() if state.outcome is not None else None
            if isinstance(exc, JudgeError) and exc.retry_after is not None:
                return min(exc.retry_after, MAX_RETRY_AFTER)
            return float(wait_random_exponential(multiplier=self.backoff_seconds, max=MAX_RETRY_AFTER)(state))

        retrying = AsyncRetrying(
            stop=stop_after_attempt(self.max_attempts),
            wait=wait,
            retry=retry_if_exception(lambda exc: isinstance(exc, JudgeError) and exc.retryable),
            reraise=True,
        )
        started = time.perf_counter()
        try:
            async for attempt in retrying:
                with attempt:
                    if not endpoint.breaker.admit():
                        raise BreakerOpenError(judge.base_url)
                    attempts += 1
                    endpoint.attempts += 1
                    if attempts > 1:
                        endpoint.retries += 1
                    async with endpoint.slots:
                        try:
                            content, usage = await self._send(judge, body, key)
                        except JudgeError as exc:
                            (endpoint.breaker.failed if exc.retryable else endpoint.breaker.succeeded)()
                            log.warning(
                                "evaluator.judge_attempt_failed",
                                endpoint=judge.base_url,
                                attempt=attempts,
                                error=str(exc)[:300],
                            )
                            raise
                        endpoint.breaker.succeeded()
        except JudgeError as exc:
            exc.attempts = attempts
            raise
        try:
            score, label, explanation = parse_answer(content, output)
        except JudgeError as exc:
            exc.attempts = attempts
            raise
        return Verdict(
            score, label, explanation, usage[0], usage[1], round((time.perf_counter() - started) * 1000, 3), attempts
        )

    async def _send(self, judge: JudgeEndpoint, body: bytes, key: str) -> tuple[str, tuple[int, int]]:
        url = httpx.URL(judge.base_url.rstrip("/") + "/chat/completions")
        try:
            if literal_address(url.host) is not None:  # nothing to resolve: no thread hop per request
                addresses: Sequence[IPAddress] = vet_endpoint(judge.base_url, self.allowed)
            else:
                addresses = await asyncio.to_thread(vet_endpoint, judge.base_url, self.allowed)
        except UnsafeTargetError as exc:
            raise JudgeError(str(exc)) from exc
        headers = {"Content-Type": "application/json", "User-Agent": USER_AGENT}
        if key:
            headers["Authorization"] = f"Bearer {key}"
        extensions: dict[str, str] = {}
        address = str(addresses[0])
        if url.host != address:
            headers["Host"] = url.netloc.decode("ascii")
            headers["Connection"] = "close"
            if url.scheme == "https":
                extensions["sni_hostname"] = url.raw_host.decode("ascii")
            url = url.copy_with(host=address)
        client = self._client()
        request = client.build_request(
            "POST", url, content=body, headers=headers, timeout=judge.timeout_seconds, extensions=extensions
        )
        try:
            response = await client.send(request)
        except httpx.TimeoutException as exc:
            raise JudgeError(f"the judge timed out after {judge.timeout_seconds:g} s", retryable=True) from exc
        except httpx.HTTPError as exc:
            raise JudgeError(f"the judge could not be reached: {type(exc).__name__}", retryable=True) from exc
        status = response.status_code
        if status != 200:
            retryable = status in (408, 429) or status >= 500
            retry_after = retry_after_seconds(response.headers.get("Retry-After")) if retryable else None
            raise JudgeError(f"the judge answered HTTP {status}", retryable=retryable, retry_after=retry_after)
        try:
            document = orjson.loads(response.content)
            content = document["choices"][0]["message"]["content"]
            usage = document.get("usage") or {}
            tokens = (int(usage.get("prompt_tokens") or 0), int(usage.get("completion_tokens") or 0))
        except (orjson.JSONDecodeError, KeyError, IndexError, TypeError, ValueError, AttributeError) as exc:
            raise JudgeError("the judge's response is not a chat completion") from exc
        if not isinstance(content, str):
            raise JudgeError("the judge's message has no text content")
        return content, tokens
