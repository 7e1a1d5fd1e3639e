"""Long-running checks kept in the repo but not collected by pytest (run them with ``python -m``)."""
