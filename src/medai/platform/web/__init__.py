"""The clinicians' web UI: server-rendered pages (Jinja2) with a little JavaScript that calls
the platform API with the session cookie. Every asset is served by medai (no CDN, no font
download); every string comes from one catalogue (``messages.json``), Turkish by default."""
