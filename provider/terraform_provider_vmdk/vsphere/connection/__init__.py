"""Talking to vSphere: the session, calls and their retries, tasks, property reads and HTTP transfers."""
