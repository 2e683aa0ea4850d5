#!/bin/sh
# SPDX-License-Identifier: BSD-3-Clause
# Embeds each Lua script as a C string: lua/fill.lua -> #define LUA_FILL "...".
echo "/* Generated from the lua/ scripts by lua/lua2c.sh: do not edit. */"
for f in "$@"; do
    name=$(basename "$f" .lua | tr 'a-z' 'A-Z')
    echo "#define LUA_$name \\"
    sed -e 's/\\/\\\\/g' -e 's/"/\\"/g' -e 's/^/    "/' -e 's/$/\\n" \\/' "$f"
    echo '    ""'
done
