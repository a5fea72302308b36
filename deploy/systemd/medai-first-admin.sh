#!/bin/sh
# Installed as /opt/medai/libexec/medai-first-admin and run by medai-first-admin.service:
# adds the first admin (MEDAI_ADMIN_USER, default admin) with the password in the credential
# admin-password, only when the database has no user at all; a site with users is left alone.
set -eu
medai=/opt/medai/bin/medai
users=$("$medai" users list --json)
case $users in
    *'"users": []'*) ;;
    *) echo "medai already has users: no admin added"; exit 0 ;;
esac
head -n 1 "$CREDENTIALS_DIRECTORY/admin-password" \
    | "$medai" users add "${MEDAI_ADMIN_USER:-admin}" --role admin --password-stdin
