"""The services layer the faces (CLI, API server, job workers) share.

Process-wide, thread-safe model handles loaded once; a bounded inference lane so concurrent
requests queue instead of exhausting memory; and the calls (triage, image findings, heatmaps,
drafts) that return typed results naming the exact model. Faces import services; services
import the jobs; the jobs never import services.
"""
