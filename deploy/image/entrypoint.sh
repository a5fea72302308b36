#!/bin/bash
# The medai image's entrypoint (under tini): `podman run IMAGE serve | worker --queues cpu |
# dicom listen | migrate | any other medai command`.
#
# For the long-running roles and the migration it first waits, bounded by MEDAI_WAIT_S
# (default 180 s), for the database, the broker (serve, worker, dicom) and — with
# MEDAI_AUTO_MIGRATE=false — for the migration job to bring the schema to this release's head
# (podman-compose has no `depends_on: service_healthy`; Kubernetes starts pods in any order).
# With MEDAI_ADMIN_PASSWORD_FILE set, `migrate` and `serve` create the first admin
# (MEDAI_ADMIN_USER, default admin) when the database has no admin yet (not "no user": the
# DICOM node's own account exists from its first study); a site with an admin is never touched. Then it execs medai, so medai gets the signals.
set -euo pipefail

WAIT=(/opt/medai/bin/python /usr/local/lib/medai-image/medai_wait.py)
say() { printf 'medai-entrypoint: %s\n' "$*" >&2; }

first_admin() {
    local file=${MEDAI_ADMIN_PASSWORD_FILE:-} user=${MEDAI_ADMIN_USER:-admin} out rc=0
    [ -n "$file" ] || return 0
    if [ ! -r "$file" ]; then
        say "MEDAI_ADMIN_PASSWORD_FILE=$file cannot be read (mount the secret; uid $(id -u))"
        exit 2
    fi
    "${WAIT[@]}" has-admin || rc=$?
    case $rc in
        0) return 0 ;;            # the site has an admin: the file is not used
        3) ;;
        *) exit "$rc" ;;
    esac
    if out=$(head -n 1 "$file" | medai users add "$user" --role admin --password-stdin \
             --json 2>&1); then
        say "created the first admin '$user' (password from $file)"
    elif "${WAIT[@]}" has-admin; then
        say "the first admin was created by another replica"
    else
        say "could not create the first admin '$user': $out"
        exit 2
    fi
}

role=${1:-}
[ "$role" = dicom ] && [ "${2:-}" != listen ] && role=other
case "$role" in
    serve|worker|dicom)
        "${WAIT[@]}" ready "$role"
        [ "$role" = serve ] && first_admin
        exec medai "$@"
        ;;
    migrate)
        # a transient failure (the network's DNS answering "temporary failure" while the
        # stack's containers start was seen) gets two more tries; migrations are
        # transactional on PostgreSQL, so a try that failed left nothing half done
        for attempt in 1 2 3; do
            rc=0
            "${WAIT[@]}" ready migrate && ( medai "$@" && first_admin ) || rc=$?
            [ "$rc" = 0 ] && exit 0
            [ "$attempt" = 3 ] && exit "$rc"
            say "the migration exited $rc; trying again in 5 s ($attempt of 3)"
            sleep 5
        done
        ;;
    "")
        exec medai --help
        ;;
    *)
        exec medai "$@"
        ;;
esac
