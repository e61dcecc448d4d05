"""Every Redis key and pub/sub channel the core uses, in one place (SPEC §10: rename nothing silently)."""

PREFIX = "dsxc"

CONNECTORS = f"{PREFIX}:connectors"  # hash uuid -> RegisteredConnector JSON
CONNECTOR_STATE = f"{PREFIX}:connector-state"  # + ":{uuid}:{namespace}" hash key -> text


def connector_state(uuid: str, namespace: str) -> str:
    """Hash key -> text of one namespace of a connector's state (``PUT /connectors/state``). A uuid
    holds no ``:`` (``shared.models.CONNECTOR_UUID_PATTERN``, checked by ``state.connectors``), so
    the first ``:`` after the prefix ends it: ``X`` + ``Y:N`` and ``X:Y`` + ``N`` are not one key."""
    return f"{CONNECTOR_STATE}:{uuid}:{namespace}"


def connector_state_usage(uuid: str) -> str:
    """Hash of what a connector's state holds: ``keys`` (fields, every namespace) and ``bytes``
    (their names and values); the bounds of ``state.connectors`` are checked against it."""
    return f"{PREFIX}:connector-state-usage:{uuid}"


def connector_state_namespaces(uuid: str) -> str:
    """Set of the namespaces a connector's state holds (so that it can be deleted with its identity)."""
    return f"{PREFIX}:connector-state-ns:{uuid}"


JOBS_INDEX = f"{PREFIX}:jobs"  # zset job_id -> created ts


def job(job_id: str) -> str:
    return f"{PREFIX}:job:{job_id}"


def job_pending(job_id: str) -> str:
    """Hash request id -> scan task JSON of the job's accepted items without a result yet (recovery)."""
    return f"{job(job_id)}:pending"


def job_due(job_id: str) -> str:
    """Zset request id -> lease deadline (Unix time) of the job's pending items: an item whose lease
    passed without a worker taking it is sent again (``jobs.recovery``)."""
    return f"{job(job_id)}:due"


def job_resent(job_id: str) -> str:
    """Hash request id -> how many times the lease sweep sent a pending item again: the number its
    newest copy carries (``ScanTask.resend``; absent: 0). A scan task drops an older copy."""
    return f"{job(job_id)}:resent"


def job_done(job_id: str) -> str:
    """Bitmap of the job's finished items by ``job_item_id`` (their tombstones: one bit per item,
    expiring with the job; see ``dsx_connect.jobs.done``)."""
    return f"{job(job_id)}:done"


def job_skipped(job_id: str) -> str:
    """Bitmap of the job's items skipped by a cancel, by ``job_item_id``: a verdict of another copy
    arriving later takes the skip's place (one bit per item, expiring with the job)."""
    return f"{job(job_id)}:skipped"


def request_state(request_id: str) -> str:
    return f"{PREFIX}:req:{request_id}"


def action_done(request_id: str) -> str:
    return f"{PREFIX}:action:{request_id}"


RESULTS = f"{PREFIX}:results"  # hash id -> ScanResultEvent JSON
RESULTS_SEQ = f"{PREFIX}:results:seq"
RESULTS_INDEX = f"{PREFIX}:results:idx"  # zset id -> seq (insertion order)
STATS = f"{PREFIX}:stats"  # hash of counters


def stats_minute(minute: int) -> str:
    """Hash of the results stored in one minute (Unix time // 60): ``total``, ``verdict:<v>``; expires
    after ``DSXCONNECT_METRICS__HISTORY_HOURS`` (``state.stats_history``)."""
    return f"{PREFIX}:stats:minute:{minute}"


def results_by(kind: str, value: str) -> str:
    """Secondary index of results: kind is ``verdict``, ``connector`` or ``job``."""
    return f"{PREFIX}:results:idx:{kind}:{value}"


DEAD_LETTERS = f"{PREFIX}:dlq"  # hash id -> dead letter JSON
DEAD_LETTERS_INDEX = f"{PREFIX}:dlq:idx"  # zset id -> ts
DEAD_LETTER_STAGES = ("scan", "action", "result")


def dead_letters_of(stage: str) -> str:
    """The letters of one stage: zset id -> ts (counts and 1.x queues without reading every letter)."""
    return f"{PREFIX}:dlq:idx:{stage}"


# zset id -> lease deadline (Unix time) of a requeued letter: the letter stays until its requeued
# attempt stores an outcome (or fails anew); a lease that passes sends it again (jobs.requeue)
DEAD_LETTERS_REQUEUED = f"{PREFIX}:dlq:requeued"
SCANNER_BREAKER = f"{PREFIX}:breaker:scanner"  # hash: state, failures, open_until, last_error
SCANNER_BREAKER_PROBE = f"{PREFIX}:breaker:scanner:probe"  # the half-open probe's claim (expires)

CHANNEL_SCAN_RESULT = f"{PREFIX}:events:scan_result"
CHANNEL_CONNECTORS = f"{PREFIX}:events:connectors"


