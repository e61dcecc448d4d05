"""Developer scripts: the local stack (stack.py) and its shell wrappers."""
