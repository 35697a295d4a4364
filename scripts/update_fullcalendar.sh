#!/bin/sh
# Vendor FullCalendar's standalone browser build into tornado_sse/static/.
#
#   scripts/update_fullcalendar.sh 7.1.0
#
# Users run no build step, so the calendar page loads FullCalendar from files
# we ship. This fetches the `fullcalendar` npm package (7.x only: the page is
# written against the v7 API) with `npm pack`, and copies, keeping the
# package's own paths so each file can be traced back to it:
#
#   all/global.js                   bundle: core + interaction (drag/resize),
#                                   daygrid, timegrid, list, multimonth;
#                                   defines the global `FullCalendar`
#   skeleton.css                    layout rules (v7 no longer injects CSS)
#   themes/classic/global.js        the look: a plugin that registers itself
#   themes/classic/theme.css          in FullCalendar.globalPlugins, with its
#   themes/classic/palette.css        stylesheets (v7 is unstyled without one)
#   LICENSE.md                      MIT
#
# and records the version and npm integrity hash in VERSION.
set -eu

if [ $# -ne 1 ]; then
    echo "usage: $0 VERSION   (a fullcalendar 7.x version, e.g. 7.1.0)" >&2
    exit 2
fi
version=$1
case $version in
    7.*) ;;
    *) echo "error: calendar.js is written for FullCalendar 7.x, not $version" >&2; exit 2 ;;
esac

root=$(cd "$(dirname "$0")/.." && pwd)
dest=$root/tornado_sse/static/vendor/fullcalendar
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

(cd "$tmp" && npm pack --silent "fullcalendar@$version" >/dev/null)
tar -xzf "$tmp"/fullcalendar-"$version".tgz -C "$tmp"
pkg=$tmp/package

# The bundle's banner names its version: refuse a tarball that does not match.
if ! head -n 3 "$pkg/all/global.js" | grep -q "v$version\$"; then
    echo "error: $pkg/all/global.js does not announce v$version" >&2
    exit 1
fi

files="all/global.js skeleton.css themes/classic/global.js
       themes/classic/theme.css themes/classic/palette.css LICENSE.md"
rm -rf "$dest"
for f in $files; do
    mkdir -p "$dest/$(dirname "$f")"
    cp "$pkg/$f" "$dest/$f"
done

integrity=$(cd "$tmp" && npm view "fullcalendar@$version" dist.integrity)
printf 'fullcalendar %s\nnpm integrity %s\n' "$version" "$integrity" > "$dest/VERSION"
echo "vendored fullcalendar $version into ${dest#"$root"/}"
