#!/bin/sh
# Install OHIF's prebuilt viewer (`dist/` of @ohif/app) into .viewer/ohif: fetched by npm
# (`npm pack`: the package alone, none of its build-time dependencies), checked against the
# pinned sha512 integrity before anything is unpacked. OHIF's build is rooted at `/`: its webpack
# public path (where every chunk and codec is fetched from) and its stylesheet's font addresses
# are rewritten to the prefix medai serves it under (index.html is rewritten by medai itself,
# platform/web/viewer.py). Usage: install-ohif.sh VERSION INTEGRITY [DEST] [PREFIX]
set -eu
version=$1 integrity=$2 dest=${3:-.viewer/ohif} prefix=${4:-/viewer/}
stamp="$version $prefix 2"
if [ "$(cat "$dest/VERSION" 2>/dev/null)" = "$stamp" ]; then exit 0; fi
command -v npm >/dev/null 2>&1 || (apt-get update -qq && apt-get install -y -qq nodejs npm)
pack=$(mktemp -d)
trap 'rm -rf "$pack"' EXIT
npm pack --silent --pack-destination "$pack" "@ohif/app@$version" >/dev/null
got="sha512-$(openssl dgst -sha512 -binary "$pack/ohif-app-$version.tgz" | base64 -w0)"
if [ "$got" != "$integrity" ]; then
  echo "install-ohif: integrity mismatch for @ohif/app@$version: $got" >&2
  exit 1
fi
tar -xzf "$pack/ohif-app-$version.tgz" -C "$pack" package/dist
dist="$pack/package/dist"
grep -q '__webpack_require__.p = "/";' "$dist"/app.bundle.*.js || {
  echo "install-ohif: no webpack public path to rewrite in app.bundle (a new OHIF layout?)" >&2
  exit 1
}
# the app's and each worker's runtime (codec, compute and histogram workers load their chunks)
sed -i "s|__webpack_require__.p = \"/\";|__webpack_require__.p = \"$prefix\";|" "$dist"/*.js
sed -i "s|url(/|url($prefix|g" "$dist"/*.css
rm -rf "$dest" && mkdir -p "$dest"
mv "$pack/package/dist" "$dest/dist"
echo "$stamp" > "$dest/VERSION"
echo "install-ohif: OHIF $version in $dest"
