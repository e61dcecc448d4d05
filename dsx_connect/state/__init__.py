"""The core's state in Redis: the only package that sends Redis commands.

One module per aggregate: ``jobs`` (with ``monitor_jobs`` and ``job_scripts``), ``requests``,
``results`` (and ``results_reader``), ``actions``, ``dead_letters``, ``connectors``, ``feed`` (the
SIEM buffers, Redis Streams), ``breaker``, ``scan_cache`` (the unchanged-object index),
``schedules`` and ``schedule_lease`` (the scheduler), ``events`` (pub/sub), ``server`` (probes) and the
credentials of ``auth_credentials``, ``auth_enrollment``, ``auth_operators`` and ``auth_ratelimit``;
sync readers and writers, with the async readers of the SSE streams beside them. Routes and workers
call these and pass in the client ``dsx_connect.redis_client`` makes.

The Lua scripts are ``.lua`` files in ``lua/``, loaded by :func:`dsx_connect.state.scripts.lua`;
``tests/dsx_connect/test_key_schema.py`` holds them against ``dsx_connect.keys`` and
``tests/dsx_connect/test_state_owns_redis.py`` fails on a Redis command called outside this package.
"""
