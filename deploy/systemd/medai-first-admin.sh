#!/bin/sh
# Installed as /opt/medai/libexec/medai-first-admin and run by medai-first-admin.service:
# adds the first admin (MEDAI_ADMIN_USER, default admin) whose one-time enrolment code is the
# credential admin-password (not a password: its holder enrols with it at /enrol and chooses
# the password, which spends it), only when the site has no admin yet. "No admin", not "no user": the DICOM
# node files received studies under an internal account (medai-dicom) that it creates with the
# first study, so a study that arrives before this runs must not stop the first admin.
set -eu
medai=/opt/medai/bin/medai
if "$medai" users list --json | /opt/medai/bin/python -c '
import json, sys
sys.exit(0 if any(u["role"] == "admin" for u in json.load(sys.stdin)["users"]) else 1)'; then
    echo "medai already has an admin: none added"
    exit 0
fi
head -n 1 "$CREDENTIALS_DIRECTORY/admin-password" \
    | "$medai" users add "${MEDAI_ADMIN_USER:-admin}" --role admin --enrol-code-stdin \
        --enrol-hours "${MEDAI_ADMIN_ENROL_HOURS:-72}"
