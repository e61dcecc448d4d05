"""Every Redis key and pub/sub channel the core uses, in one place (SPEC §10: rename nothing silently)."""

PREFIX = "dsxc"

CONNECTORS = f"{PREFIX}:connectors"  # hash uuid -> RegisteredConnector JSON
CONNECTOR_STATE = f"{PREFIX}:connector-state"  # + ":{uuid}:{namespace}" hash key -> text

JOBS_INDEX = f"{PREFIX}:jobs"  # zset job_id -> created ts


def job(job_id: str) -> str:
    return f"{PREFIX}:job:{job_id}"


def request_state(request_id: str) -> str:
    return f"{PREFIX}:req:{request_id}"


def action_done(request_id: str) -> str:
    return f"{PREFIX}:action:{request_id}"


RESULTS = f"{PREFIX}:results"  # hash id -> ScanResultEvent JSON
RESULTS_SEQ = f"{PREFIX}:results:seq"
RESULTS_INDEX = f"{PREFIX}:results:idx"  # zset id -> seq (insertion order)
STATS = f"{PREFIX}:stats"  # hash of counters


def results_by(kind: str, value: str) -> str:
    """Secondary index of results: kind is ``verdict``, ``connector`` or ``job``."""
    return f"{PREFIX}:results:idx:{kind}:{value}"


DEAD_LETTERS = f"{PREFIX}:dlq"  # hash id -> dead letter JSON
DEAD_LETTERS_INDEX = f"{PREFIX}:dlq:idx"  # zset id -> ts
SCANNER_BREAKER = f"{PREFIX}:breaker:scanner"  # hash: state, failures, open_until, last_error

CHANNEL_SCAN_RESULT = f"{PREFIX}:events:scan_result"
CHANNEL_CONNECTORS = f"{PREFIX}:events:connectors"


def channel_job(job_id: str) -> str:
    return f"{PREFIX}:events:job:{job_id}"


# ---- additions (jobs and SSE, issue #4) --------------------------------------------------------

JOBS_ACTIVE = f"{PREFIX}:jobs:active"  # set of job ids possibly running or paused (stall sweep, dashboard)
CHANNEL_JOBS_PATTERN = f"{PREFIX}:events:job:*"  # pattern matching every channel_job(job_id)
