"""The core's Redis state: its Lua scripts, kept as ``.lua`` files (``dsx_connect/state/lua/``).

Each script is one file, loaded by :func:`dsx_connect.state.scripts.lua` and registered by the store
that runs it; ``tests/dsx_connect/test_key_schema.py`` holds the keys the scripts build against
``dsx_connect.keys``. (The results store's batch script still lives beside its store.)
"""
