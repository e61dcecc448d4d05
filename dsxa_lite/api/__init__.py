"""HTTP routes of dsxa_lite, one router per concern."""