def channel_job(job_id: str) -> str:
    return f"{PREFIX}:events:job:{job_id}"


# ---- additions (jobs and SSE, issue #4) --------------------------------------------------------

JOBS_ACTIVE = f"{PREFIX}:jobs:active"  # set of job ids possibly running or paused (stall sweep, dashboard)
CHANNEL_JOBS_PATTERN = f"{PREFIX}:events:job:*"  # pattern matching every channel_job(job_id)

# ---- additions (SIEM feed "superlog", issue #7) ------------------------------------------------


def superlog(destination: str, part: str) -> str:
    """A key of one feed destination; ``part`` is ``stream`` (a Redis Stream of events, read by the
    consumer group ``forwarders``), ``state`` (hash: counters, last success and error), ``lock`` (the
    forwarder holding it) or ``rejected`` (list of events the receiver refused); ``queue`` and
    ``inflight`` are the lists of earlier releases, moved into the stream by the first forwarder."""
    return f"{PREFIX}:superlog:{destination}:{part}"


# ---- additions (security, issue #6) -------------------------------------------------------------

# the server key generated when DSXCONNECT_AUTH__SERVER_KEY is unset
AUTH_SERVER_KEY = f"{PREFIX}:auth:server-key"


def auth_connector(uuid: str) -> str:
    """Hash of a connector's credentials: current/previous key ids, delivery, revocation."""
    return f"{PREFIX}:auth:connector:{uuid}"


def auth_key(key_id: str) -> str:
    """JSON of one DSX-HMAC key id: its connector and when it stops being valid (never the secret)."""
    return f"{PREFIX}:auth:key:{key_id}"


def auth_nonce(key_id: str, nonce: str) -> str:
    """A nonce seen within the replay window (expires with it)."""
    return f"{PREFIX}:auth:nonce:{key_id}:{nonce}"


def auth_session(session_hash: str) -> str:
    """An operator's dashboard session, by the SHA-256 of its cookie value."""
    return f"{PREFIX}:auth:session:{session_hash}"


# ---- additions (rolling monitor jobs, issue #13) ------------------------------------------------


def monitor_job(connector_uuid: str) -> str:
    """The id of the connector's current monitor job (where its change events go; expires)."""
    return f"{PREFIX}:monitor-job:{connector_uuid}"


# ---- additions (scheduled scans, issue #18) ------------------------------------------------------

SCHEDULES = f"{PREFIX}:schedules"  # hash connector uuid -> ScheduleRecord JSON
SCHEDULER_LEADER = f"{PREFIX}:scheduler:leader"  # the leader's lease token (expires unless renewed)
SCANNER_IDENTITY = f"{PREFIX}:scheduler:scanner-identity"  # the scanner identity the leader saw last
#: how many identity changes the leader has handled (part of each change's claim: A->B seen again later is new)
SCANNER_IDENTITY_CHANGES = f"{PREFIX}:scheduler:scanner-identity-changes"


def schedule_state(connector_uuid: str) -> str:
    """Hash of a schedule's runs: the last slot handled, its job or error, the last identity rescan."""
    return f"{PREFIX}:schedule:{connector_uuid}:state"


def schedule_slot(connector_uuid: str, slot_ts: int) -> str:
    """The claim that a slot (Unix seconds) of a connector's schedule was started (SET NX, expires)."""
    return f"{PREFIX}:schedule:{connector_uuid}:{slot_ts}"


def schedule_identity(connector_uuid: str, change: str) -> str:
    """The claim that a scanner identity change (a digest) started the connector's rescan."""
    return f"{PREFIX}:schedule:{connector_uuid}:identity:{change}"


# ---- additions (the scan cache: the unchanged-object index) --------------------------------------


def scan_cache_index(connector_uuid: str) -> str:
    """Hash location -> last scan entry JSON of a connector (``state.scan_cache``; bounded by random
    eviction to ``DSXCONNECT_SCAN_CACHE__MAX_ENTRIES`` fields, no TTL)."""
    return f"{PREFIX}:cache:idx:{connector_uuid}"


# results history (dsx_connect.results): events the SQL history has not taken yet, and the lock of
# its maintenance (one replica at a time)
HISTORY_OUTBOX = f"{PREFIX}:results:history:outbox"  # list of event JSON
HISTORY_LOCK = f"{PREFIX}:results:history:maintenance"

# enrollment tokens made through the API (SPEC §8)
ENROLLMENT_TOKENS = f"{PREFIX}:auth:etoks"  # set of token ids
ENROLLMENT_TOKEN_BY_HASH = f"{PREFIX}:auth:etok-by-hash"  # hash sha256 -> token id


def enrollment_token(token_id: str) -> str:
    return f"{PREFIX}:auth:etok:{token_id}"


def rate_limit(kind: str, source: str, window: int) -> str:
    """Counter of one source's attempts of one kind in one fixed window (window number)."""
    return f"{PREFIX}:auth:rl:{kind}:{source}:{window}"
