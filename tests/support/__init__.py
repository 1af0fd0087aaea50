"""Helpers shared by the test packages, each kept once.

- :mod:`tests.support.waiting`: wait on a condition (never a fixed sleep), a model's status, the JSON snapshot.
- :mod:`tests.support.workers`: a real ``modeldepot worker`` process, and the fixtures that start them.
- :mod:`tests.support.hub`: the local Hub (:mod:`tests.hubserver`) as fixtures.

A package's ``conftest.py`` imports the fixtures it uses from here.
"""
