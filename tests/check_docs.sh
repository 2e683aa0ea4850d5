#!/bin/sh
# Check that every configuration key is documented.
#
# Usage: check_docs.sh KEYLIST [SRCDIR]
#   KEYLIST  file with one key per line as SECTION.KEY (e.g. server.listen,
#            namespace.upstream); blank lines and lines starting with # are
#            ignored. A section written as namespace:NAME or namespace:* is
#            treated as "namespace".
#   SRCDIR   source tree holding conf/, man/ and docs/ (default ..).
# For each key it requires:
#   - a line `key =` (at line start) inside a [section] of conf/cachasided.ini
#     (for namespace keys: inside any [namespace:NAME] section);
#   - the key as a word in man/cachasided.ini.5 and docs/configuration.md.
# Prints each missing entry; exit 0 when nothing is missing, 1 otherwise.

if [ $# -lt 1 ] || [ $# -gt 2 ]; then
	echo "usage: $0 KEYLIST [SRCDIR]" >&2
	exit 1
fi
list=$1
src=${2:-..}
ini=$src/conf/cachasided.ini
man5=$src/man/cachasided.ini.5
md=$src/docs/configuration.md

fail=0
for f in "$list" "$ini" "$man5" "$md"; do
	if [ ! -r "$f" ]; then
		echo "missing file: $f"
		fail=1
	fi
done
[ $fail -eq 0 ] || exit 1

# "section key" pairs that are set in the example configuration.
present=$(awk '
	/^[ \t]*[;#]/ { next }
	/^\[/ {
		s = $0
		sub(/^\[/, "", s); sub(/\].*$/, "", s); sub(/:.*$/, "", s)
		sect = s
		next
	}
	/^[A-Za-z0-9_]+[ \t]*=/ {
		k = $0
		sub(/[ \t]*=.*$/, "", k)
		print sect " " k
	}' "$ini")

n=0
while IFS= read -r line || [ -n "$line" ]; do
	line=$(printf '%s' "$line" | tr -d ' \t\r')
	case $line in
	'' | '#'*) continue ;;
	esac
	case $line in
	*.*) section=${line%%.*}; key=${line#*.} ;;
	*) section=; key=$line ;;
	esac
	section=${section%%:*}
	n=$((n + 1))

	if [ -n "$section" ]; then
		found=$(printf '%s\n' "$present" | grep -cxF "$section $key")
	else
		found=$(printf '%s\n' "$present" | grep -c " $key\$")
	fi
	if [ "$found" -eq 0 ]; then
		echo "conf/cachasided.ini: no '$key =' line in [${section:-any section}]"
		fail=1
	fi
	if ! grep -qwF -- "$key" "$man5"; then
		echo "man/cachasided.ini.5: $line not mentioned"
		fail=1
	fi
	if ! grep -qwF -- "$key" "$md"; then
		echo "docs/configuration.md: $line not mentioned"
		fail=1
	fi
done <"$list"

if [ $n -eq 0 ]; then
	echo "no keys in $list"
	exit 1
fi
if [ $fail -eq 0 ]; then
	echo "all $n keys documented"
fi
exit $fail
