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
# DICOM node's own account exists from its first study). The secret is the admin's one-time
# ENROLMENT CODE, not a password: its holder enrols with it at /enrol and chooses the password
# there, which spends it (the first sign-in changes it; the file then opens nothing). A site
# with an admin is never touched, and a file still mounted there is named in the log: delete
# the secret. (The compose
# stack mounts none: deploy/compose/up.sh makes the first admin with a one-time enrolment code,
# `medai_wait.py first-admin`.) Then it execs medai, so medai gets the signals.
#
# Exit status 2 or 3 is a deliberate refusal (2: a schema newer than this release, a wrong
# setting; 3: a database holding data no configured key opens): the migration is not tried
# again, since the same refusal would come back; any other failure is tried 3 times.
# MEDAI_BUILD_COMMIT, when not given, is the image's own revision (MEDAI_IMAGE_REVISION,
# set by deploy/image/build.sh), so /metrics names the commit an image was built from.
set -euo pipefail

export MEDAI_BUILD_COMMIT="${MEDAI_BUILD_COMMIT:-${MEDAI_IMAGE_REVISION:-}}"
[ -n "$MEDAI_BUILD_COMMIT" ] || unset MEDAI_BUILD_COMMIT

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
        0)  # the site has an admin: the file is not used, and should not be there
            say "MEDAI_ADMIN_PASSWORD_FILE=$file is mounted but not used: the site has an" \
                "admin; delete that secret (a spent or unused one-time code serves no one)"
            return 0 ;;
        3) ;;
        *) exit "$rc" ;;
    esac
    if out=$(head -n 1 "$file" | medai users add "$user" --role admin --enrol-code-stdin \
             --enrol-hours "${MEDAI_ADMIN_ENROL_HOURS:-72}" --json 2>&1); then
        say "created the first admin '$user': its holder opens /enrol with the one-time code" \
            "in $file and chooses the password (which spends the code)"
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
            if [ "$rc" = 2 ] || [ "$rc" = 3 ]; then
                say "the migration refused (exit $rc: see the message above); not trying again"
                exit "$rc"
            fi
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
