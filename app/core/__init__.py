"""The shared core: settings, Redis names, errors, records, the store and its replicas, jobs, the Controller.

Imports nothing from the web front end, the command line or the workers (checked by import-linter).
"""
