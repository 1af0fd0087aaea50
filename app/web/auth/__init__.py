"""Who is signed in, and what they may do. Off by default; two sources of users, usable together.

* A users file (``MODELDEPOT_AUTH_FILE``) of ``name:role:salt$hash`` lines, made with
  ``modeldepot auth hash NAME ROLE``: a login at ``/login`` opens a session in Redis, so it works on every UI
  worker and survives restarts; repeated wrong passwords pause sign-in for that name on every worker.
* A header set by an SSO proxy in front of Model Depot (``MODELDEPOT_AUTH_HEADER``).

One module per concept; import a name from the module that defines it:

* :mod:`~app.web.auth.roles`: ``Role``, ``User`` and the role policy (``require_admin``).
* :mod:`~app.web.auth.passwords`: scrypt hashes of passwords.
* :mod:`~app.web.auth.users`: the users file and its lines.
* :mod:`~app.web.auth.sessions`: login sessions in Redis and the cookie that names one.
* :mod:`~app.web.auth.throttle`: the pause after repeated wrong passwords.
* :mod:`~app.web.auth.authenticator`: the whole policy for a request, built from the settings.
"""
