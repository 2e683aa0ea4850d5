#!/bin/sh
# SPDX-License-Identifier: BSD-3-Clause
# Builds the dashboard into one self-contained page and embeds it as a C
# string: web/index.html with web/dashboard.css and web/dashboard.js put in
# place of its <!--CSS--> and <!--JS--> lines.
# usage: embed.sh index.html dashboard.css dashboard.js > dashboard.h
set -eu
html=$1 css=$2 js=$3
echo "/* Generated from web/ by web/embed.sh: do not edit. */"
echo "static const char dashboard_html[] ="
while IFS= read -r line || [ -n "$line" ]; do
    case "$line" in
    *'<!--CSS-->'*) echo "<style>"; cat "$css"; echo "</style>" ;;
    *'<!--JS-->'*) echo "<script>"; cat "$js"; echo "</script>" ;;
    *) printf '%s\n' "$line" ;;
    esac
done < "$html" | sed -e 's/\\/\\\\/g' -e 's/"/\\"/g' -e 's/^/    "/' -e 's/$/\\n"/'
echo "    ;"
