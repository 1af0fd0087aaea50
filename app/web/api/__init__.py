"""``/api/v1``: the HTTP API of every UI worker (the contract is docs/api.md).

One module per concept; import a name from the module that defines it:

* :mod:`~app.web.api.application`: the sub-application and its mounting (``build_api``, ``mount_api``).
* :mod:`~app.web.api.callers`: who is calling (API token, the page's sign-in, or nobody when sign-in is off).
* :mod:`~app.web.api.errors`: the error shape, and our errors, refusals and surprises turned into it.
* :mod:`~app.web.api.bodies`: the body limits (64 KiB of JSON).
* :mod:`~app.web.api.schemas`: the pydantic models of bodies and answers; :mod:`~app.web.api.responses`: how
  answers go out.
* :mod:`~app.web.api.models`: the model routes; :mod:`~app.web.api.progress`: one model's NDJSON progress stream.
* :mod:`~app.web.api.watch`: waiting on the event loop for the replica to change.
* :mod:`~app.web.api.system`: status, logs, events, me; :mod:`~app.web.api.events`: the Server-Sent Events.
* :mod:`~app.web.api.tokens`: a signed-in user's own API tokens.
"""
