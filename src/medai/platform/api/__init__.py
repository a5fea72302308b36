"""The platform's HTTP face: auth, studies and reports, exports, chat, triage, admin."""
