"""The clinical platform: accounts, studies, review and sign-off, audit, exports and jobs.

Domain rules (who may do what, the report state machine) are plain functions here that the
API (``platform.api``), the CLI and the job workers share; the ML jobs are reached only through
``medai.services`` and never import this package.
"""
